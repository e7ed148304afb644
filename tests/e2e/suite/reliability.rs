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

    fn syscalls() -> Load {
        Load(
            workload()
                .args(["--syscall-rate", "0", "--syscall-secs", "30"])
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
    let _exclusive = exclusive();
    let mnt = Tmpfs(tempfile::tempdir().unwrap());
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(mnt.0.path())
        .status()
        .unwrap();
    assert!(ok.success(), "mount tmpfs");
    let dir = mnt.0.path().join("cap");
    let started = Instant::now();
    let rec = Command::new(workspace_bin("flightrec"))
        .args([
            "record",
            "--quiet",
            "--events",
            "sched,syscall",
            "--segment",
            "1s",
            "--duration",
            "5s",
            "--dir",
        ])
        .arg(&dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A quiet first second writes a small segment (waited for: on a loaded machine its write can
    // take longer than the second after it); then the tmpfs is filled but for 64 KiB and switches
    // and syscalls flood in: later segments cannot all fit, whatever the flood's rate.
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && Manifest::read(&dir.join(MANIFEST_FILE))
            .ok()
            .is_none_or(|m| m.segments.is_empty())
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    fill_but(mnt.0.path(), 64 << 10);
    let load = (Load::flood(), Load::syscalls());
    let out = rec.wait_with_output().unwrap();
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
    let (ok, verified) = verify(&dir);
    assert!(ok, "every finished segment is readable: {verified}");
    // The capture itself says what it lacks: each unwritten segment with its events, counted as
    // lost by every analysis of its time.
    let c = Capture::open(&dir);
    let unwritten = &c.manifest.unwritten;
    let lost: u64 = unwritten.iter().map(|u| u.events()).sum();
    report(&format!(
        "full disk: {} segments kept, {} unwritten holding {lost} events ({:?})",
        c.manifest.segments.len(),
        unwritten.len(),
        unwritten.first().map(|u| &u.error)
    ));
    assert!(
        !unwritten.is_empty() && unwritten.iter().all(|u| u.events() > 0),
        "unwritten segments and their events are in the manifest"
    );
    assert!(unwritten.iter().all(|u| u.error.contains("No space left")));
    let kept: Vec<u64> = c.manifest.segments.iter().map(|s| s.id).collect();
    assert!(unwritten.iter().all(|u| !kept.contains(&u.id)));
    let summary = run_ok("flightrec-analyze", &["summary", dir.to_str().unwrap()]);
    assert!(
        summary.contains("WARNING") && summary.contains("in segments the recorder could not write"),
        "{summary}"
    );
}

/// Fills the file system at `dir` with a file, then shrinks it to leave `free` bytes.
fn fill_but(dir: &Path, free: u64) {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 << 10];
    let mut written = 0u64;
    while f.write_all(&chunk).is_ok() {
        written += chunk.len() as u64;
    }
    let _ = f.flush();
    f.set_len(written.saturating_sub(free)).unwrap();
}

/// The newest event timestamp up to `until` in the finished segments, read from the Parquet files
/// themselves with the parquet crate (not the analyzer), every event table in full.
fn newest_event(dir: &Path, until: u64) -> Option<u64> {
    let c = Capture::open(dir);
    Table::ALL
        .into_iter()
        .filter(|t| t.is_event_table())
        .flat_map(|t| c.table(t))
        .flat_map(|b| u64s(&b, "ts"))
        .flatten()
        .filter(|&ts| ts <= until)
        .max()
}

/// Waits until the recorder started in `dir` accepts on its control socket (a socket file left by a
/// killed predecessor refuses connections); returns that moment.
fn attached(dir: &Path, child: &mut std::process::Child) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if std::os::unix::net::UnixStream::connect(dir.join("control.sock")).is_ok() {
            return monotonic_ns();
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the recorder exited before attaching"
        );
        assert!(Instant::now() < deadline, "not attached within 60 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How much recording before `killed` is missing from the capture, in ms.
fn loss_ms(dir: &Path, killed: u64) -> u64 {
    killed.saturating_sub(newest_event(dir, killed).unwrap_or(0)) / 1_000_000
}

fn salvage(dir: &Path) -> String {
    let out = Command::new(workspace_bin("flightrec"))
        .arg("salvage")
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "salvage failed: {text}");
    text
}

#[test]
fn kill_9_at_random_moments_loses_at_most_the_last_second() {
    require_root!();
    let _exclusive = exclusive();
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
    let mut worst_loss_ms = 0u64;
    let mut last_kill = (0, 0);
    for i in 0..kills {
        // Two-second segments: kills land in the first segment, right after a cut, and mid-way.
        let mut child = Command::new(workspace_bin("flightrec"))
            .args([
                "record",
                "--quiet",
                "--events",
                "sched,process",
                "--segment",
                "2s",
                "--dir",
            ])
            .arg(cap.path())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Loss is measured from the moment the programs are attached, which a start-up slowed by
        // a busy machine (the /proc scan, kallsyms, loading) can put seconds after the spawn:
        // the recorder accepts on its control socket once it records.
        let attached_at = attached(cap.path(), &mut child);
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let wait = 300 + (seed >> 33) % 4700;
        std::thread::sleep(Duration::from_millis(wait));
        let killed = monotonic_ns();
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "killed");
        last_kill = (attached_at, killed);
        // Salvaged by `flightrec salvage`, or by `flightrec export` (every other kill); the last
        // kill is left for the final clean start.
        if i + 1 < kills && i % 2 == 0 {
            salvage(cap.path());
        } else if i + 1 < kills {
            let tar = cap.path().with_extension("tar");
            let out = Command::new(workspace_bin("flightrec"))
                .arg("export")
                .arg(cap.path())
                .arg("-o")
                .arg(&tar)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            // Nothing to export yet only when every kill so far came before the first checkpoint.
            assert!(
                out.status.success() || err.contains("holds no finished segment"),
                "export after kill {i}: {err}"
            );
            let _ = std::fs::remove_file(tar);
        }
        if i + 1 < kills {
            let journals: Vec<_> = std::fs::read_dir(cap.path().join("segments"))
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".journal"))
                .collect();
            assert!(journals.is_empty(), "journals left: {journals:?}");
        }
        let (ok, report) = verify(cap.path());
        if i + 1 < kills {
            // Killed before the first checkpoint of the first run: nothing recorded, nothing broken.
            let nothing_yet =
                !ok && report.contains("holds no finished segment") && last_max.is_none();
            assert!(
                ok || (nothing_yet && killed - attached_at <= 1_000_000_000),
                "after kill {i} at {wait} ms: {report}"
            );
            // Events up to a second before the kill are on disk: the steady load switches every
            // millisecond, so a gap longer than that is lost recording. A kill within a second of
            // attaching may come before the first checkpoint and lose everything.
            if killed - attached_at > 1_000_000_000 {
                let loss_ms = loss_ms(cap.path(), killed);
                assert!(
                    loss_ms <= 1000,
                    "kill {i} at {wait} ms lost the last {loss_ms} ms of events"
                );
                worst_loss_ms = worst_loss_ms.max(loss_ms);
            }
        }
        // Segment ids only grow: a restart continues the window, never rewrites it.
        let c = Capture::open(cap.path());
        let ids: Vec<u64> = c.segment_metas().iter().map(|m| m.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        if let (Some(prev), Some(max)) = (last_max, ids.last()) {
            assert!(*max >= prev, "ids went back: {prev} -> {max}");
        }
        last_max = ids.last().copied().or(last_max);
    }
    eprintln!("worst loss over {kills} kills: {worst_loss_ms} ms");
    // A clean start salvages the last kill's journal and removes what it left half-written.
    Recording::start(cap.path(), &["--events", "sched", "--duration", "1s"]).wait();
    no_partial_segments(cap.path());
    let salvaged: Vec<_> = Capture::open(cap.path())
        .segment_metas()
        .into_iter()
        .filter(|m| m.salvaged)
        .collect();
    assert!(
        salvaged.len() as u32 >= kills / 2,
        "only {} salvaged segments after {kills} kills",
        salvaged.len()
    );
    let (attached_at, killed) = last_kill;
    if killed - attached_at > 1_000_000_000 {
        let loss = loss_ms(cap.path(), killed);
        assert!(
            loss <= 1000,
            "the last kill lost the last {loss} ms of events"
        );
    }
    let (ok, report) = verify(cap.path());
    assert!(ok, "{report}");
    eprintln!("{report}");
}

