//! SQL on a real Apache DataFusion Ballista cluster: a scheduler and two executors, each its own
//! `flightrec-cluster` process on 127.0.0.1, run the views over a lake of two captures recorded
//! just now (given two host names); both executors run tasks of the jobs, and every answer equals
//! the one the embedded engine gives on the same lake.
use std::{
    fs,
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use flightrec_analyzer::sql::{parity, source::Input};

use super::*;

/// A process of the cluster, killed when the test ends however it ends.
struct Node {
    child: Child,
    log: PathBuf,
}

impl Node {
    fn start(args: &[String], log: PathBuf) -> Node {
        let out = fs::File::create(&log).unwrap();
        let child = Command::new(workspace_bin("flightrec-cluster"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("start flightrec-cluster");
        Node { child, log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Tasks this executor finished.
    fn finished_tasks(&self) -> usize {
        self.log().matches("Finished task").count()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16, node: &Node) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nothing listens on {port}:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Records `workload` for a moment into `dir`, then names the capture's host `host`.
fn record_as(dir: &Path, host: &str, workload_args: &[&str]) {
    let rec = Recording::start(
        dir,
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
        .args(workload_args)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(300));
    rec.stop();
    let manifest = dir.join(flightrec_schemas::MANIFEST_FILE);
    let mut m: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&manifest).unwrap()).unwrap();
    m["host"] = host.into();
    fs::write(&manifest, serde_json::to_string_pretty(&m).unwrap()).unwrap();
}

#[test]
fn ballista_cluster_of_two_executors_answers_like_the_embedded_engine() {
    require_root!();
    // Three busy processes of its own: alone, not beside tests that count exactly.
    let _exclusive = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let (web, db) = (dir.path().join("web-1"), dir.path().join("db-1"));
    record_as(
        &web,
        "web-1",
        &["--sleeps", "10", "--sleep-ms", "10", "--pingpong", "2000"],
    );
    let work = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let work = work.path().to_str().unwrap();
    record_as(
        &db,
        "db-1",
        &[
            "--sleeps",
            "20",
            "--sleep-ms",
            "5",
            "--burn-ms",
            "300",
            "--writes",
            "8",
            "--dir",
            work,
        ],
    );
    let lake = dir.path().join("lake");
    run_ok(
        "flightrec",
        &[
            "export",
            "--lake",
            lake.to_str().unwrap(),
            web.to_str().unwrap(),
            db.to_str().unwrap(),
        ],
    );

    let sched_port = free_port();
    let scheduler = Node::start(
        &[
            "scheduler".into(),
            "--port".into(),
            sched_port.to_string(),
            "--external-host".into(),
            "127.0.0.1".into(),
            "--min-executors".into(),
            "2".into(),
        ],
        dir.path().join("scheduler.log"),
    );
    wait_listening(sched_port, &scheduler);
    let executors: Vec<Node> = (0..2)
        .map(|i| {
            let work = dir.path().join(format!("work-{i}"));
            fs::create_dir_all(&work).unwrap();
            let (port, grpc) = (free_port(), free_port());
            let node = Node::start(
                &[
                    "executor".into(),
                    "--port".into(),
                    port.to_string(),
                    "--grpc-port".into(),
                    grpc.to_string(),
                    "--scheduler".into(),
                    format!("127.0.0.1:{sched_port}"),
                    "--concurrent-tasks".into(),
                    "2".into(),
                    "--work-dir".into(),
                    work.to_str().unwrap().into(),
                    "--id".into(),
                    format!("executor-{i}"),
                ],
                dir.path().join(format!("executor-{i}.log")),
            );
            wait_listening(port, &node);
            node
        })
        .collect();
    let url = format!("df://127.0.0.1:{sched_port}");

    // Every contract query (distributions, buckets, folded stacks of the views) and the README's
    // per-host fleet question, on the cluster and embedded.
    let mut queries = parity::contract_queries();
    queries.push((
        "per-host runq p99".into(),
        "WITH r AS (SELECT host, latency_ns AS d, \
           ROW_NUMBER() OVER (PARTITION BY host ORDER BY latency_ns) AS rn, \
           COUNT(*) OVER (PARTITION BY host) AS n FROM runq_latency) \
         SELECT host, COUNT(*) AS n, MIN(CASE WHEN rn >= CEIL(CAST(0.99 AS DOUBLE) * n) THEN d END) AS p99 \
         FROM r GROUP BY host ORDER BY host"
            .into(),
    ));
    let started = Instant::now();
    let local = parity::rows_as_text(vec![Input::open(&lake).unwrap()], &queries, None).unwrap();
    let local_time = started.elapsed();
    let started = Instant::now();
    let remote = parity::rows_as_text(vec![Input::open(&lake).unwrap()], &queries, Some(&url))
        .unwrap_or_else(|e| {
            panic!(
                "cluster: {e:#}\nscheduler:\n{}\nexecutor-0:\n{}",
                scheduler.log(),
                executors[0].log()
            )
        });
    let remote_time = started.elapsed();
    for (((name, _), l), r) in queries.iter().zip(&local).zip(&remote) {
        assert!(!l.is_empty(), "{name}: no rows, nothing compared");
        assert_eq!(
            l, r,
            "{name}: the cluster's rows differ from the embedded engine's"
        );
    }
    let hosts = &local.last().unwrap();
    assert_eq!(
        hosts.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
        ["db-1", "web-1"],
        "both captures' hosts answer"
    );

    // The command line, as the README shows it.
    let q = "SELECT host, COUNT(*) AS switches FROM sched_switch GROUP BY host ORDER BY host";
    let lake_arg = lake.to_str().unwrap();
    let on_cluster = run_ok(
        "flightrec-analyze",
        &["sql", "--cluster", &url, lake_arg, "-e", q],
    );
    assert_eq!(
        on_cluster,
        run_ok("flightrec-analyze", &["sql", lake_arg, "-e", q])
    );

    let tasks: Vec<usize> = executors.iter().map(Node::finished_tasks).collect();
    report(&format!(
        "cluster: {} queries equal on 2 executors (tasks finished {tasks:?}); embedded {local_time:.1?}, cluster {remote_time:.1?}",
        queries.len()
    ));
    assert!(
        tasks.iter().all(|&t| t > 0),
        "an executor ran no task: {tasks:?}\nexecutor-0:\n{}\nexecutor-1:\n{}",
        executors[0].log(),
        executors[1].log()
    );
}
