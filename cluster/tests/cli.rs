//! The command line's refusals: one line and a non-zero exit, before anything listens.
use std::process::Command;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flightrec-cluster"))
        .args(args)
        .output()
        .expect("run flightrec-cluster");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn a_scheduler_address_without_a_port_is_refused_in_one_line() {
    let (code, err) = run(&["executor", "--scheduler", "localhost"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        err.trim(),
        "flightrec-cluster: --scheduler localhost is not HOST:PORT"
    );
}

#[test]
fn a_bind_address_that_is_not_one_is_refused_in_one_line() {
    let (code, err) = run(&["scheduler", "--bind", "no such host", "--port", "1"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is not an address"), "{err}");
}
