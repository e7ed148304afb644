//! User stacks on the real kernel against programs whose call chains are known: C built with and
//! without frame pointers at -O0 and -O2 blocking through glibc in eight ways, under a call that
//! never returns, in a signal handler, under code that keeps its CFA in rbx, under 24 KiB of
//! frames and spinning, a Rust release build without frame pointers, and Debian's own python3
//! and redis-server. Each stack must name the exact chain, whole from `_start`, and carry the time
//! the program measured itself; nothing may name a frame that was not there. (Against perf:
//! stacks_vs_perf.rs; thread and process creation: threads.rs.)
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use super::*;

/// Builds tests/e2e/data/stacks.c with `flags` into `dir`.
pub(super) fn build_c(dir: &Path, name: &str, flags: &[&str]) -> PathBuf {
    build_c_program("stacks.c", dir, name, flags)
}

/// Builds tests/e2e/data/stacks.rs as a release build without frame pointers.
fn build_rust(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/data/stacks.rs");
    let bin = dir.join("stacks-rs");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let status = Command::new(rustc)
        .args(["-O", "-C", "force-frame-pointers=no", "-g", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("rustc");
    assert!(status.success(), "compiling {}", src.display());
    bin
}

/// One run of a ground-truth program: its pid and the time it measured itself blocked (or busy).
struct Run {
    label: String,
    block_fn: String,
    pid: u32,
    measured_ns: u64,
    /// Its rounds: (CLOCK_MONOTONIC at start, at end, the time it counted: below zero by the
    /// clock reads' own CPU time when a call returned at once).
    rounds: Vec<(u64, u64, i64)>,
}

fn run(bin: &Path, label: &str, block_fn: &str, args: &[&str]) -> Run {
    let child = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{label} failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let measured_ns = text
        .lines()
        .find_map(|l| l.strip_prefix("blocked_ns "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{label} printed no blocked_ns: {text}"));
    let rounds = text
        .lines()
        .filter_map(|l| {
            let mut v = l.strip_prefix("round ")?.split(' ');
            let mut num = || v.next()?.parse::<i64>().ok();
            Some((num()? as u64, num()? as u64, num()?))
        })
        .collect();
    Run {
        label: label.to_string(),
        block_fn: block_fn.to_string(),
        pid,
        measured_ns,
        rounds,
    }
}

/// Folded stacks of one process from `offcpu` or `profile`: (frames after the comm, value).
pub(super) fn folded(cap: &Path, what: &str, pid: u32) -> Vec<(Vec<String>, u64)> {
    run_ok(
        "flightrec-analyze",
        &[
            what,
            cap.to_str().unwrap(),
            "--pid",
            &pid.to_string(),
            "--folded",
        ],
    )
    .lines()
    .filter_map(|l| {
        let (stack, v) = l.rsplit_once(' ')?;
        let frames: Vec<String> = stack.split(';').skip(1).map(String::from).collect();
        // offcpu prints microseconds, profile samples.
        let v: u64 = v.parse().ok()?;
        Some((frames, if what == "offcpu" { v * 1000 } else { v }))
    })
    .collect()
}

/// The user stacks of a capture that stop short: (process, why, folded).
pub(super) fn cut_user_stacks(cap: &Path) -> Vec<(i64, String, String)> {
    let sql =
        "SELECT tgid, truncated, folded FROM stacks WHERE NOT kernel AND truncated IS NOT NULL";
    sql_rows(cap.to_str().unwrap(), sql)
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (r["tgid"].as_i64().unwrap(), s("truncated"), s("folded"))
        })
        .collect()
}

/// A stack cut in GCC's start-up and exit code, which Debian ships without CFI (README, Limits):
/// a switch-out as the program runs its destructors at exit (`__do_global_dtors_aux`), seen once
/// in a few dozen runs of the 52 programs below.
pub(super) fn in_crt_code(why: &str, folded: &str) -> bool {
    const CRT: [&str; 4] = ["__do_global_dtors_aux", "frame_dummy", "_init", "_fini"];
    why == "no_cfi" && folded.split(';').nth(1).is_some_and(|f| CRT.contains(&f))
}

/// Checks every stack of `r` through its blocking function: whole from the libc start code, then
/// exactly `chain` down to the blocking function. Returns the time (or samples) under it.
fn check_chain(r: &Run, stacks: &[(Vec<String>, u64)], root: &[&str], chain: &[&str]) -> u64 {
    let mine: Vec<&(Vec<String>, u64)> = stacks
        .iter()
        .filter(|(f, _)| f.iter().any(|x| x == &r.block_fn))
        .collect();
    assert!(
        !mine.is_empty(),
        "{}: no stack through {}: {stacks:?}",
        r.label,
        r.block_fn
    );
    for (frames, _) in &mine {
        let want: Vec<&str> = root.iter().chain(chain).copied().collect();
        let got: Vec<&str> = frames.iter().take(want.len()).map(String::as_str).collect();
        assert_eq!(got, want, "{}: caller chain", r.label);
    }
    mine.iter().map(|(_, v)| v).sum()
}

/// The libc start code of a glibc program's main thread, outermost first.
const LIBC_ROOT: [&str; 3] = ["_start", "__libc_start_main_impl", "__libc_start_call_main"];

const C_MODES: [&str; 8] = [
    "nanosleep",
    "usleep",
    "pipe",
    "pwrite",
    "cond",
    "mutex",
    "epoll",
    "futex",
];

/// The other modes: (mode, the function its time is under, ms per round).
const OTHER_MODES: [(&str, &str, &str); 5] = [
    ("spin", "flightrec_block_spin", "40"),
    ("noreturn", "flightrec_sleep_then_exit", "30"),
    ("deep", "flightrec_deep_sleep", "30"),
    ("realign", "flightrec_realigned_sleep", "30"),
    ("signal", "flightrec_signal_handler", "30"),
];

#[test]
fn c_programs_with_and_without_frame_pointers_show_their_exact_callers() {
    require_root!();
    let _quiet = quiet();
    let build = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let variants = [
        ("stacks-O0-fp", vec!["-O0", "-fno-omit-frame-pointer"]),
        ("stacks-O2-fp", vec!["-O2", "-fno-omit-frame-pointer"]),
        ("stacks-O0-nofp", vec!["-O0", "-fomit-frame-pointer"]),
        ("stacks-O2-nofp", vec!["-O2", "-fomit-frame-pointer"]),
    ];
    let bins: Vec<(String, PathBuf)> = variants
        .iter()
        .map(|(name, flags)| (name.to_string(), build_c(build.path(), name, flags)))
        .collect();
    let cap = tempfile::tempdir().unwrap();
    let rec = Recording::start(
        cap.path(),
        &[
            "--events",
            "sched,process,profile",
            "--freq",
            "199",
            "--segment",
            "2s",
        ],
    );
    let mut runs = Vec::new();
    for (name, bin) in &bins {
        for mode in C_MODES {
            let block = format!("flightrec_block_{mode}");
            runs.push(run(
                bin,
                &format!("{name} {mode}"),
                &block,
                &[mode, "10", "30"],
            ));
        }
        for (mode, block, ms) in OTHER_MODES {
            runs.push(run(
                bin,
                &format!("{name} {mode}"),
                block,
                &[mode, "10", ms],
            ));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    rec.stop();
    let capture = Capture::open(cap.path());
    let switches = capture.switch_rows();
    // Every stack of these programs is whole but the last of each thread: its switch-out as it
    // exits comes after it released its memory, so nothing of that stack can be read. That is
    // counted apart (stack_unreadable), not as a stack the unwinder cut short.
    let summary = analyze_json(&["summary", cap.path().to_str().unwrap()]);
    let cut = cut_user_stacks(cap.path());
    for r in &runs {
        let p = summary["user_stacks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pid"].as_u64() == Some(r.pid as u64))
            .unwrap_or_else(|| panic!("{}: in summary's user stacks", r.label));
        assert!(p["unreadable"].as_u64() >= Some(1), "{}: {p}", r.label);
        for (tgid, why, folded) in &cut {
            assert!(
                *tgid != r.pid as i64 || why == "stack_unreadable" || in_crt_code(why, folded),
                "{}: {why} {folded} ({p})",
                r.label
            );
        }
    }
    for r in &runs {
        assert_eq!(r.rounds.len(), 10, "{}: one line per round", r.label);
        let spin = r.block_fn.ends_with("spin");
        let stacks = folded(cap.path(), if spin { "profile" } else { "offcpu" }, r.pid);
        let mut chain = vec!["main", "flightrec_level1", "flightrec_level2"];
        if r.block_fn == "flightrec_sleep_then_exit" {
            // Its caller ends with the call, so the return address is the next function's
            // first byte: named by the call, not by that address.
            chain.push("flightrec_block_noreturn");
            assert!(
                stacks
                    .iter()
                    .all(|(f, _)| !f.iter().any(|x| x == "flightrec_after_noreturn")),
                "{}: a function nobody called: {stacks:?}",
                r.label
            );
        }
        if r.block_fn == "flightrec_deep_sleep" {
            // More than 24 KiB of stack above the sleep: all of it copied and unwound.
            chain.push("flightrec_block_deep");
            chain.extend(["flightrec_deep"; 6]);
        }
        if r.block_fn == "flightrec_realigned_sleep" {
            // Its caller keeps its CFA in rbx (the register every event carries besides ip, sp
            // and the frame pointer).
            chain.push("flightrec_block_realign");
        }
        if r.block_fn == "flightrec_signal_handler" {
            // Through the signal frame: the handler is entered from glibc's trampoline, above
            // the code the signal interrupted (raise, under the function that called it).
            chain.push("flightrec_block_signal");
            for (f, _) in stacks
                .iter()
                .filter(|(f, _)| f.iter().any(|x| x == &r.block_fn))
            {
                let h = f.iter().position(|x| x == &r.block_fn).unwrap();
                assert_eq!(f[h - 1], "__restore_rt", "{}: {f:?}", r.label);
                assert!(
                    f[chain.len() + LIBC_ROOT.len()..h - 1]
                        .iter()
                        .any(|x| x.contains("raise")),
                    "{}: the interrupted code: {f:?}",
                    r.label
                );
            }
        } else {
            chain.push(&r.block_fn);
        }
        let got = check_chain(r, &stacks, &LIBC_ROOT, &chain);
        // Off CPU: the time under the blocking function against the time the program measured
        // itself off CPU around the calls (wall clock less its thread's CPU time). On CPU: samples
        // every 5 ms (199 Hz) against the CPU time of 400 ms of burning.
        let (ns, want) = if spin {
            (got * 1_000_000_000 / 199, r.measured_ns)
        } else {
            (got, r.measured_ns)
        };
        report(&format!(
            "stacks: {}: chain exact and whole, {} ms under it, the program measured {} ms",
            r.label,
            ns / 1_000_000,
            want / 1_000_000
        ));
        if spin {
            // Periodic sampling gives each on-CPU slice of the thread floor or ceil of its length
            // in periods: over n slices the count is off by at most n periods (a busy machine
            // cuts the burn into many), or 10%, whichever is more.
            let slices = flightrec_tests::on_cpu_slices(switches.clone(), &[r.pid as i32].into())
                .len() as u64;
            let allowed = (want / 10).max((slices + 1) * 1_000_000_000 / 199);
            assert!(
                ns.abs_diff(want) <= allowed,
                "{}: {ns} ns of samples, {want} ns of CPU, {slices} slices",
                r.label
            );
        } else {
            // The kernel never reported the switch-in that ended some of the thread's time off CPU
            // (on this VM: the agent's threads leave a CPU unannounced, README Limits): the
            // analyzer leaves such an interval out, so a round holding one counts between none
            // and all of its time. Otherwise within 15%, or 50 us per round: the program's own
            // clock reads (a syscall each for its CPU time) cost the harness that much it cannot
            // tell apart from the call, which matters for the few milliseconds of ten direct
            // writes.
            let pid = r.pid as i32;
            let outs: Vec<u64> = switches
                .iter()
                .filter(|s| s.2 == pid)
                .map(|s| s.0)
                .collect();
            let unmeasured = capture.unmeasured_off_cpu(pid, &outs);
            let doubtful: Vec<i64> = r
                .rounds
                .iter()
                .filter(|(w0, w1, _)| unmeasured.iter().any(|t| (w0..=w1).contains(&t)))
                .map(|r| r.2)
                .collect();
            let lo = want.saturating_sub(doubtful.iter().sum::<i64>().max(0) as u64);
            let slack = |w: u64| (w * 15 / 100).max(500_000);
            if !doubtful.is_empty() {
                report(&format!(
                    "stacks: {}: {} of its rounds ({} ms) held time off CPU whose switch-in the \
                     kernel never reported",
                    r.label,
                    doubtful.len(),
                    doubtful.iter().sum::<i64>() / 1_000_000
                ));
            }
            assert!(
                ns + slack(lo) >= lo && ns <= want + slack(want),
                "{}: {ns} ns, measured {want} ({} ms in rounds it cannot measure); its \
                 off-CPU stacks: {stacks:?}",
                r.label,
                (want - lo) / 1_000_000
            );
        }
    }
}

#[test]
fn a_rust_release_build_without_frame_pointers_shows_its_exact_callers() {
    require_root!();
    let _quiet = quiet();
    let build = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let bin = build_rust(build.path());
    let cap = tempfile::tempdir().unwrap();
    let rec = Recording::start(
        cap.path(),
        &["--events", "sched,process", "--segment", "2s"],
    );
    let runs: Vec<Run> = ["sleep", "mutex", "channel"]
        .iter()
        .map(|m| {
            run(
                &bin,
                &format!("stacks-rs {m}"),
                &format!("flightrec_rs_block_{m}"),
                &[m, "10", "30"],
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    rec.stop();
    for r in &runs {
        let stacks = folded(cap.path(), "offcpu", r.pid);
        // Rust's runtime between the libc start code and the program's main.
        let mine: Vec<&(Vec<String>, u64)> = stacks
            .iter()
            .filter(|(f, _)| f.contains(&r.block_fn))
            .collect();
        assert!(!mine.is_empty(), "{}: {stacks:?}", r.label);
        let mut ns = 0;
        for (frames, v) in &mine {
            assert_eq!(
                &frames[..3],
                &LIBC_ROOT,
                "{}: whole from _start: {frames:?}",
                r.label
            );
            let at = frames
                .iter()
                .position(|f| f == "flightrec_rs_level1")
                .expect("level1");
            // The program's main, as its debug information names it.
            assert_eq!(frames[at - 1], "stacks::main", "{}: {frames:?}", r.label);
            assert_eq!(
                &frames[at..at + 3],
                &[
                    "flightrec_rs_level1",
                    "flightrec_rs_level2",
                    r.block_fn.as_str()
                ],
                "{}: caller chain",
                r.label
            );
            ns += v;
        }
        report(&format!(
            "stacks: {}: chain exact and whole, {} ms under it, the program measured {} ms",
            r.label,
            ns / 1_000_000,
            r.measured_ns / 1_000_000
        ));
        assert!(
            ns.abs_diff(r.measured_ns) * 10 <= r.measured_ns,
            "{}: {ns} ns",
            r.label
        );
    }
}

/// Asserts that `frames` holds `want` in this order (with any frames between).
fn in_order(label: &str, frames: &[String], want: &[&str]) {
    let mut it = frames.iter();
    for w in want {
        assert!(
            it.any(|f| f == w),
            "{label}: {w} missing or out of order in {frames:?}"
        );
    }
}

#[test]
fn debian_programs_without_frame_pointers_show_their_own_functions_in_order() {
    // A recorder of its own: never beside a test that runs alone.
    let _quiet = quiet();
    require_root!();
    let redis = ["/usr/bin/redis-server", "/usr/sbin/redis-server"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect(
            "redis-server is not installed: .ci/run installs it (apt-get install redis-server)",
        );
    let cap = tempfile::tempdir().unwrap();
    let rec = Recording::start(
        cap.path(),
        &["--events", "sched,process", "--segment", "2s"],
    );
    // Debian's own interpreter, not one built elsewhere (pyenv may shadow it on PATH).
    let py = Command::new("/usr/bin/python3")
        .args(["-c", "import time; time.sleep(0.3)"])
        .spawn()
        .unwrap();
    let py_pid = py.id();
    let mut server = Command::new(redis)
        .args([
            "--port",
            "0",
            "--save",
            "",
            "--appendonly",
            "no",
            "--unixsocket",
            "none",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let redis_pid = server.id();
    assert!(py.wait_with_output().unwrap().status.success());
    // An idle server wakes from epoll_wait about every 100 ms (hz 10).
    std::thread::sleep(Duration::from_millis(1500));
    let _ = server.kill();
    let _ = server.wait();
    rec.stop();

    // Debian strips python3's local symbols: its exported functions are named, the static ones
    // (time_sleep) show as its own module and offset.
    let py_stacks = folded(cap.path(), "offcpu", py_pid);
    let (sleep, ns) = py_stacks
        .iter()
        .find(|(f, _)| {
            f.iter().any(|x| x == "PyEval_EvalCode") && f.iter().any(|x| x == "do_nanosleep")
        })
        .expect("python3's sleep");
    assert_eq!(&sleep[..3], &LIBC_ROOT, "whole: {sleep:?}");
    in_order(
        "python3",
        sleep,
        &[
            "Py_BytesMain",
            "Py_RunMain",
            "PyRun_SimpleStringFlags",
            "PyEval_EvalCode",
            "_PyEval_EvalFrameDefault",
            "__GI___clock_nanosleep",
            "do_nanosleep",
        ],
    );
    let user = &sleep[3..sleep
        .iter()
        .position(|f| f == "__GI___clock_nanosleep")
        .unwrap()];
    assert!(
        user.iter()
            .all(|f| !f.starts_with("[unknown") || f.starts_with("[unknown:python3")),
        "only python3's own functions between main and libc: {sleep:?}"
    );
    assert!(
        ns.abs_diff(300_000_000) <= 30_000_000,
        "python3 slept {ns} ns"
    );

    let rs = folded(cap.path(), "offcpu", redis_pid);
    // Its event loop waits in epoll_wait; it also runs its cron (reading /proc) from aeMain.
    let polls: Vec<&(Vec<String>, u64)> = rs
        .iter()
        .filter(|(f, _)| f.iter().any(|x| x == "aeMain") && f.iter().any(|x| x == "epoll_wait"))
        .collect();
    assert!(!polls.is_empty(), "redis-server's event loop: {rs:?}");
    for (frames, _) in &polls {
        assert_eq!(&frames[..3], &LIBC_ROOT, "whole: {frames:?}");
        in_order("redis-server", frames, &["main", "aeMain", "epoll_wait"]);
        // Between them only functions of redis itself: named where it exports them, else its
        // own module and offset (Debian strips the local symbols).
        let inner = &frames[4..frames.iter().position(|f| f == "epoll_wait").unwrap()];
        assert!(
            inner.iter().all(|f| f == "aeMain"
                || f == "aeProcessEvents"
                || f.starts_with("[unknown:redis-")),
            "redis-server's event loop: {frames:?}"
        );
    }
    report(&format!(
        "stacks: python3: {}; redis-server: {} event-loop stacks, e.g. {}",
        sleep.join(";"),
        polls.len(),
        polls[0].0.join(";")
    ));
}
