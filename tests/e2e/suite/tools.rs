//! The book's other tools from a capture, against their libbpf-tools peers tracing the same
//! kernel at the same time: `execsnoop` (pids, parents, command lines) and `exitsnoop` (exit codes
//! and signals) of processes the test starts, exits with code 3 and kills with SIGKILL; `cpudist`
//! (on-CPU stretches) of a pipe ping-pong; `bitesize` of direct writes; `syscount` of sleeps,
//! writes and fsyncs.
use std::{
    collections::BTreeMap,
    io::Write,
    process::{Command, Stdio},
    time::Duration,
};

use super::{
    peers::{displaced, median_bucket, ours as our_buckets, total, wall_now, Peer, Reaped},
    *,
};

/// A libbpf-tools table by its PID column: the whole line split on whitespace.
fn by_pid(lines: &[String]) -> BTreeMap<i64, Vec<String>> {
    lines
        .iter()
        .filter_map(|l| {
            let cols: Vec<String> = l.split_whitespace().map(String::from).collect();
            Some((cols.get(1)?.parse().ok()?, cols))
        })
        .collect()
}

#[test]
fn execsnoop_and_exitsnoop_agree_with_libbpf_tools() {
    require_root!();
    // Exact counts against a peer: alone, since other tests' tracers make the kernel skip runs.
    let _exclusive = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("cap");
    let rec = Recording::start(&cap, &["--events", "process", "--segment", "1s"]);
    let execs = Peer::start_when("execsnoop", &[], "PCOMM");
    let exits = Peer::start_when("exitsnoop", &[], "PCOMM");
    let tag = format!("flightrec-tools-{}", std::process::id());
    // A shell that runs a child and exits 3, and a sleep killed by SIGKILL; both live long
    // enough for the recorder to read their command lines.
    let mut sh = Command::new("/bin/sh")
        .args(["-c", "/bin/sleep 0.4; exit 3", &tag])
        .spawn()
        .unwrap();
    let mut killed = Command::new("/bin/sleep").arg("30").spawn().unwrap();
    // Gone before /proc can be read: only the kernel's copy at the exec has its arguments. And one
    // whose arguments are longer than the copy (3300 bytes).
    let mut short = Command::new("/bin/true")
        .args(["short", &tag])
        .spawn()
        .unwrap();
    let long_args: Vec<String> = (0..300).map(|i| format!("arg-{i:05}")).collect();
    let mut long = Command::new("/bin/true").args(&long_args).spawn().unwrap();
    // A process that execs again: each exec keeps its own command line.
    let mut reexec = Command::new("/bin/sh")
        .args(["-c", "exec /bin/sleep 0.3", &tag])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    killed.kill().unwrap();
    assert_eq!(sh.wait().unwrap().code(), Some(3));
    killed.wait().unwrap();
    for c in [&mut short, &mut long, &mut reexec] {
        assert!(c.wait().unwrap().success());
    }
    std::thread::sleep(Duration::from_millis(800));
    let (peer_execs, peer_exits) = (by_pid(&execs.stop_lines()), by_pid(&exits.stop_lines()));
    rec.stop();
    let c = cap.to_str().unwrap();
    let ours_exec = analyze_json(&["execsnoop", c]);
    let ours_exit = analyze_json(&["exitsnoop", c]);
    let ours = |list: &serde_json::Value, key: &str, pid: i64| {
        list[key]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["pid"].as_i64() == Some(pid))
            .cloned()
            .unwrap_or_else(|| panic!("pid {pid} not in our {key}: {list}"))
    };

    let (sh_pid, killed_pid) = (sh.id() as i64, killed.id() as i64);
    // The shell's child: the exec whose parent is the shell.
    let child = peer_execs
        .iter()
        .find(|(_, cols)| cols[2] == sh_pid.to_string())
        .map(|(pid, _)| *pid)
        .expect("execsnoop saw the shell's child");
    for pid in [sh_pid, killed_pid, child] {
        let peer = &peer_execs[&pid];
        let e = ours(&ours_exec, "execs", pid);
        report(&format!(
            "execsnoop: pid {pid}: libbpf-tools {:?}, flightrec {:?}",
            peer[4..].join(" "),
            e["args"]
        ));
        assert_eq!(e["comm"].as_str(), Some(peer[0].as_str()), "{e}");
        assert_eq!(
            e["ppid"].as_i64().map(|p| p.to_string()),
            Some(peer[2].clone()),
            "{e}"
        );
        // Both copy argv at the exec: libbpf-tools at the call, flightrec at its success.
        assert_eq!(
            e["args"].as_str(),
            Some(peer[4..].join(" ").as_str()),
            "{e}"
        );
        assert_eq!(e["full_args"], true, "{e}");
        assert_eq!(e["args_from"], "exec", "{e}");
    }
    let all_of = |pid: u32| -> Vec<serde_json::Value> {
        let list = ours_exec["execs"].as_array().unwrap().iter();
        list.filter(|e| e["pid"].as_i64() == Some(pid as i64))
            .cloned()
            .collect()
    };
    let s = &all_of(short.id())[..];
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0]["args"], format!("/bin/true short {tag}"), "{s:?}");
    assert_eq!(s[0]["full_args"], true);
    let peer_short = peer_execs[&(short.id() as i64)][4..].join(" ");
    assert_eq!(peer_short, format!("/bin/true short {tag}"));
    // The long one: the first 2048 bytes of it, marked cut.
    let l = &all_of(long.id())[..];
    let whole = format!("/bin/true {}", long_args.join(" "));
    let got = l[0]["args"].as_str().unwrap();
    assert!(got.len() > 1900 && whole.starts_with(got), "{got}");
    assert_eq!(
        (l[0]["full_args"].as_bool(), l[0]["args_from"].as_str()),
        (Some(false), Some("exec"))
    );
    let r = &all_of(reexec.id())[..];
    let lines: Vec<_> = r.iter().map(|e| e["args"].as_str().unwrap()).collect();
    assert_eq!(
        lines,
        [
            format!("/bin/sh -c exec /bin/sleep 0.3 {tag}"),
            "/bin/sleep 0.3".to_string()
        ],
        "{r:?}"
    );

    // exitsnoop prints "code N" or "signal N (NAME)" last.
    let sh_exit = ours(&ours_exit, "exits", sh_pid);
    assert_eq!(sh_exit["exit_code"], 3, "{sh_exit}");
    assert_eq!(peer_exits[&sh_pid].last().map(String::as_str), Some("3"));
    assert_eq!(sh_exit["exit"], "code 3");
    let k = ours(&ours_exit, "exits", killed_pid);
    assert_eq!(k["signal"], 9, "{k}");
    assert_eq!(k["exit"], "signal 9 (KILL)");
    let peer_k = peer_exits[&killed_pid].join(" ");
    assert!(peer_k.contains("signal 9"), "exitsnoop: {peer_k}");
    // Ages: the sleep lived about 600 ms, the shell about 400 ms.
    let age = k["age_s"].as_f64().unwrap();
    assert!((0.55..2.0).contains(&age), "{k}");
    // Every exec and exit the peers saw of these processes is in the capture.
    for pid in [sh_pid, killed_pid, child] {
        assert!(peer_exits.contains_key(&pid), "exitsnoop missed {pid}");
        ours(&ours_exit, "exits", pid);
    }
}

