//! Signals, OOM kills and reclaim from a capture: `killsnoop` against libbpf-tools' killsnoop
//! (sigsnoop) for signals this test sends to children of its own, `oomkill` and the `exit:oom`
//! trigger for a process the kernel's OOM killer kills in a memory cgroup the test makes, and
//! `drsnoop` for the reclaim a writer does in such a cgroup.
use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use super::{peers::Peer, *};

#[test]
fn killsnoop_names_sender_target_and_signal_like_libbpf_killsnoop() {
    require_root!();
    // Exact counts against a peer: alone, since other tests' tracers make the kernel skip runs.
    let _exclusive = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("cap");
    let rec = Recording::start(&cap, &["--events", "process,signal", "--segment", "1s"]);
    let peer = Peer::start_when("killsnoop", &[], "TIME");
    // Three children, each sent a known signal by this process.
    let sent = [libc::SIGUSR1, libc::SIGTERM, libc::SIGKILL];
    let mut children: Vec<_> = sent
        .iter()
        .map(|_| Command::new("/bin/sleep").arg("30").spawn().unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    for (c, sig) in children.iter().zip(sent) {
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { libc::kill(c.id() as i32, sig) }, 0);
    }
    for c in &mut children {
        c.wait().unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let theirs = peer.stop_lines();
    rec.stop();
    let c = cap.to_str().unwrap();
    let me = std::process::id() as i64;
    let want: BTreeSet<(i64, i64)> = children
        .iter()
        .zip(sent)
        .map(|(c, s)| (c.id() as i64, s as i64))
        .collect();
    let children: BTreeSet<i64> = want.iter().map(|w| w.0).collect();
    let ours = analyze_json(&["killsnoop", c, "--pid", &me.to_string()]);
    // (The test also stops the peer and the recorder with SIGINT: not counted here.)
    let got: BTreeSet<(i64, i64)> = ours["signals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["result"] == "delivered")
        .filter(|s| children.contains(&s["target_tid"].as_i64().unwrap()))
        .map(|s| {
            (
                s["target_tid"].as_i64().unwrap(),
                s["sig"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want, "{ours}");
    // killsnoop prints PID COMM SIG TPID RESULT after the time.
    let peer_got: BTreeSet<(i64, i64)> = theirs
        .iter()
        .filter_map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (c.get(1)?.parse::<i64>().ok()? == me)
                .then(|| Some((c.get(4)?.parse().ok()?, c.get(3)?.parse().ok()?)))?
        })
        .filter(|(target, _)| children.contains(target))
        .collect();
    report(&format!(
        "killsnoop: flightrec {got:?}, libbpf-tools {peer_got:?}"
    ));
    assert_eq!(got, peer_got);
    // The kernel's SIGCHLDs at the children's exits go to their parent, this thread (the one that
    // forked them): there with --all only.
    // SAFETY: gettid has no preconditions.
    let thread = unsafe { libc::syscall(libc::SYS_gettid) };
    let chld = |json: &serde_json::Value| {
        json["signals"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["sig"] == 17 && s["target_tid"].as_i64() == Some(thread))
            .filter(|s| children.contains(&s["pid"].as_i64().unwrap()))
            .count()
    };
    let all = analyze_json(&["killsnoop", c, "--all"]);
    assert_eq!(chld(&all), 3, "{all}");
    assert_eq!(chld(&analyze_json(&["killsnoop", c])), 0);
    let text = run_ok("flightrec-analyze", &["killsnoop", c]);
    assert!(text.contains("KILL") && text.contains("USR1"), "{text}");
}

/// A memory cgroup named for `tag` and limited to `bytes`, removed when dropped: cgroup v1's
/// memory controller, or a v2 hierarchy with the memory controller.
pub(super) struct MemCgroup(pub(super) PathBuf);

impl MemCgroup {
    pub(super) fn new(tag: &str, bytes: u64) -> MemCgroup {
        let name = format!("flightrec-{tag}-{}", std::process::id());
        let v1 = Path::new("/sys/fs/cgroup/memory");
        let (dir, limit) = if v1.join("memory.limit_in_bytes").exists() {
            (v1.join(&name), "memory.limit_in_bytes")
        } else {
            (Path::new("/sys/fs/cgroup").join(&name), "memory.max")
        };
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(limit), bytes.to_string()).unwrap();
        MemCgroup(dir)
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn oomkill_and_the_exit_oom_trigger_catch_a_memory_cgroup_oom_kill() {
    require_root!();
    let _quiet = quiet();
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("cap");
    let rec = Recording::start(
        &cap,
        &[
            "--events",
            "sched,process,oom",
            "--segment",
            "1s",
            "--trigger",
            "exit:oom",
            "--post",
            "1s",
        ],
    );
    // `tail /dev/zero` keeps one ever-growing line in memory: in a 48 MiB cgroup the OOM killer
    // kills it.
    let cg = MemCgroup::new("oom", 48 << 20);
    let procs = cg.0.join("cgroup.procs");
    let mut hog = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {} && exec tail /dev/zero",
            procs.display()
        ))
        .spawn()
        .unwrap();
    let status = hog.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    let victim = hog.id() as i64;
    // The trigger froze a snapshot after its --post.
    std::thread::sleep(Duration::from_millis(2500));
    rec.stop();
    drop(cg);
    let c = cap.to_str().unwrap();
    let kills = analyze_json(&["oomkill", c]);
    let k = kills["kills"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["victim_pid"].as_i64() == Some(victim))
        .unwrap_or_else(|| panic!("no OOM kill of {victim}: {kills}"))
        .clone();
    assert_eq!(k["victim_comm"], "tail", "{k}");
    // The hog itself allocated: it invoked the OOM killer, in its own cgroup.
    assert_eq!(k["trigger_pid"].as_i64(), Some(victim), "{k}");
    let rss = k["anon_rss_kb"].as_u64().unwrap();
    assert!(
        (30 << 10..=48 << 10).contains(&rss),
        "{rss} kB resident: {k}"
    );
    // exitsnoop agrees: killed by SIGKILL.
    let exits = analyze_json(&["exitsnoop", c, "--pid", &victim.to_string()]);
    assert_eq!(exits["exits"][0]["signal"], 9, "{exits}");
    // The trigger froze the window, naming the victim.
    let snaps: Vec<_> = std::fs::read_dir(cap.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    let manifest = std::fs::read_to_string(snaps[0].join("manifest.json")).unwrap();
    assert!(
        manifest.contains(&format!(
            "trigger exit:oom: process {victim} chosen by the OOM killer"
        )),
        "{manifest}"
    );
}

#[test]
fn drsnoop_counts_the_pages_a_memory_cgroup_reclaimed_from_its_writer() {
    require_root!();
    let _quiet = quiet();
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("cap");
    let rec = Recording::start(&cap, &["--events", "process,reclaim", "--segment", "1s"]);
    // 256 MiB written through the page cache of a 64 MiB cgroup: the writer itself reclaims what
    // goes over the limit, about 192 MiB.
    let cg = MemCgroup::new("reclaim", 64 << 20);
    let data = tempfile::tempdir_in("/var/tmp").unwrap();
    let mut dd = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec dd if=/dev/zero of={}/data bs=1M count=256 status=none",
            cg.0.display(),
            data.path().display()
        ))
        .spawn()
        .unwrap();
    assert!(dd.wait().unwrap().success());
    let pid = dd.id().to_string();
    drop(data);
    std::thread::sleep(Duration::from_millis(300));
    rec.stop();
    drop(cg);
    let r = analyze_json(&["drsnoop", cap.to_str().unwrap(), "--pid", &pid]);
    let reclaims = r["reclaims"].as_array().unwrap();
    assert!(!reclaims.is_empty(), "{r}");
    assert!(
        reclaims
            .iter()
            .all(|x| x["kind"] == "memcg" && x["comm"] == "dd"),
        "{r}"
    );
    let pages: u64 = reclaims.iter().map(|x| x["pages"].as_u64().unwrap()).sum();
    let over = (256 - 64) << 20 >> 12;
    report(&format!(
        "drsnoop: {} memcg reclaims by dd, {pages} pages ({} MiB; {} MiB went over the limit)",
        reclaims.len(),
        pages >> 8,
        over >> 8
    ));
    assert!(
        pages * 10 >= over * 8 && pages * 10 <= over * 13,
        "{pages} pages reclaimed"
    );
}
