//! End-to-end tests of flightrec live in `e2e/` (one test binary); `workload.rs` is the known
//! workload they record. This library holds what tests in other packages share with them.

/// True when running in CI: `CI` is set and neither empty, `0` nor `false` (as GitHub, GitLab and
/// most CI systems set it; `.ci/run` sets it too).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Says why a test that needs the real kernel (root, tracefs, BTF) does not run here. In CI that
/// is a failure: a CI machine that lost root must never pass green.
pub fn skip(why: &str) {
    assert!(
        !in_ci(),
        "{why}, and CI is set: a test that cannot run here fails instead of skipping"
    );
    eprintln!("skipped: {why}");
}
