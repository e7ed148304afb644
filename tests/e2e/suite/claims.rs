//! What README.md promises, each checked on the real kernel: the SIGUSR1 freeze, private files,
//! tracefs mounted when missing, ring-buffer drops counted and shown, the tcp source, the in-kernel
//! syscall filter, a binary deleted while it is being recorded.
use std::{
    io::Write,
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use flightrec_schemas::Table;

use super::*;

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigusr1_freezes_the_window_into_a_snapshot() {
    // A recorder of its own: never beside a test that runs alone.
    let _quiet = quiet();
    require_root!();
    let cap = tempfile::tempdir().unwrap();
    let rec = Recording::start(cap.path(), &["--events", "sched", "--segment", "1s"]);
    std::thread::sleep(Duration::from_millis(1500));
    let sent = monotonic_ns();
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(rec.pid() as i32, libc::SIGUSR1) }, 0);
    let snaps = cap.path().join("snapshots");
    let mut snap = None;
    // A snapshot is assembled in a hidden `.NAME.tmp` directory and renamed when complete.
    wait_for("a snapshot after SIGUSR1", Duration::from_secs(10), || {
        snap = std::fs::read_dir(&snaps)
            .ok()
            .and_then(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .find(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            })
            .filter(|p| p.join("manifest.json").exists());
        snap.is_some()
    });
    rec.stop();
    let snap = snap.unwrap();
    let name = snap.file_name().unwrap().to_string_lossy().to_string();
    assert!(name.starts_with("sigusr1-"), "{name}");
    let m = flightrec_schemas::Manifest::read(&snap.join("manifest.json")).unwrap();
    let frozen = m.frozen.expect("frozen");
    assert_eq!(frozen.reason, "SIGUSR1");
    assert!(frozen.cause_ns >= sent, "frozen at the signal, not before");
    assert!(!m.segments.is_empty(), "the window so far is in it");
    let c = Capture::open(&snap);
    assert!(c.table(Table::SchedSwitch).iter().any(|b| b.num_rows() > 0));
}

/// Mode bits of every file and directory below `dir` (and `dir` itself) that differ from 0700 for
/// directories and 0600 for files; sockets must be 0600 too.
fn wrong_modes(dir: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    let mode = std::fs::symlink_metadata(dir).unwrap().permissions().mode() & 0o777;
    if mode != 0o700 {
        bad.push(format!("{} {mode:o}", dir.display()));
    }
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let md = e.metadata().unwrap();
        if md.is_dir() {
            bad.extend(wrong_modes(&e.path()));
        } else if md.permissions().mode() & 0o777 != 0o600 {
            bad.push(format!(
                "{} {:o}",
                e.path().display(),
                md.permissions().mode() & 0o777
            ));
        }
    }
    bad
}

