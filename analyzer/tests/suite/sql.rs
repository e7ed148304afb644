//! SQL over captures: the views equal the analyzer on the fixture, read directly, as a bundle and
//! from a lake tree; the lake is partitioned, portable and pruned; bad input fails in one line.
use std::path::Path;

use flightrec_analyzer::{
    capture::Capture,
    lake,
    sql::{parity, source::Input},
};

use super::*;

fn assert_parity(cap: &Capture, inputs: &[&Path]) {
    let inputs = inputs.iter().map(|p| Input::open(p).unwrap()).collect();
    let p = parity::compare(cap, inputs).unwrap();
    eprintln!("sql parity: {}", p.compared.join(", "));
    assert!(
        p.mismatches.is_empty(),
        "views differ from the analyzer:\n{}",
        p.mismatches.join("\n")
    );
    // Not an empty comparison: the fixture's workload is in every view.
    assert!(
        p.compared.iter().all(|c| !c.contains(": 0 ")),
        "{:?}",
        p.compared
    );
}

#[test]
fn views_equal_the_analyzer_on_the_fixture() {
    let f = fixture("basic");
    let cap = Capture::open(&f.dir).unwrap();
    assert_parity(&cap, &[&f.dir]);
}

/// `runq_latency` and `offcpu` of local captures are computed natively: row for row what the
/// views' SQL gives on the same capture.
#[test]
fn native_views_equal_their_sql_row_for_row() {
    let f = fixture("basic");
    let inputs = [Input::open(&f.dir).unwrap()];
    for view in flightrec_analyzer::sql::native::View::ALL {
        let native = parity::view_rows(&inputs, view.name(), true).unwrap();
        let sql = parity::view_rows(&inputs, view.name(), false).unwrap();
        assert!(
            native.len() > 1000,
            "{}: {} rows",
            view.name(),
            native.len()
        );
        let first = native.iter().zip(&sql).find(|(a, b)| a != b);
        assert!(
            native.len() == sql.len() && first.is_none(),
            "{}: {} native rows, {} by SQL; first difference: {first:?}",
            view.name(),
            native.len(),
            sql.len()
        );
        eprintln!(
            "native {}: {} rows equal the SQL's",
            view.name(),
            native.len()
        );
    }
}

#[test]
fn a_lake_tree_gives_the_same_answers_in_portable_types() {
    let f = fixture("basic");
    let cap = Capture::open(&f.dir).unwrap();
    let tree = tempfile::tempdir().unwrap();
    let done = lake::write::export(&cap, tree.path()).unwrap();
    let id = &done.capture;
    // One file per table and capture, under host= and date= directories.
    let file = tree
        .path()
        .join("sched_switch/host=vm/date=2026-11-28")
        .join(format!("{id}.parquet"));
    assert!(file.is_file(), "{} missing", file.display());
    // No unsigned integers and no dictionaries in the files: every engine reads them alike.
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&file).unwrap(),
    )
    .unwrap();
    for field in reader.schema().fields() {
        let t = field.data_type().to_string();
        assert!(
            !t.contains("UInt") && !t.contains("Dictionary"),
            "{} is {t}",
            field.name()
        );
    }
    // The partition columns are in the paths only (Spark refuses a column in both).
    assert!(reader.schema().column_with_name("host").is_none());
    assert_parity(&cap, &[tree.path()]);

    // Kernel addresses keep their bits: the folded names match the analyzer's above, and the
    // addresses are negative as signed 64-bit numbers.
    let neg = ok(&[
        "sql",
        tree.path().to_str().unwrap(),
        "--format",
        "csv",
        "-e",
        "SELECT COUNT(*) AS n FROM kernel_symbols WHERE addr < 0",
    ]);
    let n: u64 = neg.lines().nth(1).unwrap().parse().unwrap();
    assert!(n > 0, "{neg}");

    // host= and date= prune directories: another host reads no file and counts nothing.
    let lake = tree.path().to_str().unwrap();
    let count = |filter: &str| -> u64 {
        let out = ok(&[
            "sql",
            lake,
            "--format",
            "csv",
            "-e",
            &format!("SELECT COUNT(*) FROM sched_switch WHERE {filter}"),
        ]);
        out.lines().nth(1).unwrap().parse().unwrap()
    };
    let all = count("true");
    assert_eq!(
        all,
        cap.segments
            .iter()
            .map(|s| s.meta.rows["sched_switch"])
            .sum::<u64>()
    );
    assert_eq!(count("host = 'vm'"), all);
    assert_eq!(count("host = 'elsewhere'"), 0);
    assert_eq!(count("date = '2026-11-28'"), all);
    let plan = ok(&[
        "sql",
        lake,
        "--format",
        "csv",
        "-e",
        "EXPLAIN SELECT COUNT(*) FROM sched_switch WHERE host = 'elsewhere'",
    ]);
    assert!(
        !plan.contains(".parquet"),
        "a pruned host still lists files: {plan}"
    );

    // A capture given twice as a directory and as a lake counts twice: the rows say from where.
    let both = ok(&[
        "sql",
        lake,
        f.dir.to_str().unwrap(),
        "--format",
        "csv",
        "-e",
        "SELECT capture, COUNT(*) FROM captures GROUP BY capture",
    ]);
    assert!(both.contains(&format!("{id},2")), "{both}");
}

