mod broken;
mod bundle;
mod convert;
mod engines;
mod fuzz;
mod golden;
mod oracle;
mod report;
mod sql;
mod truth;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The repository's fixtures directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// Copies a directory tree (a fixture, to damage it).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dst = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// What a fixture's `<name>.json` says about the workload recorded in it.
pub struct Fixture {
    pub dir: PathBuf,
    pub pid: i32,
    pub info: serde_json::Value,
}

pub fn fixture(name: &str) -> Fixture {
    let info: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixtures().join(format!("{name}.json"))).expect("fixture description"),
    )
    .expect("fixture json");
    Fixture {
        dir: fixtures().join(name),
        pid: info["workload_pid"].as_i64().expect("workload_pid") as i32,
        info,
    }
}

/// Runs flightrec-analyze; returns (success, stdout, stderr). Never a panic in its output.
pub fn analyze(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flightrec-analyze"))
        .args(args)
        .output()
        .expect("run flightrec-analyze");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    (out.status.success(), stdout, stderr)
}

/// Runs flightrec-analyze expecting success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let (success, stdout, stderr) = analyze(args);
    assert!(success, "{args:?} failed: {stderr}");
    stdout
}

/// Runs flightrec-analyze with --json; returns the parsed output.
pub fn json(args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&ok(&a)).expect("valid JSON")
}
