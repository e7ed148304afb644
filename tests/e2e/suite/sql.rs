//! SQL over a capture recorded just now: the views equal the analyzer on the real kernel's
//! events, directly and after `flightrec export --lake`; wall times come from the segments' clock
//! anchors; `processes` shows exit codes and signals the test caused.
use std::{
    path::Path,
    process::{Command, Stdio},
};

use flightrec_analyzer::sql::{parity, source::Input};

use super::*;

fn assert_parity(cap: &flightrec_analyzer::capture::Capture, input: &Path, what: &str) {
    let p = parity::compare(cap, vec![Input::open(input).unwrap()]).unwrap();
    report(&format!("sql ({what}): {}", p.compared.join(", ")));
    assert!(
        p.mismatches.is_empty(),
        "{what}: views differ from the analyzer:\n{}",
        p.mismatches.join("\n")
    );
}

#[test]
fn sql_views_equal_the_analyzer_on_a_recording_and_its_lake() {
    require_root!();
    let _quiet = quiet();
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("cap");
    let work = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let before = chrono::Utc::now();
    let rec = Recording::start(
        &cap,
        &[
            "--events",
            "sched,process,profile,block,syscall",
            "--comm",
            "flightrec-workl",
            "--segment",
            "1s",
        ],
    );
    let status = workload()
        .args(["--sleeps", "10", "--sleep-ms", "20", "--writes", "8"])
        .args(["--pingpong", "1000"])
        .arg("--dir")
        .arg(work.path())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let exits = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
    let exit_pid = exits.id();
    assert_eq!(exits.wait_with_output().unwrap().status.code(), Some(3));
    let mut killed = Command::new("sleep").arg("30").spawn().unwrap();
    let killed_pid = killed.id();
    std::thread::sleep(std::time::Duration::from_millis(200));
    killed.kill().unwrap();
    killed.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    rec.stop();
    let after = chrono::Utc::now();

    let opened = flightrec_analyzer::capture::Capture::open(&cap).unwrap();
    assert!(
        opened.segments.iter().all(|s| s.meta.clock.is_some()),
        "every finished segment has its clock anchor"
    );
    assert_parity(&opened, &cap, "capture");
    let lake = dir.path().join("lake");
    run_ok(
        "flightrec",
        &[
            "export",
            "--lake",
            lake.to_str().unwrap(),
            cap.to_str().unwrap(),
        ],
    );
    assert_parity(&opened, &lake, "lake");

    let sql = |q: &str| serde_json::Value::from(sql_rows(lake.to_str().unwrap(), q));
    // Wall-clock times of the events lie within the test's own clock readings.
    let t = sql(
        "SELECT CAST(MIN(time) AS BIGINT) AS lo, CAST(MAX(time) AS BIGINT) AS hi FROM sched_switch",
    );
    let parse = |v: &serde_json::Value| {
        chrono::DateTime::from_timestamp_micros(v.as_i64().expect("µs")).expect("a time")
    };
    let (lo, hi) = (parse(&t[0]["lo"]), parse(&t[0]["hi"]));
    report(&format!(
        "sql: events from {lo} to {hi}; the test ran from {before} to {after}"
    ));
    assert!(
        lo >= before && hi <= after,
        "{lo}..{hi} outside {before}..{after}"
    );

    // The processes the test ended: an exit code and a signal, each its own.
    let rows = sql(&format!(
        "SELECT pid, comm, exit_code, signal FROM processes WHERE pid IN ({exit_pid}, {killed_pid}) ORDER BY pid"
    ));
    let by_pid = |pid: u32| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["pid"].as_u64() == Some(pid.into()))
            .unwrap_or_else(|| panic!("pid {pid} not in processes: {rows}"))
            .clone()
    };
    let (e, k) = (by_pid(exit_pid), by_pid(killed_pid));
    assert_eq!(
        (e["exit_code"].as_i64(), e.get("signal")),
        (Some(3), None),
        "{e}"
    );
    assert_eq!(k["signal"].as_i64(), Some(9), "{k}");
    assert_eq!(k["comm"].as_str(), Some("sleep"), "{k}");

    // The report's findings name both, from the same capture.
    let html = dir.path().join("incident.html");
    run_ok(
        "flightrec-analyze",
        &[
            "report",
            cap.to_str().unwrap(),
            "-o",
            html.to_str().unwrap(),
        ],
    );
    let page = std::fs::read_to_string(&html).unwrap();
    let findings = page
        .split("<section id=\"findings\">")
        .nth(1)
        .and_then(|s| s.split("</section>").next())
        .expect("a findings section");
    let row = |title: &str| {
        findings
            .split("<tr")
            .find(|r| r.contains(title))
            .unwrap_or_else(|| panic!("no finding {title}: {findings}"))
            .to_string()
    };
    let killed = row("Processes killed");
    assert!(killed.contains("sev-warning"), "{killed}");
    assert!(
        killed.contains(&format!("sleep ({killed_pid}) by signal 9")),
        "{killed}"
    );
    let failed = row("Processes exiting non-zero");
    assert!(failed.contains(&format!("({exit_pid}) exit 3")), "{failed}");
}
