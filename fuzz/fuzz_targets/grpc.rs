//! Fuzzes the CRI client's sans-IO gRPC framing: bodies decoded whole and split, re-framed,
//! and the status headers (see `tinylet::cri::grpc::check_invariants`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tinylet::cri::grpc::check_invariants(data);
});
