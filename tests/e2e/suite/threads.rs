//! Stacks in and back from the code glibc creates threads and processes with: clone3 (whose CFI
//! ends at the syscall: a parent on its way back, a new thread that has not run yet, posix_spawn's
//! parent waiting for its child's exec) and vfork (whose return address waits in rdi). Ground
//! truth: threads.c.
use std::{process::Command, time::Duration};

use super::{
    stacks::{cut_user_stacks, folded, in_crt_code},
    *,
};

#[test]
fn threads_created_by_glibc_are_whole_back_from_clone3() {
    // glibc's clone3 ends its CFI before the syscall: a parent switched out on its way back (a
    // preemption as it returns) was cut there with its callers lost, and a new thread there must
    // not be unwound into its parent's frames. 640 threads that burn CPU, created 16 at a time on
    // two CPUs, give several such switch-outs a run; none of their stacks may stop short.
    require_root!();
    let _quiet = quiet();
    let build = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let bin = build_c_program("threads.c", build.path(), "threads", &["-O2"]);
    let cap = tempfile::tempdir().unwrap();
    let rec = Recording::start(cap.path(), &["--events", "sched,process"]);
    let child = Command::new(&bin).spawn().unwrap();
    let pid = child.id() as i64;
    assert!(child.wait_with_output().unwrap().status.success());
    std::thread::sleep(Duration::from_millis(300));
    rec.stop();
    let cut = cut_user_stacks(cap.path());
    for (tgid, why, folded) in &cut {
        assert!(
            *tgid != pid || why == "stack_unreadable" || in_crt_code(why, folded),
            "{why}: {folded}"
        );
    }
    let sql = format!(
        "SELECT s.folded FROM sched_switch w JOIN stacks s ON s.stack_id = w.ustack \
         AND s.segment = w.segment AND NOT s.kernel WHERE w.prev_tgid = {pid}"
    );
    let rows = sql_rows(cap.path().to_str().unwrap(), &sql);
    let leaf_clone3: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["folded"].as_str())
        .filter(|f| f.ends_with(";clone3") || *f == "clone3")
        .collect();
    for f in &leaf_clone3 {
        // A parent's: from _start through pthread_create or posix_spawn; a new thread's (or the
        // spawned child's, before it execs): clone3 alone.
        assert!(
            *f == "clone3"
                || f.starts_with("_start;")
                    && (f.contains(";main;flightrec_spawn;__pthread_create")
                        || f.contains(";main;flightrec_spawn_processes;__GI___posix_spawn")),
            "{f}"
        );
    }
    report(&format!(
        "threads: {} switch-outs on the way back from clone3, all whole",
        leaf_clone3.len()
    ));
    // posix_spawn's parent waits in clone3 until its child execs, every time: its callers were
    // all lost ([truncated: code without unwind information];clone3).
    let off = folded(cap.path(), "offcpu", pid as u32);
    let spawn_waits: Vec<&(Vec<String>, u64)> = off
        .iter()
        .filter(|(f, _)| {
            f.iter().any(|x| x == "wait_for_completion_state")
                && !f.iter().any(|x| x == "__libc_vfork")
        })
        .collect();
    assert!(!spawn_waits.is_empty(), "the spawns' waits: {off:?}");
    for (f, _) in &spawn_waits {
        let want = [
            "main",
            "flightrec_spawn_processes",
            "__GI___posix_spawn",
            "__spawni",
            "__spawnix",
            "__GI___clone_internal",
            "clone3",
        ];
        let at = f.iter().position(|x| x == "main");
        assert_eq!(
            at.map(|i| &f[i..i + want.len()]),
            Some(&want.map(String::from)[..]),
            "{f:?}"
        );
        assert_eq!(f[0], "_start", "{f:?}");
    }
    // vfork's parent waits with its return address in rdi (popped from its stack): that stack
    // stopped at __libc_vfork ([truncated: unwind rule not supported]).
    let vfork_waits: Vec<&(Vec<String>, u64)> = off
        .iter()
        .filter(|(f, _)| f.iter().any(|x| x == "__libc_vfork"))
        .collect();
    assert!(!vfork_waits.is_empty(), "the vforks' waits: {off:?}");
    for (f, _) in &vfork_waits {
        let tail = ["main", "flightrec_vfork_processes", "__libc_vfork"];
        let at = f.iter().position(|x| x == "main");
        assert_eq!(
            at.map(|i| &f[i..i + tail.len()]),
            Some(&tail.map(String::from)[..]),
            "{f:?}"
        );
        assert_eq!(f[0], "_start", "{f:?}");
    }
    let us = |w: &[&(Vec<String>, u64)]| w.iter().map(|(_, v)| v).sum::<u64>() / 1000;
    report(&format!(
        "threads: {} us of posix_spawn waits and {} us of vfork waits, all whole",
        us(&spawn_waits),
        us(&vfork_waits)
    ));
}
