//! End-to-end tests of flightrec live in `e2e/` (one test binary); `workload.rs` is the known
//! workload they record.
