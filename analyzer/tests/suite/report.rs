//! `report`: the page opens from disk in a real browser (Debian's Chromium, driven by Playwright;
//! `tests/viewers/report_check.py`) without fetching anything or logging an error, shows the
//! workload's functions and the findings, is not blank, and a heat-map range selected with two
//! clicks gives the flame graph of exactly that range's samples.
use std::process::Command;

use flightrec_analyzer::{capture::Capture, filter::Filter, profile};

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
    let samples = profile::profile(&cap, &Filter::default()).unwrap().total;
    assert_eq!(got["whole_total"], samples, "{got}");
    assert_eq!(got["range_total"], got["cell_samples"], "{got}");
    assert!(
        got["range_total"].as_u64() < got["whole_total"].as_u64(),
        "{got}"
    );
    assert_eq!(got["all_cells_total"], samples, "{got}");
}
