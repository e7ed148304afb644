//! Golden outputs on the fixtures. Re-bless after an intended change (or a re-recorded fixture):
//! `FLIGHTREC_BLESS=1 cargo test -p flightrec-analyzer golden`.
use std::{fs, path::Path};

use super::*;

fn check(name: &str, args: &[&str]) {
    let got = ok(args);
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/golden")
        .join(format!("{name}.txt"));
    if std::env::var_os("FLIGHTREC_BLESS").is_some() {
        fs::write(&path, &got).unwrap();
        return;
    }
    let want = fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: run with FLIGHTREC_BLESS=1", path.display()));
    if got != want {
        let diff: Vec<String> = want
            .lines()
            .zip(got.lines())
            .enumerate()
            .filter(|(_, (w, g))| w != g)
            .take(10)
            .map(|(i, (w, g))| format!("line {}:\n  want: {w}\n  got:  {g}", i + 1))
            .collect();
        panic!(
            "{name}: output differs from {} ({} vs {} lines)\n{}\n(FLIGHTREC_BLESS=1 to accept)",
            path.display(),
            want.lines().count(),
            got.lines().count(),
            diff.join("\n")
        );
    }
}

#[test]
fn golden_outputs_of_the_basic_fixture() {
    let f = fixture("basic");
    let dir = f.dir.to_str().unwrap();
    let pid = f.pid.to_string();
    check("summary", &["summary", dir]);
    check("summary.json", &["summary", dir, "--json"]);
    check(
        "runq_pid",
        &["latency", dir, "--kind", "runq", "--pid", &pid],
    );
    check(
        "runq_by_comm_window",
        &[
            "latency", dir, "--kind", "runq", "--by", "comm", "--from", "1s", "--to", "3s",
        ],
    );
    check(
        "block_by_disk.json",
        &["latency", dir, "--kind", "block", "--by", "disk", "--json"],
    );
    check(
        "syscall_by_syscall",
        &[
            "latency", dir, "--kind", "syscall", "--by", "syscall", "--pid", &pid,
        ],
    );
    check(
        "offcpu_pid.folded",
        &["offcpu", dir, "--pid", &pid, "--folded"],
    );
    check(
        "offcpu_pid_interruptible",
        &[
            "offcpu",
            dir,
            "--pid",
            &pid,
            "--state",
            "interruptible",
            "--top",
            "3",
        ],
    );
    check(
        "offcpu_min_10ms.folded",
        &["offcpu", dir, "--min", "10ms", "--folded"],
    );
    check(
        "profile_pid.folded",
        &["profile", dir, "--pid", &pid, "--folded"],
    );
}