#[test]
fn a_bundle_is_an_input_like_a_directory() {
    let f = fixture("basic");
    let cap = Capture::open(&f.dir).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("incident.tar");
    super::bundle::tar_of_dir(&f.dir, &bundle);
    assert_parity(&cap, &[&bundle]);
}

#[test]
fn output_formats_and_errors() {
    let f = fixture("basic");
    let d = f.dir.to_str().unwrap();
    let q =
        "SELECT comm, COUNT(*) AS samples FROM samples GROUP BY comm ORDER BY samples DESC, comm";
    let text = ok(&["sql", d, "-e", q]);
    assert!(
        text.contains("| comm") && text.contains("flightrec-workl"),
        "{text}"
    );
    let csv = ok(&["sql", d, "--format", "csv", "-e", q]);
    assert!(csv.starts_with("comm,samples\n"), "{csv}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["sql", d, "--format", "json", "-e", q])).unwrap();
    let rows = json.as_array().unwrap();
    let total: u64 = rows.iter().map(|r| r["samples"].as_u64().unwrap()).sum();
    let profile = super::json(&["profile", d]);
    assert_eq!(total, profile["total"].as_u64().unwrap());
    let out = tempfile::tempdir().unwrap();
    let pq = out.path().join("r.parquet");
    ok(&[
        "sql",
        d,
        "--format",
        "parquet",
        "-o",
        pq.to_str().unwrap(),
        "-e",
        q,
    ]);
    let rows: usize = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&pq).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap()
    .map(|b| b.unwrap().num_rows())
    .sum();
    assert_eq!(rows, json.as_array().unwrap().len());
    // Folded lines feed flame graph tools: the same sums as `offcpu --folded` (µs there).
    let lines = ok(&[
        "sql",
        d,
        "--format",
        "folded",
        "-e",
        "SELECT folded, SUM(offcpu_ns) / 1000 FROM offcpu GROUP BY folded HAVING SUM(offcpu_ns) / 1000 > 0",
    ]);
    let mut ours: Vec<&str> = lines.lines().collect();
    let analyzer = ok(&["offcpu", d, "--folded"]);
    let mut theirs: Vec<&str> = analyzer.lines().collect();
    ours.sort_unstable();
    theirs.sort_unstable();
    assert!(!ours.is_empty());
    assert_eq!(ours, theirs);
    let tables = ok(&["sql", d, "--tables"]);
    for t in [
        "sched_switch (table)",
        "captures (table)",
        "offcpu (view)",
        "processes (view)",
    ] {
        assert!(tables.contains(t), "{t} not listed: {tables}");
    }
    for (args, want) in [
        (vec!["sql", d, "-e", "SELEC 1"], "SQL error"),
        (vec!["sql", d, "-e", "SELECT * FROM nosuch"], "nosuch"),
        (vec!["sql", d], "no query"),
        (
            vec!["sql", "/nonexistent", "-e", "SELECT 1"],
            "neither a flightrec capture",
        ),
        (
            vec!["sql", d, "--format", "parquet", "-e", "SELECT 1"],
            "needs -o",
        ),
    ] {
        let (success, stdout, stderr) = analyze(&args);
        assert!(!success, "{args:?} succeeded: {stdout}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}

#[test]
fn a_lake_of_several_hosts_answers_per_host_like_the_analyzer_on_each() {
    let f = fixture("basic");
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("lake");
    let hosts = ["db-1", "web-1", "web-2"];
    for host in hosts {
        // The fixture as if recorded on another host: only the manifest says where.
        let copy = tmp.path().join(host);
        copy_dir(&f.dir, &copy);
        let path = copy.join("manifest.json");
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        m["host"] = host.into();
        std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
        lake::write::export(&Capture::open(&copy).unwrap(), &tree).unwrap();
        assert!(tree.join(format!("sched_switch/host={host}")).is_dir());
    }
    let runq = super::json(&["latency", f.dir.to_str().unwrap(), "--kind", "runq"]);
    let (n, p99) = (
        runq["groups"][0]["count"].as_u64().unwrap(),
        runq["groups"][0]["percentiles"]["p99"].as_u64().unwrap(),
    );
    // The README's fleet question: per-host nearest-rank p99 of run-queue latency.
    let out = ok(&[
        "sql",
        tree.to_str().unwrap(),
        "--format",
        "csv",
        "-e",
        "WITH r AS (SELECT host, latency_ns AS d, \
           ROW_NUMBER() OVER (PARTITION BY host ORDER BY latency_ns) AS rn, \
           COUNT(*) OVER (PARTITION BY host) AS n FROM runq_latency) \
         SELECT host, COUNT(*) AS n, MIN(CASE WHEN rn >= CEIL(CAST(0.99 AS DOUBLE) * n) THEN d END) AS p99 \
         FROM r GROUP BY host ORDER BY host",
    ]);
    let want: String = std::iter::once("host,n,p99".to_string())
        .chain(hosts.iter().map(|h| format!("{h},{n},{p99}")))
        .map(|l| l + "\n")
        .collect();
    assert_eq!(out, want);
    let one = ok(&[
        "sql",
        tree.to_str().unwrap(),
        "--format",
        "csv",
        "-e",
        "SELECT COUNT(*) FROM runq_latency WHERE host = 'web-2'",
    ]);
    assert_eq!(one.lines().nth(1), Some(n.to_string().as_str()));
}

#[test]
fn a_cluster_that_does_not_answer_or_a_capture_sent_to_one_is_one_line() {
    let f = fixture("basic");
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("lake");
    lake::write::export(&Capture::open(&f.dir).unwrap(), &tree).unwrap();
    // Port 1 on the loopback: nothing listens there.
    let (ok, _, err) = analyze(&[
        "sql",
        "--cluster",
        "df://127.0.0.1:1",
        tree.to_str().unwrap(),
        "-e",
        "SELECT COUNT(*) FROM runq_latency",
    ]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "flightrec-analyze: cannot reach the Ballista scheduler at df://127.0.0.1:1 (connection refused): start one with `flightrec-cluster scheduler`"
    );
    let (ok, _, err) = analyze(&[
        "sql",
        "--cluster",
        "df://127.0.0.1:1",
        f.dir.to_str().unwrap(),
        "-e",
        "SELECT 1",
    ]);
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("reads lake trees only"), "{err}");
}
