//! Go binaries: no `.eh_frame` for Go code, and once stripped no `.debug_frame` and no symbols
//! either. Their frames are stepped over with the Go runtime's own table (`.gopclntab`) and named
//! from it, on goroutine stacks the runtime allocates and moves as they grow. Ground truth:
//! gostacks.go (a goroutine sleeping under 41 frames of 512 bytes, the main goroutine spinning),
//! built with the Go toolchain installed here: plain, stripped, position-independent (where the
//! table's section is `.data.rel.ro.gopclntab`), and position-independent linked by the host linker
//! (which merges the table into `.data.rel.ro`, as in Docker's CLI).
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use super::{stacks::folded, *};

/// Builds tests/e2e/data/gostacks.go into `dir` with `flags` for `go build`.
fn build_go(dir: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/data/gostacks.go");
    let bin = dir.join(name);
    let mut go = Command::new("go");
    go.arg("build")
        .env("GOCACHE", dir.join("cache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GOENV", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .args(flags);
    let status = go
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("go (golang-go) builds the Go test program: .ci/run installs it");
    assert!(status.success(), "go build {}", src.display());
    bin
}

/// The sections of an ELF file, by name.
fn sections(bin: &Path) -> Vec<String> {
    let out = Command::new("readelf")
        .arg("-SW")
        .arg(bin)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once("] ")?.1.split_whitespace().next())
        .map(String::from)
        .collect()
}

#[test]
fn go_binaries_are_whole_from_goexit_and_named_however_built() {
    require_root!();
    let _quiet = quiet();
    let build = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let variants: [(&str, &[&str], &str); 4] = [
        ("plain", &[], ".gopclntab"),
        ("stripped", &["-ldflags=-s -w"], ".gopclntab"),
        ("pie", &["-buildmode=pie"], ".data.rel.ro.gopclntab"),
        (
            "pie-external",
            &["-buildmode=pie", "-ldflags=-linkmode=external"],
            "",
        ),
    ];
    let bins: Vec<(&str, PathBuf)> = variants
        .iter()
        .map(|(label, flags, _)| (*label, build_go(build.path(), label, flags)))
        .collect();
    // What the unwinder has to go on: Go's table (in a section of its own or merged into another),
    // never .eh_frame for Go code; stripped, nothing else.
    for ((label, _, table), (_, bin)) in variants.iter().zip(&bins) {
        let s = sections(bin);
        let has = |n: &str| s.iter().any(|x| x == n);
        match *table {
            "" => assert!(
                !has(".gopclntab") && !has(".data.rel.ro.gopclntab") && has(".data.rel.ro"),
                "{label}: {s:?}"
            ),
            t => assert!(has(t) && !has(".eh_frame"), "{label}: {s:?}"),
        }
        if *label == "stripped" {
            assert!(
                !s.iter()
                    .any(|n| n == ".symtab" || n.starts_with(".debug") || n.starts_with(".zdebug")),
                "{label}: {s:?}"
            );
        }
    }
    let cap = tempfile::tempdir().unwrap();
    let rec = Recording::start(cap.path(), &["--events", "sched,process,profile"]);
    let runs: Vec<(u32, u64)> = bins
        .iter()
        .map(|(_, bin)| run_measuring(bin, &[], "blocked_ns"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    rec.stop();
    // From the goroutine's start down to the syscall: its frames at 41 levels of recursion.
    let mut chain = vec![
        "runtime.goexit",
        "main.main.func1",
        "main.flightrecGoSleeper",
    ];
    chain.extend(["main.flightrecGoDeep"; 41]);
    chain.extend(["main.flightrecGoSleep", "syscall.Nanosleep"]);
    let mut lines = Vec::new();
    for ((label, _), (pid, measured)) in bins.iter().zip(runs) {
        lines.push((*label, sleep_chain_lines(cap.path(), pid)));
        let off = folded(cap.path(), "offcpu", pid);
        let (mut whole_ns, mut cut) = (0, 0);
        for (frames, ns) in off
            .iter()
            .filter(|(f, _)| f.iter().any(|x| x == "main.flightrecGoSleep"))
        {
            // The process's first events come before the recorder knows it runs Go: their copy
            // (1 KiB) holds a few of the 41 frames. (The program waits 250 ms before its rounds.)
            if frames[0] == "[truncated: stack deeper than the copy taken]" {
                cut += 1;
                continue;
            }
            assert_eq!(frames[..chain.len()], chain[..], "{label}: {frames:?}");
            whole_ns += ns;
        }
        // Six sleeps of 50 ms: the first may be cut, and one more left out where the kernel did
        // not report the switch-in that ended it (see stacks.rs).
        report(&format!(
            "go stacks ({label}): {} ms whole under the 41 frames, {cut} cut, the program measured {} ms",
            whole_ns / 1_000_000,
            measured / 1_000_000
        ));
        assert!(cut <= 1, "{label}: {cut} sleeps cut: {off:?}");
        assert!(
            whole_ns >= 200_000_000 && whole_ns <= measured + 10_000_000,
            "{label}: {whole_ns} ns whole, the program measured {measured} ns"
        );
        // The spinning main goroutine: whole from goexit, or cut where it switched stacks to
        // read the clock (time.now calls the vDSO on the thread's system stack).
        let spin: Vec<(Vec<String>, u64)> = folded(cap.path(), "profile", pid)
            .into_iter()
            .filter(|(f, _)| f.iter().any(|x| x == "main.flightrecGoSpin"))
            .collect();
        let mut whole = 0;
        for (frames, n) in &spin {
            if frames[0].starts_with("[truncated") {
                assert!(
                    frames[0] == "[truncated: the code switched stacks (Go's runtime)]"
                        || frames[0] == "[truncated: stack deeper than the copy taken]",
                    "{label}: {frames:?}"
                );
                continue;
            }
            let want = [
                "runtime.goexit",
                "runtime.main",
                "main.main",
                "main.flightrecGoSpin",
            ];
            assert_eq!(frames[..want.len()], want, "{label}: {frames:?}");
            whole += n;
        }
        // 600 ms at 49 Hz: about 29 samples.
        assert!(whole >= 10, "{label}: {whole} whole samples: {spin:?}");
    }
    // The call sites of the sleep chain: from DWARF in the plain build (blazesym), from Go's own
    // table in the others (the stripped one has nothing else): the same lines of gostacks.go.
    // (Only the stacks through the sleep: a preemption elsewhere in these functions, under load,
    // would add a line in one build only.)
    let (_, plain) = &lines[0];
    assert!(
        plain.len() >= 4 && plain.iter().all(|(_, f, _)| f == "gostacks.go"),
        "{plain:?}"
    );
    for (label, l) in &lines[1..] {
        assert_eq!(
            l, plain,
            "{label}: source lines differ from the plain build's DWARF"
        );
    }
    report(&format!("go stacks: call sites {plain:?} in every build"));
}

/// (symbol, file name, line) of `pid`'s frames in its stacks through the sleep (call sites, the
/// same in every round), from the capture's `stacks` and `user_frames`.
fn sleep_chain_lines(cap: &Path, pid: u32) -> std::collections::BTreeSet<(String, String, i64)> {
    let sql = format!(
        "SELECT DISTINCT u.symbol, u.file, u.line FROM (SELECT unnest(frames) AS addr, tgid \
         FROM stacks WHERE NOT kernel AND tgid = {pid} \
         AND folded LIKE '%main.flightrecGoSleep;syscall.Nanosleep%') s \
         JOIN user_frames u ON u.addr = s.addr AND u.tgid = s.tgid WHERE u.symbol IN \
         ('main.main.func1', 'main.flightrecGoSleeper', 'main.flightrecGoDeep', \
         'main.flightrecGoSleep')"
    );
    sql_rows(cap.to_str().unwrap(), &sql)
        .iter()
        .map(|r| {
            let file = r["file"].as_str().unwrap_or_default();
            (
                r["symbol"].as_str().unwrap_or_default().to_string(),
                file.rsplit('/').next().unwrap_or_default().to_string(),
                r["line"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}
