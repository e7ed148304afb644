//! The views on other engines: `schemas/sql/*.sql`, unchanged, over a lake tree give exactly
//! DataFusion's answers (which equal the analyzer's: see `sql.rs`) on Apache Spark, as a cluster of
//! two executor processes, and on DuckDB. Needs Python with pyspark and duckdb, and a JDK:
//! `.ci/run` makes a venv and names its python in FLIGHTREC_ENGINES_PYTHON.
use std::process::Command;

use flightrec_analyzer::{
    capture::Capture,
    lake,
    sql::{parity, source::Input},
};

use super::*;

/// Runs the contract queries on `engine` (`tests/engines/views.py`) and on DataFusion over a lake
/// of the fixture; asserts the rows are equal; returns the engine's executor count.
fn agrees_with_datafusion(engine: &str, extra: &[&str]) -> Option<u64> {
    let Ok(python) = std::env::var("FLIGHTREC_ENGINES_PYTHON") else {
        flightrec_tests::skip(
            "FLIGHTREC_ENGINES_PYTHON (a python with pyspark and duckdb) is not set",
        );
        return None;
    };
    let f = fixture("basic");
    let cap = Capture::open(&f.dir).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("lake");
    lake::write::export(&cap, &tree).unwrap();
    let queries = parity::contract_queries();
    let qfile = tmp.path().join("queries.json");
    std::fs::write(&qfile, serde_json::to_vec(&queries).unwrap()).unwrap();
    let out = tmp.path().join("out.json");
    let root = fixtures().join("..");
    let run = Command::new(&python)
        .arg(root.join("tests/engines/views.py"))
        .arg(engine)
        .arg(&tree)
        .arg(root.join("schemas/sql"))
        .arg(&qfile)
        .arg(&out)
        .args(extra)
        // Spark's executors reach the driver on loopback, whatever the host's address.
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .output()
        .expect("run python");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "{engine} failed: {}",
        stderr.lines().rev().take(30).collect::<Vec<_>>().join("\n")
    );
    let theirs: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let ours = parity::rows_as_text(vec![Input::open(&tree).unwrap()], &queries, None).unwrap();
    for (i, (name, _)) in queries.iter().enumerate() {
        let rows: Vec<Vec<String>> = serde_json::from_value(theirs["results"][i].clone()).unwrap();
        assert!(!ours[i].is_empty(), "{name}: no rows");
        assert_eq!(rows, ours[i], "{name}: {engine} and DataFusion differ");
    }
    eprintln!(
        "{engine}: {} queries over the views agree with DataFusion",
        queries.len()
    );
    theirs["executors"].as_u64()
}

#[test]
fn spark_runs_the_views_unchanged_on_two_executors_and_agrees_with_datafusion() {
    if let Some(executors) = agrees_with_datafusion("spark", &["local-cluster[2,1,1024]"]) {
        assert_eq!(executors, 2, "two executor processes");
    }
}

#[test]
fn duckdb_runs_the_views_unchanged_and_agrees_with_datafusion() {
    agrees_with_datafusion("duckdb", &[]);
}
