//! The fuzz target, a smaller count than a full run (`flightrec-bench fuzz` runs 10,000 cases):
//! damaged and hostile copies of the fixture capture and its bundle, no panic, no write outside.
use std::{path::Path, process::Command};

#[test]
fn two_hundred_damaged_and_hostile_cases_neither_panic_nor_escape() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/basic");
    let out = Command::new(env!("CARGO_BIN_EXE_flightrec-bench"))
        .args(["fuzz", "--cases", "200", "--seed", "7", "--capture"])
        .arg(&fixture)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The table's row: 200 cases, some of them bundles, 0 panics, 0 escapes.
    let row = text
        .lines()
        .find(|l| l.starts_with("| 200 |"))
        .unwrap_or_else(|| panic!("no result row: {text}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert!(cells[2].parse::<u64>().unwrap() > 0, "{row}");
    assert_eq!((cells[3], cells[4]), ("0", "0"), "{row}");
}