#[test]
fn cpudist_agrees_with_libbpf_tools_cpudist() {
    require_root!();
    // Exact counts against a peer: alone, since other tests' tracers make the kernel skip runs.
    let _exclusive = exclusive();
    let cap = tempfile::tempdir().unwrap();
    let rec = Recording::start(cap.path(), &["--events", "sched", "--segment", "60s"]);
    let mut child = Reaped(
        workload()
            .args(["--wait", "--pingpong", "3000"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id().to_string();
    let peer = Peer::start("cpudist", &["-p", &pid]);
    let from = wall_now();
    child.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(child.0.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(200));
    let theirs = peer.stop().remove("").unwrap_or_default();
    rec.stop();
    let dir = cap.path().to_str().unwrap();
    // libbpf-tools counts the stretches that end in a preemption only: --preempted.
    let ours = our_buckets(&analyze_json(&[
        "cpudist",
        dir,
        "--pid",
        &pid,
        "--from",
        &from,
        "--preempted",
    ]));
    let all = analyze_json(&["cpudist", dir, "--pid", &pid, "--from", &from]);
    let n_all = total(&our_buckets(&all));
    let (n_ours, n_theirs) = (total(&ours), total(&theirs));
    let moved = if n_ours.max(n_theirs) > 0 {
        displaced(&ours, &theirs)
    } else {
        0.0
    };
    report(&format!(
        "agreement, cpudist (pipe ping-pong): flightrec --preempted {n_ours} stretches on CPU, median bucket {} us; cpudist {n_theirs}, median bucket {} us; {:.1}% in another bucket; every stretch: {n_all}; events lost: {}",
        median_bucket(&ours),
        median_bucket(&theirs),
        100.0 * moved,
        all["lost"]["total"]
    ));
    // Switch events the kernel skipped or the ring dropped are counted in the capture: each one
    // can cost two stretches. Beside other tests' tracers (they run in parallel), some are lost.
    let lost = all["lost"]["total"].as_u64().unwrap();
    // 3000 round trips: the thread that writes first blocks on its read each time (unless the
    // other ran on the other CPU in between); under load the other may find its data waiting.
    assert!(
        n_all >= n_ours,
        "every stretch {n_all} < preempted ones {n_ours}"
    );
    assert!(
        n_all + 2 * lost >= 3000,
        "{n_all} stretches, {lost} events lost"
    );
    // How many stretches end in a preemption depends on the load: an absolute slack on top of 10%.
    let diff = n_ours.abs_diff(n_theirs);
    assert!(
        diff as f64 <= 0.1 * n_theirs as f64 + 10.0 + 2.0 * lost as f64,
        "preempted stretches: flightrec {n_ours}, cpudist {n_theirs}, {lost} events lost"
    );
    // On an idle machine a ping-pong is hardly ever preempted: compare shapes when there is one.
    if n_theirs >= 50 && lost == 0 {
        assert!(
            moved < 0.25,
            "{:.1}% of the stretches in another bucket",
            100.0 * moved
        );
    }
}

/// bitesize's histograms by process name: name -> (low KiB -> count).
fn bitesize_histograms(lines: &[String]) -> BTreeMap<String, BTreeMap<u64, u64>> {
    let mut out: BTreeMap<String, BTreeMap<u64, u64>> = BTreeMap::new();
    let mut name = String::new();
    for l in lines {
        if let Some(n) = l.trim().strip_prefix("Process Name = ") {
            name = n.trim().to_string();
            continue;
        }
        let parts: Vec<&str> = l.split_whitespace().collect();
        if parts.len() >= 5 && parts[1] == "->" && parts[3] == ":" {
            if let (Ok(low), Ok(n)) = (parts[0].parse::<u64>(), parts[4].parse::<u64>()) {
                if n > 0 {
                    out.entry(name.clone()).or_default().insert(low, n);
                }
            }
        }
    }
    out
}

/// libbpf-tools' biosnoop cannot load on this kernel (it attaches a kprobe to
/// `blk_account_io_start`, and the kernel has no kprobes): `biosnoop` is checked against the
/// analyzer's own block latency, and the requests' sizes against libbpf-tools' bitesize.
#[test]
fn biosnoop_pairs_like_latency_and_bitesize_agrees_with_libbpf_tools() {
    require_root!();
    // Exact counts against a peer: alone, since other tests' tracers make the kernel skip runs.
    let _exclusive = exclusive();
    let cap = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let rec = Recording::start(
        cap.path(),
        &["--events", "block,process", "--segment", "60s"],
    );
    let mut child = Reaped(
        workload()
            .args(["--wait", "--writes", "64"])
            .arg("--dir")
            .arg(work.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let sizes = Peer::start("bitesize", &[]);
    // From here on: the workload's start (its binary read in) came before bitesize attached.
    let from = wall_now();
    child.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(child.0.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(500));
    let sizes = sizes.stop_lines();
    rec.stop();
    let dir = cap.path().to_str().unwrap();
    let ours = analyze_json(&["biosnoop", dir, "--from", &from]);
    let requests = ours["requests"].as_array().unwrap();
    let latency = analyze_json(&["latency", dir, "--kind", "block", "--from", &from]);
    let sum: u64 = requests
        .iter()
        .map(|r| r["latency_ns"].as_u64().unwrap())
        .sum();
    assert_eq!(
        requests.len() as u64,
        latency["groups"][0]["count"].as_u64().unwrap()
    );
    assert_eq!(sum, latency["groups"][0]["total"].as_u64().unwrap());
    let name = "flightrec-workl";
    let workload = requests.iter().filter(|r| r["comm"] == name).count();
    assert!(workload > 0, "no request issued by the workload");

    // bitesize takes the name of the task that issued the request, as flightrec does.
    let theirs = bitesize_histograms(&sizes);
    let ours = analyze_json(&["bitesize", dir, "--from", &from]);
    let mine: BTreeMap<u64, u64> = ours["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["comm"] == name)
        .map(|p| {
            p["slots"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
                .filter(|(_, n)| n.as_u64() > Some(0))
                .map(|(s, n)| (if s == 0 { 0 } else { 1 << s }, n.as_u64().unwrap()))
                .collect()
        })
        .unwrap_or_default();
    report(&format!(
        "agreement, bitesize ({name}): flightrec {mine:?}, bitesize {:?}; biosnoop: {} requests, {workload} of them the workload's",
        theirs.get(name),
        requests.len()
    ));
    assert_eq!(mine.values().sum::<u64>(), workload as u64);
    // The same slots; bitesize can count fewer: the kernel skips a tracing program that fires
    // while another one (flightrec's) runs on that CPU, and bitesize does not report its skips.
    let theirs = theirs.get(name).cloned().unwrap_or_default();
    assert_eq!(
        mine.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    for (slot, n) in &mine {
        let t = theirs[slot];
        assert!(
            t <= *n && n - t <= 1 + n / 50,
            "slot {slot} KiB: flightrec {n}, bitesize {t}"
        );
    }
}

#[test]
fn syscount_agrees_with_libbpf_tools_syscount() {
    require_root!();
    // Exact counts against a peer: alone, since other tests' tracers make the kernel skip runs.
    let _exclusive = exclusive();
    let cap = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    // Every thread of the process, as syscount -p counts them (not only those named like it).
    let rec = Recording::start(cap.path(), &["--events", "syscall", "--segment", "60s"]);
    let mut child = Reaped(
        workload()
            .args([
                "--wait",
                "--sleeps",
                "20",
                "--sleep-ms",
                "2",
                "--writes",
                "12",
            ])
            .arg("--dir")
            .arg(work.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id().to_string();
    let peer = Peer::start("syscount", &["-p", &pid, "-L", "-T", "100"]);
    let from = wall_now();
    child.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(child.0.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(200));
    let lines = peer.stop_lines();
    rec.stop();
    // SYSCALL COUNT TIME (us)
    let theirs: BTreeMap<String, u64> = lines
        .iter()
        .filter_map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (c.len() == 3).then(|| Some((c[0].to_string(), c[1].parse().ok()?)))?
        })
        .collect();
    let dir = cap.path().to_str().unwrap();
    let ours = analyze_json(&[
        "syscount", dir, "--pid", &pid, "--from", &from, "--top", "100",
    ]);
    let ours: BTreeMap<String, u64> = ours["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["count"].as_u64().unwrap(),
            )
        })
        .collect();
    report(&format!(
        "agreement, syscount: flightrec {ours:?}; syscount {theirs:?}"
    ));
    // What the workload was asked to do, exactly, in both.
    for (name, n) in [("clock_nanosleep", 20), ("pwrite64", 12), ("fsync", 12)] {
        assert_eq!(ours.get(name), Some(&n), "flightrec {name}");
        assert_eq!(theirs.get(name), Some(&n), "syscount {name}");
    }
    // And every syscall both saw, within what the kernel's skipped runs of syscount's programs
    // (which it does not report) explain.
    for (name, t) in &theirs {
        let o = ours.get(name).copied().unwrap_or(0);
        assert!(
            *t <= o && o - t <= 1 + o / 50,
            "{name}: flightrec {o}, syscount {t}"
        );
    }
}

#[test]
fn runqlen_finds_a_known_pile_up_on_one_cpu() {
    require_root!();
    let _quiet = quiet();
    let cap = tempfile::tempdir().unwrap();
    let rec = Recording::start(cap.path(), &["--events", "sched", "--segment", "60s"]);
    // Four tasks that each burn 1 s of CPU, all pinned to CPU 0: for about 4 s, one runs and
    // three wait there.
    let from = wall_now();
    let burners: Vec<_> = (0..4)
        .map(|_| {
            Reaped(
                Command::new("taskset")
                    .args(["-c", "0"])
                    .arg(env!("CARGO_BIN_EXE_flightrec-workload"))
                    .args(["--burn-ms", "1000"])
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    for mut b in burners {
        assert!(b.0.wait().unwrap().success());
    }
    let to = wall_now();
    rec.stop();
    let dir = cap.path().to_str().unwrap();
    let r = analyze_json(&["runqlen", dir, "--from", &from, "--to", &to]);
    let waiting = |cpu: u64, at_least: usize| -> f64 {
        let q = r["cpus"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["cpu"] == cpu)
            .unwrap_or_else(|| panic!("no cpu {cpu}: {r}"));
        let ns: Vec<u64> = q["ns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect();
        ns.iter().skip(at_least).sum::<u64>() as f64 / 1e9
    };
    let (cpu0, cpu1) = (waiting(0, 3), waiting(1, 3));
    report(&format!(
        "runqlen: CPU 0 had 3 or more tasks waiting for {cpu0:.2} s of the 4 s pile-up, CPU 1 for {cpu1:.2} s"
    ));
    assert!((3.0..5.0).contains(&cpu0), "{r}");
    assert!(cpu1 < 0.5, "{r}");
    let text = run_ok("flightrec-analyze", &["runqlen", dir, "--per-cpu"]);
    assert!(
        text.contains("cpu = 0") && text.contains("runqocc"),
        "{text}"
    );
}
