//! When the machine is in trouble: a full disk, and the recorder killed with SIGKILL at random.
use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::*;

fn verify(dir: &Path) -> (bool, String) {
    let out = Command::new(workspace_bin("flightrec-analyze"))
        .arg("verify")
        .arg(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("panicked"), "{text}");
    (out.status.success(), text)
}

fn no_partial_segments(dir: &Path) {
    let partial: Vec<_> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(
        partial.is_empty(),
        "half-written segments left: {partial:?}"
    );
}

/// A background load until dropped: a flood of context switches, or a steady one (a thread waking
/// every millisecond) that a debug build of the recorder keeps up with.
struct Load(std::process::Child);

impl Load {
    fn flood() -> Load {
        Load(
            workload()
                .args(["--pingpong", "100000000"])
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    fn steady() -> Load {
        Load(
            workload()
                .args(["--sleeps", "100000000", "--sleep-ms", "1"])
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A tmpfs mounted for one test, unmounted however it ends.
struct Tmpfs(tempfile::TempDir);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn full_disk_keeps_recording_evicts_and_breaks_no_segment() {
    require_root!();
    let mnt = Tmpfs(tempfile::tempdir().unwrap());
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(mnt.0.path())
        .status()
        .unwrap();
    assert!(ok.success(), "mount tmpfs");
    let dir = mnt.0.path().join("cap");
    let load = Load::flood();
    let started = Instant::now();
    let out = Command::new(workspace_bin("flightrec"))
        .args([
            "record",
            "--quiet",
            "--events",
            "sched",
            "--segment",
            "1s",
            "--duration",
            "5s",
            "--dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    drop(load);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("recorder on a full disk said:\n{stderr}");
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "kept recording for the whole duration"
    );
    assert!(!out.status.success(), "a lost segment is an error at exit");
    assert!(
        stderr.contains("No space left on device"),
        "the cause is reported"
    );
    assert!(stderr.contains("segments could not be written"));
    assert!(
        stderr
            .lines()
            .filter(|l| !l.is_empty())
            .all(|l| l.starts_with("flightrec: ")),
        "one-line messages"
    );
    no_partial_segments(&dir);
    let (ok, report) = verify(&dir);
    assert!(ok, "every finished segment is readable: {report}");
}

#[test]
fn kill_9_at_random_moments_leaves_a_readable_capture() {
    require_root!();
    let kills: u32 = std::env::var("FLIGHTREC_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let cap = tempfile::tempdir().unwrap();
    let _load = Load::steady();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("{kills} kills, seed {seed}");
    let mut last_max = None;
    let mut early = 0;
    for i in 0..kills {
        let mut child = Command::new(workspace_bin("flightrec"))
            .args([
                "record",
                "--quiet",
                "--events",
                "sched,process",
                "--segment",
                "300ms",
                "--dir",
            ])
            .arg(cap.path())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        while !cap.path().join("manifest.json").exists() {
            std::thread::sleep(Duration::from_millis(10));
        }
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let wait = 300 + (seed >> 33) % 2700;
        std::thread::sleep(Duration::from_millis(wait));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "killed");
        let (ok, report) = verify(cap.path());
        if !ok && report.contains("holds no finished segment") {
            // Killed before its first segment was finished: nothing recorded yet, nothing broken.
            eprintln!("kill {i} at {wait} ms came before the first finished segment");
            early += 1;
            continue;
        }
        assert!(ok, "after kill {i} at {wait} ms: {report}");
        // Segment ids only grow: a restart continues the window, never rewrites it.
        let c = Capture::open(cap.path());
        let ids: Vec<u64> = c.segment_metas().iter().map(|m| m.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        if let (Some(prev), Some(max)) = (last_max, ids.last()) {
            assert!(*max >= prev, "ids went back: {prev} -> {max}");
        }
        last_max = ids.last().copied().or(last_max);
    }
    assert!(
        early * 2 <= kills,
        "{early} of {kills} kills came before any segment was finished"
    );
    // A final clean start removes what the last kill left half-written.
    Recording::start(cap.path(), &["--events", "sched", "--duration", "1s"]).wait();
    no_partial_segments(cap.path());
    let (ok, report) = verify(cap.path());
    assert!(ok, "{report}");
    eprintln!("{report}");
}

#[test]
fn records_as_an_unprivileged_user_with_capabilities_only() {
    require_root!();
    let tmp = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(tmp.path(), Some(65534), Some(65534)).unwrap();
    let dir = tmp.path().join("cap");
    // Tracefs must be mounted already: mounting it is the one step that needs CAP_SYS_ADMIN.
    let _ = Command::new(workspace_bin("flightrec"))
        .args(["record", "--dir"])
        .arg(tmp.path().join("warm"))
        .args(["--duration", "1s", "--quiet"])
        .status();
    let caps = "-all,+bpf,+perfmon,+dac_read_search,+syslog";
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(format!("--inh-caps={caps}"))
        .arg(format!("--ambient-caps={caps}"))
        .arg(workspace_bin("flightrec"))
        .args([
            "record",
            "--events",
            "sched,process,profile",
            "--duration",
            "2s",
            "--quiet",
            "--dir",
        ])
        .arg(&dir)
        .output()
        .expect("setpriv (util-linux)");
    assert!(
        out.status.success(),
        "as nobody with capabilities: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, report) = verify(&dir);
    assert!(ok, "{report}");
    let folded = run_ok(
        "flightrec-analyze",
        &["offcpu", dir.to_str().unwrap(), "--folded"],
    );
    assert!(folded.lines().count() > 3, "events recorded:\n{folded}");
    assert!(
        folded.contains(";schedule;__schedule"),
        "kernel frames named with CAP_SYSLOG:\n{folded}"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&dir).unwrap().uid(),
        65534,
        "files belong to the unprivileged user"
    );
}