#[test]
fn capture_directories_files_and_control_socket_are_private() {
    // A recorder of its own: never beside a test that runs alone.
    let _quiet = quiet();
    require_root!();
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("cap");
    let rec = Recording::start(&dir, &["--events", "sched,process", "--segment", "1s"]);
    std::thread::sleep(Duration::from_millis(1500));
    let sock = dir.join("control.sock");
    let md = std::fs::symlink_metadata(&sock).expect("control socket");
    assert!(md.file_type().is_socket());
    assert_eq!(md.permissions().mode() & 0o777, 0o600, "control socket");
    let live = wrong_modes(&dir);
    Command::new(workspace_bin("flightrec"))
        .args(["snapshot", "--name", "s", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    rec.stop();
    assert!(live.is_empty(), "while recording: {live:?}");
    let done = wrong_modes(&dir);
    assert!(done.is_empty(), "after recording: {done:?}");
    assert!(dir.join("snapshots/s/manifest.json").exists());
}

#[test]
fn tracefs_is_mounted_when_the_system_has_not() {
    require_root!();
    let cap = tempfile::tempdir().unwrap();
    let c = cap.path().display();
    let bin = workspace_bin("flightrec");
    // A private mount namespace without tracefs (nor debugfs, which would automount it).
    let script = format!(
        "for m in /sys/kernel/tracing /sys/kernel/debug/tracing /sys/kernel/debug; do umount -l $m 2>/dev/null; done
         test -e /sys/kernel/tracing/events && exit 99
         {} record --quiet --events sched --duration 1s --dir {c} || exit $?
         test -d /sys/kernel/tracing/events || exit 98",
        bin.display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare (util-linux)");
    assert_ne!(out.status.code(), Some(99), "tracefs still mounted");
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: usize = Capture::open(cap.path())
        .table(Table::SchedSwitch)
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert!(rows > 0, "switches recorded through the tracefs it mounted");
}

#[test]
fn ring_buffer_drops_are_counted_per_source_and_every_command_warns() {
    require_root!();
    let _exclusive = exclusive();
    let cap = tempfile::tempdir().unwrap();
    let flood = workload()
        .args(["--pingpong", "100000000"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut flood = Killed(flood);
    Recording::start(
        cap.path(),
        &[
            "--events",
            "sched,process,syscall",
            "--ringbuf-size",
            "64KiB",
            "--segment",
            "1s",
            "--duration",
            "3s",
        ],
    )
    .wait();
    let _ = flood.0.kill();
    let c = Capture::open(cap.path());
    let lost = c.sum(|m| &m.lost);
    let emitted = c.sum(|m| &m.emitted);
    report(&format!(
        "64 KiB ring under a flood: lost {lost:?}, emitted {emitted:?}"
    ));
    assert!(lost["sched"] > 0, "the flood overran the ring: {lost:?}");
    assert!(lost["syscall"] > 0, "each source counts its own: {lost:?}");
    // What was not lost is on disk, row for row.
    let rows = c.sum(|m| &m.rows);
    assert_eq!(
        emitted["sched"],
        rows["sched_switch"] + rows["sched_wakeup"]
    );
    let dir = cap.path().to_str().unwrap();
    let svg = cap.path().join("f.svg");
    for args in [
        vec!["summary", dir],
        vec!["latency", dir, "--kind", "runq"],
        vec!["latency", dir, "--kind", "syscall"],
        vec!["offcpu", dir],
        vec!["offcpu", dir, "--folded"],
        vec!["profile", dir],
        vec!["verify", dir],
        vec![
            "flamegraph",
            dir,
            "--kind",
            "offcpu",
            "-o",
            svg.to_str().unwrap(),
        ],
    ] {
        let out = Command::new(workspace_bin("flightrec-analyze"))
            .args(&args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("WARNING") && text.contains("LOST"),
            "{args:?} does not warn:\n{text}"
        );
    }
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `(oldstate, newstate)` transitions of each socket, keyed by (local port, remote port) once
/// the socket has both (its first transitions may carry port 0), in time order.
type Transitions = std::collections::BTreeMap<(u16, u16), Vec<(i32, i32)>>;

fn tcp_transitions(c: &Capture) -> (Transitions, Vec<(u16, u16, i32)>) {
    let mut rows = Vec::new();
    for b in c.table(Table::Tcp) {
        let (ts, ev, sk, old, new) = (
            u64s(&b, "ts"),
            strings(&b, "event"),
            u64s(&b, "skaddr"),
            i32s(&b, "oldstate"),
            i32s(&b, "newstate"),
        );
        let (sport, dport) = (u16s(&b, "sport"), u16s(&b, "dport"));
        for i in 0..b.num_rows() {
            rows.push((
                ts[i].unwrap(),
                ev[i].clone().unwrap(),
                sk[i].unwrap(),
                old[i].unwrap(),
                new[i].unwrap(),
                sport[i].unwrap(),
                dport[i].unwrap(),
            ));
        }
    }
    rows.sort_by_key(|r| r.0);
    // A socket's ports are known from its second transition on; its address is reused after it
    // closes, so transitions are grouped per address between CLOSE and CLOSE.
    let mut open: std::collections::HashMap<u64, Vec<(i32, i32, u16, u16)>> = Default::default();
    let mut out = Transitions::new();
    let mut retransmits = Vec::new();
    for (_, ev, sk, old, new, sport, dport) in rows {
        if ev == "retransmit" {
            retransmits.push((sport, dport, new));
            continue;
        }
        // Resets are not transitions (the state change they cause is recorded as its own row).
        if ev != "state" {
            continue;
        }
        let seq = open.entry(sk).or_default();
        seq.push((old, new, sport, dport));
        if new == 7 {
            let seq = open.remove(&sk).unwrap();
            let sport = seq.iter().map(|s| s.2).max().unwrap_or(0);
            let dport = seq.iter().map(|s| s.3).max().unwrap_or(0);
            out.entry((sport, dport))
                .or_default()
                .extend(seq.iter().map(|s| (s.0, s.1)));
        }
    }
    (out, retransmits)
}

#[test]
fn tcp_source_records_the_state_sequence_of_loopback_connections_and_a_retransmit() {
    // Counts every loopback connection in the capture: alone, since other tests (timeline) make
    // connections of their own.
    let _exclusive = exclusive();
    require_root!();
    let cap = tempfile::tempdir().unwrap();
    let rec = Recording::start(cap.path(), &["--events", "tcp", "--segment", "1s"]);
    let out = workload()
        .args(["--tcp", "3", "--tcp-retransmit"])
        .output()
        .unwrap();
    assert!(out.status.success());
    rec.stop();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let listener: u16 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("retransmit "))
        .and_then(|p| p.trim().parse().ok())
        .expect("the workload prints its listener's port");
    let (conns, retransmits) = tcp_transitions(&Capture::open(cap.path()));
    // TCP states: 1 ESTABLISHED, 2 SYN_SENT, 3 SYN_RECV, 4 FIN_WAIT1, 5 FIN_WAIT2, 7 CLOSE,
    // 8 CLOSE_WAIT, 9 LAST_ACK, 10 LISTEN, 11 CLOSING. Every transition recorded must be an edge of
    // the TCP state machine as Linux reports it (entering TIME_WAIT hands the connection to a
    // time-wait socket and reports CLOSE; a reset closes from any synchronized state), each
    // socket's transitions chain, and each ends in CLOSE.
    const EDGES: [(i32, i32); 19] = [
        (7, 2),
        (7, 10),
        (10, 3),
        (10, 7),
        (2, 1),
        (2, 7),
        (3, 1),
        (3, 7),
        (1, 4),
        (1, 8),
        (1, 7),
        (4, 5),
        (4, 11),
        (4, 7),
        (5, 7),
        (11, 7),
        (8, 9),
        (8, 7),
        (9, 7),
    ];
    let mut clients = 0;
    let mut servers = 0;
    for ((sport, dport), t) in &conns {
        assert!(
            t.iter().all(|e| EDGES.contains(e))
                && t.windows(2).all(|w| w[0].1 == w[1].0)
                && t.last().is_some_and(|e| e.1 == 7),
            "socket {sport}/{dport}: {t:?}"
        );
        if t.starts_with(&[(7, 2), (2, 1)]) {
            clients += 1;
        } else if t.starts_with(&[(10, 3), (3, 1)]) {
            servers += 1;
        }
    }
    report(&format!(
        "tcp: {clients} client and {servers} server sockets with complete state sequences; retransmits {retransmits:?}"
    ));
    // Three echo connections and the one the full listener took; the fifth never got past
    // SYN_SENT: its SYN was retransmitted, and it closed from there.
    assert_eq!((clients, servers), (4, 4), "{conns:?}");
    assert!(
        retransmits
            .iter()
            .any(|&(_, dport, state)| dport == listener && state == 2),
        "the dropped SYN's retransmit (state SYN_SENT, to port {listener}): {retransmits:?}"
    );
    assert!(
        conns
            .iter()
            .any(|((_, dport), t)| *dport == listener && t == &[(7, 2), (2, 7)]),
        "the refused connection: SYN_SENT, then CLOSE"
    );
}

#[test]
fn syscall_filters_run_in_the_kernel_and_keep_only_their_process() {
    // A recorder of its own: never beside a test that runs alone.
    let _quiet = quiet();
    require_root!();
    // Two processes making syscalls all the time, under a name no other test uses (the workload
    // copied), and a shell loop; each filter keeps exactly its processes.
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let exe = dir.path().join("fr-sysfilter");
    std::fs::copy(env!("CARGO_BIN_EXE_flightrec-workload"), &exe).unwrap();
    let spin = |secs: &str| {
        Killed(
            Command::new(&exe)
                .args(["--syscall-rate", "20000", "--syscall-secs", secs])
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let (kept, other) = (spin("6"), spin("6"));
    let other_sh = Killed(
        Command::new("sh")
            .args(["-c", "while :; do cat /proc/self/stat > /dev/null; done"])
            .spawn()
            .unwrap(),
    );
    let pid = kept.0.id() as i32;
    for filter in [
        vec!["--pid".to_string(), pid.to_string()],
        vec!["--comm".into(), "fr-sysfilter".into()],
    ] {
        let cap = tempfile::tempdir().unwrap();
        let mut args = vec!["--events", "syscall", "--segment", "1s", "--duration", "1s"];
        args.extend(filter.iter().map(String::as_str));
        Recording::start(cap.path(), &args).wait();
        let c = Capture::open(cap.path());
        let mut by_tgid = std::collections::BTreeMap::new();
        for b in c.table(Table::Syscall) {
            for t in i32s(&b, "tgid") {
                *by_tgid.entry(t.unwrap()).or_insert(0u64) += 1;
            }
        }
        report(&format!(
            "syscall filter {filter:?}: rows per process {by_tgid:?}"
        ));
        let want: Vec<i32> = if filter[0] == "--pid" {
            vec![pid]
        } else {
            let mut v = vec![pid, other.0.id() as i32];
            v.sort();
            v
        };
        assert_eq!(
            by_tgid.keys().copied().collect::<Vec<_>>(),
            want,
            "every row belongs to the filtered process(es), and each made syscalls"
        );
        assert!(!by_tgid.contains_key(&(other_sh.0.id() as i32)));
    }
}

#[test]
fn a_binary_deleted_while_it_is_recorded_is_still_named() {
    require_root!();
    let build = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let src = build.path().join("deleted.c");
    // Waits for a line on stdin, then burns 150 ms of CPU in a function of its own.
    std::fs::write(
        &src,
        r#"#include <stdio.h>
#include <time.h>
static long cpu_ns(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec * 1000000000L + t.tv_nsec; }
__attribute__((noinline)) unsigned long flightrec_c_after_deletion(void) {
    volatile unsigned long x = 0; long end = cpu_ns() + 150000000L;
    while (cpu_ns() < end) for (int i = 0; i < 10000; i++) x += i;
    return x;
}
int main(void) { char line[8]; if (!fgets(line, sizeof line, stdin)) return 1; flightrec_c_after_deletion(); return 0; }
"#,
    )
    .unwrap();
    let bin = build.path().join("flightrec-deleted");
    let cc = Command::new("cc")
        .args(["-O1", "-g", "-fno-omit-frame-pointer", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(cc.success());
    let cap = tempfile::tempdir().unwrap();
    let rec = Recording::start(
        cap.path(),
        &[
            "--events",
            "sched,process,profile",
            "--freq",
            "199",
            "--segment",
            "1s",
        ],
    );
    let mut child = Command::new(&bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::remove_file(&bin).unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(child.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(300));
    rec.stop();
    let pid = child.id().to_string();
    let prof = run_ok(
        "flightrec-analyze",
        &[
            "profile",
            cap.path().to_str().unwrap(),
            "--pid",
            &pid,
            "--folded",
        ],
    );
    assert!(
        prof.contains("flightrec_c_after_deletion"),
        "samples taken after the binary was deleted are named:\n{prof}"
    );
}

#[test]
fn perf_still_sees_the_tracepoints_the_recorder_uses() {
    // A recorder of its own: never beside a test that runs alone.
    let _quiet = quiet();
    require_root!();
    // A BPF program attached to a tracepoint that returns 0 hides the event from every other perf
    // user of it (aya's #[tracepoint] does): an operator's perf record beside an always-on
    // recorder would get nothing.
    let cap = tempfile::tempdir().unwrap();
    let rec = Recording::start(
        cap.path(),
        &["--events", "sched,process", "--segment", "1s"],
    );
    let data = cap.path().join("perf.data");
    let perf = perf_record_switches()
        .arg("-o")
        .arg(&data)
        .args(["--", "sleep", "0.2"])
        .status()
        .expect("perf (apt-get install linux-perf)");
    assert!(perf.success());
    rec.stop();
    let script = Command::new("perf")
        .args(["script", "-i"])
        .arg(&data)
        .output()
        .unwrap();
    let n = String::from_utf8_lossy(&script.stdout)
        .lines()
        .filter(|l| l.contains("sched:sched_switch") && l.contains("prev_comm=sleep"))
        .count();
    report(&format!(
        "perf beside the recorder: {n} sched_switch events of sleep"
    ));
    assert!(
        n >= 1,
        "perf saw none of sleep's switches while the recorder ran"
    );
}
