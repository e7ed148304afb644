//! Cgroups: the recorder names every process's cgroup, and `--cgroup` selects its tasks in every
//! command. A workload runs in a cgroup the test makes, another outside it.
use std::{process::Command, process::Stdio};

use super::{signals::MemCgroup, *};

#[test]
fn cgroup_filter_selects_the_tasks_of_one_cgroup() {
    require_root!();
    let _quiet = quiet();
    let cap = tempfile::tempdir().unwrap();
    let rec = Recording::start(cap.path(), &["--segment", "1s"]);
    let cg = MemCgroup::new("cgroup", 1 << 30);
    let name = format!("/{}", cg.0.file_name().unwrap().to_str().unwrap());
    let burn = ["--burn-ms", "400", "--sleeps", "3"];
    let inside = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec {} {}",
            cg.0.display(),
            env!("CARGO_BIN_EXE_flightrec-workload"),
            burn.join(" ")
        ))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let outside = workload().args(burn).stdout(Stdio::null()).spawn().unwrap();
    let (inside_pid, outside_pid) = (inside.id() as i64, outside.id() as i64);
    assert!(inside.wait_with_output().unwrap().status.success());
    assert!(outside.wait_with_output().unwrap().status.success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    rec.stop();
    drop(cg);
    let c = cap.path().to_str().unwrap();

    // The summary names the cgroup and, filtered, shows only its process.
    let all = analyze_json(&["summary", c]);
    let pids = |s: &serde_json::Value| -> Vec<i64> {
        s["top_cpu"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["pid"].as_i64().unwrap())
            .collect()
    };
    assert!(
        pids(&all).contains(&inside_pid) && pids(&all).contains(&outside_pid),
        "{all}"
    );
    let mine = all["top_cpu"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"].as_i64() == Some(inside_pid))
        .unwrap();
    assert_eq!(mine["cgroup"].as_str(), Some(name.as_str()), "{mine}");
    let filtered = analyze_json(&["summary", c, "--cgroup", &name]);
    assert_eq!(pids(&filtered), vec![inside_pid], "{filtered}");
    assert_eq!(
        filtered["top_cgroups_cpu"][0]["cgroup"],
        name.as_str(),
        "{filtered}"
    );

    // The CPU profile of the cgroup is the profile of the process inside it.
    let profile = |args: &[&str]| -> u64 {
        let mut a = vec!["profile", c];
        a.extend(args);
        analyze_json(&a)["total"].as_u64().unwrap()
    };
    let by_cgroup = profile(&["--cgroup", &name]);
    assert!(by_cgroup >= 10, "{by_cgroup} samples of 400 ms at 49 Hz");
    assert_eq!(by_cgroup, profile(&["--pid", &inside_pid.to_string()]));
    // execsnoop: only the process inside (its shell's exec and the workload's; a process's cgroup
    // is the one last read for it).
    let execs = analyze_json(&["execsnoop", c, "--cgroup", &name]);
    let execs = execs["execs"].as_array().unwrap();
    assert!(
        execs.iter().all(|e| e["pid"].as_i64() == Some(inside_pid)),
        "{execs:?}"
    );
    assert!(
        execs.iter().any(|e| e["comm"] == "flightrec-workl"),
        "{execs:?}"
    );
    // A cgroup nobody ran in selects nothing.
    assert_eq!(profile(&["--cgroup", "/no-such-cgroup"]), 0);
}
