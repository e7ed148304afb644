//! A Ballista cluster for the SQL rows of the analyzer benchmark: a `flightrec-cluster` scheduler
//! and two executors on 127.0.0.1, stopped when dropped.
use std::{
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

/// The running processes, scheduler first.
pub struct Cluster {
    nodes: Vec<Child>,
    /// `df://127.0.0.1:PORT`.
    pub url: String,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_listening(port: u16) -> Result<()> {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(60) {
            bail!("flightrec-cluster did not listen on {port} within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

impl Cluster {
    /// Starts a scheduler and `executors` executors, each running `tasks` tasks at once.
    pub fn start(bins: &str, executors: usize, tasks: usize) -> Result<Cluster> {
        let exe = format!("{bins}/flightrec-cluster");
        let spawn = |args: Vec<String>| {
            Command::new(&exe)
                .args(args)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("starting {exe}"))
        };
        let port = free_port()?;
        let mut cluster = Cluster {
            nodes: vec![spawn(vec![
                "scheduler".into(),
                "--port".into(),
                port.to_string(),
                "--external-host".into(),
                "127.0.0.1".into(),
                "--min-executors".into(),
                executors.to_string(),
            ])?],
            url: format!("df://127.0.0.1:{port}"),
        };
        wait_listening(port)?;
        for _ in 0..executors {
            let (flight, grpc) = (free_port()?, free_port()?);
            cluster.nodes.push(spawn(vec![
                "executor".into(),
                "--port".into(),
                flight.to_string(),
                "--grpc-port".into(),
                grpc.to_string(),
                "--scheduler".into(),
                format!("127.0.0.1:{port}"),
                "--concurrent-tasks".into(),
                tasks.to_string(),
            ])?);
            wait_listening(flight)?;
        }
        Ok(cluster)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            let _ = n.kill();
            let _ = n.wait();
        }
    }
}