#[test]
fn without_privileges_the_recorder_says_what_is_missing_in_one_line() {
    require_root!();
    let tmp = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(tmp.path(), Some(65534), Some(65534)).unwrap();
    let dir = tmp.path().join("cap");
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(workspace_bin("flightrec"))
        .args(["record", "--duration", "1s", "--dir"])
        .arg(&dir)
        .output()
        .expect("setpriv (util-linux)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("privileges to load BPF programs missing") && err.contains("CAP_BPF"),
        "{err}"
    );
    // Nothing was created.
    assert!(!dir.exists());
    // And as root, `flightrec check` finds everything here.
    let out = Command::new(workspace_bin("flightrec"))
        .arg("check")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !text.contains("MISSING"), "{text}");
    assert!(
        text.contains("ok       tracepoint lock:contention_begin"),
        "{text}"
    );
}

#[test]
fn records_as_an_unprivileged_user_with_capabilities_only() {
    require_root!();
    // Alone: the program lives ~200 ms, and beside other tests' recorders and loads the recorder
    // can reach it only after it has exited (its mappings unread, so no user frames): the likely
    // cause of two CI failures, which say nothing about capabilities.
    let _exclusive = exclusive();
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
    let build = tempfile::tempdir().unwrap();
    let program = super::incident::build_shortlived(build.path());
    let recorder = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(format!("--inh-caps={caps}"))
        .arg(format!("--ambient-caps={caps}"))
        .arg(workspace_bin("flightrec"))
        .args([
            "record",
            "--events",
            "sched,process,profile",
            "--freq",
            "199",
            "--duration",
            "60s",
            "--quiet",
            "--dir",
        ])
        .arg(&dir)
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv (util-linux)");
    // The manifest is written once the programs are attached.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dir.join("manifest.json").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // A root process the unprivileged recorder must read the mappings of (CAP_SYS_PTRACE) and
    // whose binary it must open (CAP_DAC_READ_SEARCH).
    let child = Command::new(&program)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    assert!(child.wait_with_output().unwrap().status.success());
    // Stopped once the program is done, not on a timer: under a loaded CI machine the program's
    // 100 ms of CPU can take seconds, and a timer ran out before its sleeps were recorded.
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on the recorder's pid (setpriv execs it), which is still our child.
    unsafe { libc::kill(recorder.id() as i32, libc::SIGINT) };
    let out = recorder.wait_with_output().unwrap();
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
    let own = run_ok(
        "flightrec-analyze",
        &["offcpu", dir.to_str().unwrap(), "--pid", &pid, "--folded"],
    );
    if !own
        .lines()
        .any(|l| l.contains("flightrec_c_sleep_here") && l.contains("do_nanosleep"))
    {
        // What the capture holds of the program, for the report: its events and the losses.
        let summary = run_ok("flightrec-analyze", &["summary", dir.to_str().unwrap()]);
        let tl = run_ok(
            "flightrec-analyze",
            &["timeline", dir.to_str().unwrap(), "--pid", &pid],
        );
        panic!(
            "user frames of a root process named by the unprivileged recorder:\n{own}\n\
             timeline of {pid}:\n{tl}\nsummary:\n{summary}"
        );
    }
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&dir).unwrap().uid(),
        65534,
        "files belong to the unprivileged user"
    );
}
