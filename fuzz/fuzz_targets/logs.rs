//! Fuzzes the CRI log renderer and the tail read from the end (see
//! `tinylet::logs::check_invariants`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tinylet::logs::check_invariants(data);
});
