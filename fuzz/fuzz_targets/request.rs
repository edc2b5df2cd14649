//! Fuzzes the 10250 server's sans-IO request parsing: heads under two limit sets and chunked
//! bodies decoded whole and split (see `tinylet::server::http::check_invariants`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tinylet::server::http::check_invariants(data);
});
