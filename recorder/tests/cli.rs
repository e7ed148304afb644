//! The recorder's command line: bad input gets one clear line and a non-zero exit, never a panic.
use std::process::Command;

fn flightrec(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flightrec"))
        .args(args)
        .output()
        .expect("run flightrec");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.success(), stderr)
}

#[test]
fn invalid_arguments_are_refused_clearly() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["record", "--dir", "/tmp/x", "--duration", "soon"],
            "expected a duration",
        ),
        (
            &["record", "--dir", "/tmp/x", "--window", "0s"],
            "must be more than zero",
        ),
        (
            &["record", "--dir", "/tmp/x", "--max-size", "lots"],
            "expected a size",
        ),
        (
            &["record", "--dir", "/tmp/x", "--events", "sched,bogus"],
            "unknown event source \"bogus\"",
        ),
        (
            &["record", "--dir", "/tmp/x", "--ringbuf-size", "3MiB"],
            "power of two",
        ),
        (&["record", "--dir", "/tmp/x", "--freq", "0"], "--freq"),
        (&["record"], "--dir"),
        (&["frobnicate"], "unrecognized subcommand"),
    ];
    for (args, want) in cases {
        let (ok, err) = flightrec(args);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(want), "{args:?}: want {want:?} in {err}");
    }
}

#[test]
fn a_capture_from_another_boot_is_refused() {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        flightrec_tests::skip("needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let manifest = serde_json::json!({
        "format_version": 1, "host": "h", "kernel_release": "k", "arch": "x86_64",
        "boot_id": "00000000-0000-0000-0000-000000000000", "cpus": 1, "recorder_version": "0",
        "clock": {"monotonic_ns": 0, "realtime_ns": 0},
        "config": {"events": [], "freq_hz": 49, "segment_ns": 1, "window_ns": 1, "max_size_bytes": 1,
                   "ringbuf_bytes": 65536, "syscall_pid": null, "syscall_comm": null},
        "segments": []
    });
    std::fs::write(dir.path().join("manifest.json"), manifest.to_string()).unwrap();
    let (ok, err) = flightrec(&[
        "record",
        "--dir",
        dir.path().to_str().unwrap(),
        "--duration",
        "1s",
    ]);
    assert!(!ok);
    assert!(err.contains("from another boot"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn planted_symlinks_and_foreign_directories_are_refused() {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        flightrec_tests::skip("needs root (chown, and loading eBPF if a check were missed)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("elsewhere");
    std::fs::create_dir(&target).unwrap();
    let run = |dir: &std::path::Path| {
        flightrec(&[
            "record",
            "--dir",
            dir.to_str().unwrap(),
            "--duration",
            "1s",
            "--quiet",
        ])
    };

    // The capture directory itself is a symlink.
    let link = tmp.path().join("cap-link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (ok, err) = run(&link);
    assert!(!ok && err.contains("is a symbolic link"), "{err}");

    // A symlink planted where the segments go.
    let cap = tmp.path().join("cap");
    std::fs::create_dir(&cap).unwrap();
    std::os::unix::fs::symlink(&target, cap.join("segments")).unwrap();
    let (ok, err) = run(&cap);
    assert!(!ok && err.contains("segments is a symbolic link"), "{err}");
    std::fs::remove_file(cap.join("segments")).unwrap();

    // A planted manifest symlink.
    std::os::unix::fs::symlink("/etc/passwd", cap.join("manifest.json")).unwrap();
    let (ok, err) = run(&cap);
    assert!(
        !ok && err.contains("manifest.json is a symbolic link"),
        "{err}"
    );
    std::fs::remove_file(cap.join("manifest.json")).unwrap();

    // A directory owned by someone else.
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
    let (ok, err) = run(&foreign);
    assert!(!ok && err.contains("is owned by uid 65534"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        std::fs::read_dir(&target).unwrap().next().is_none(),
        "nothing written through a link"
    );
}

#[test]
fn a_capture_in_use_is_neither_recorded_into_twice_nor_salvaged() {
    use std::os::fd::AsRawFd;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    std::fs::write(dir.path().join("manifest.json"), "{}").unwrap();
    // What a running recorder holds.
    let held = std::fs::File::open(dir.path()).unwrap();
    // SAFETY: flock on a descriptor we own.
    assert_eq!(
        unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
    let (ok, err) = flightrec(&["record", "--dir", path, "--duration", "1s"]);
    assert!(!ok);
    assert!(err.contains("another flightrec is recording into"), "{err}");
    let (ok, err) = flightrec(&["salvage", path]);
    assert!(!ok);
    assert!(err.contains("a recorder is running on"), "{err}");
    drop(held);
    let (ok, err) = flightrec(&["salvage", "/nonexistent/capture"]);
    assert!(!ok);
    assert!(err.contains("is not a flightrec capture"), "{err}");
}
