//! `report`: the page opens from disk in a real browser (Debian's Chromium, driven by Playwright;
//! `tests/viewers/report_check.py`) without fetching anything or logging an error, shows the
//! workload's functions and the findings, is not blank, and a range of either heat map selected with
//! two clicks gives the flame graph of exactly that range's samples or off-CPU time (the whole
//! window's equal to `profile`'s and `offcpu`'s totals).
use std::process::Command;

use flightrec_analyzer::{capture::Capture, filter::Filter, offcpu, profile};

use super::*;

#[test]
fn the_report_opens_in_chromium_and_its_heat_map_selects_ranges() {
    let f = fixture("basic");
    let tmp = tempfile::tempdir().unwrap();
    let html = tmp.path().join("incident.html");
    let (ok, _, err) = analyze(&[
        "report",
        f.dir.to_str().unwrap(),
        "-o",
        html.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(text.len() < 3 << 20, "{} bytes", text.len());
    // Findings are in the page itself, with their evidence.
    assert!(text.contains("Run-queue latency") && text.contains("Lost events"));
    let Ok(python) = std::env::var("FLIGHTREC_ENGINES_PYTHON") else {
        flightrec_tests::skip("FLIGHTREC_ENGINES_PYTHON (a python with playwright) is not set");
        return;
    };
    let shot = tmp.path().join("report.png");
    let out = Command::new(python)
        .arg(fixtures().join("../tests/viewers/report_check.py"))
        .arg(&html)
        .arg(&shot)
        .args([
            "flightrec_workload_burn",
            "flightrec-workl",
            "Findings",
            "Run-queue latency",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "report_check.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        got["ready"], "1",
        "the page's script did not finish drawing: {got}"
    );
    for key in [
        "requests_refused",
        "console_errors",
        "page_errors",
        "missing",
    ] {
        assert_eq!(got[key], serde_json::json!([]), "{key}: {got}");
    }
    let (shot_bytes, blank) = (
        got["screenshot_bytes"].as_u64().unwrap(),
        got["blank_bytes"].as_u64().unwrap(),
    );
    assert!(shot_bytes > 4 * blank, "a blank-looking screenshot: {got}");
    let cap = Capture::open(&f.dir).unwrap();
    let filter = Filter::default();
    let samples = profile::profile(&cap, &filter).unwrap().total;
    let blocked = offcpu::offcpu(&cap, &filter, &offcpu::Options::default())
        .unwrap()
        .total;
    for (map, total) in [("oncpu", samples), ("offcpu", blocked)] {
        let m = &got[map];
        assert_eq!(m["whole_total"], total, "{map}: {m}");
        assert_eq!(m["range_total"], m["cell_total"], "{map}: {m}");
        assert!(
            m["range_total"].as_u64() < m["whole_total"].as_u64(),
            "{map}: {m}"
        );
        assert_eq!(m["all_cells_total"], total, "{map}: {m}");
    }
}
