//! The views on Apache Spark: `schemas/sql/*.sql`, unchanged, over a lake tree on a Spark
//! cluster of two executor processes give exactly DataFusion's answers (which equal the
//! analyzer's: see `sql.rs`). Needs Python with pyspark and a JDK: `.ci/run` makes a venv and
//! names its python in FLIGHTREC_PYSPARK.
use std::process::Command;

use flightrec_analyzer::{
    capture::Capture,
    lake,
    sql::{parity, source::Input},
};

use super::*;

#[test]
fn spark_runs_the_views_unchanged_and_agrees_with_datafusion() {
    let Ok(python) = std::env::var("FLIGHTREC_PYSPARK") else {
        flightrec_tests::skip("FLIGHTREC_PYSPARK (a python with pyspark) is not set");
        return;
    };
    let f = fixture("basic");
    let cap = Capture::open(&f.dir).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("lake");
    lake::write::export(&cap, &tree).unwrap();
    let queries = parity::contract_queries();
    let qfile = tmp.path().join("queries.json");
    std::fs::write(&qfile, serde_json::to_vec(&queries).unwrap()).unwrap();
    let out = tmp.path().join("spark.json");
    let root = fixtures().join("..");
    let run = Command::new(&python)
        .arg(root.join("tests/spark/views.py"))
        .arg(&tree)
        .arg(root.join("schemas/sql"))
        .arg(&qfile)
        .arg(&out)
        .arg("local-cluster[2,1,1024]")
        // Executors reach the driver on loopback, whatever the host's address.
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .output()
        .expect("run python");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "spark failed: {}",
        stderr.lines().rev().take(30).collect::<Vec<_>>().join("\n")
    );
    let spark: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(
        spark["executors"].as_u64(),
        Some(2),
        "two executor processes"
    );
    let ours = parity::rows_as_text(vec![Input::open(&tree).unwrap()], &queries).unwrap();
    for (i, (name, _)) in queries.iter().enumerate() {
        let theirs: Vec<Vec<String>> = serde_json::from_value(spark["results"][i].clone()).unwrap();
        assert!(!ours[i].is_empty(), "{name}: no rows");
        assert_eq!(theirs, ours[i], "{name}: Spark and DataFusion differ");
    }
    eprintln!(
        "spark: {} queries over the views agree with DataFusion on 2 executors",
        queries.len()
    );
}
