//! The live process table: seeded from /proc when recording starts, kept current from exec, fork,
//! exit and the comms the scheduler events carry. Each segment writes the rows of the tasks it
//! references, so every pid in a capture has a name.
use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use flightrec_common::COMM_LEN;

/// A thread.
#[derive(Clone, Debug, Default)]
pub struct Task {
    /// Its process, once known.
    pub tgid: Option<i32>,
    /// Thread name.
    pub comm: [u8; COMM_LEN],
    /// Segment in which it exited.
    exited_in: Option<u64>,
}

/// A process (thread group).
#[derive(Clone, Debug, Default)]
pub struct Process {
    /// Parent process.
    pub ppid: Option<i32>,
    /// Executable path.
    pub exe: Option<Arc<str>>,
    /// Command line, arguments separated by spaces.
    pub cmdline: Option<Arc<str>>,
    /// Its cgroup ([`read_cgroup`]).
    pub cgroup: Option<Arc<str>>,
}

/// Threads by tid and processes by tgid.
#[derive(Clone, Debug, Default)]
pub struct TaskTable {
    tasks: HashMap<i32, Task>,
    procs: HashMap<i32, Process>,
}

fn comm_bytes(s: &str) -> [u8; COMM_LEN] {
    let mut c = [0u8; COMM_LEN];
    let n = s.len().min(COMM_LEN - 1);
    c[..n].copy_from_slice(&s.as_bytes()[..n]);
    c
}

/// `/proc/<pid>/cmdline` as one line, if the process is still there.
pub fn read_cmdline(pid: i32) -> Option<Arc<str>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if raw.is_empty() {
        return None;
    }
    let parts: Vec<_> = raw
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(String::from_utf8_lossy)
        .collect();
    Some(parts.join(" ").into())
}

/// The cgroup of a process from `/proc/<pid>/cgroup`: its cgroup v2 path when not the root, else
/// the path most of its v1 controllers share when not the root, else the first v1 path that is not,
/// else `/`. (A Kubernetes pod's containers have the pod's path under every controller.)
pub fn read_cgroup(pid: i32) -> Option<Arc<str>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    Some(pick_cgroup(&text).into())
}

fn pick_cgroup(text: &str) -> String {
    let mut v1: Vec<&str> = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(_), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if id == "0" {
            if path != "/" {
                return path.to_string();
            }
        } else if path != "/" {
            v1.push(path);
        }
    }
    let mut counts: HashMap<&str, usize> = HashMap::default();
    for p in &v1 {
        *counts.entry(p).or_insert(0) += 1;
    }
    let most = v1.iter().max_by_key(|p| {
        (
            counts[*p],
            std::cmp::Reverse(v1.iter().position(|q| q == *p)),
        )
    });
    most.map_or("/".to_string(), |p| p.to_string())
}

impl TaskTable {
    /// Seeds the table from every process and thread in /proc.
    pub fn scan_proc() -> TaskTable {
        let mut t = TaskTable::default();
        // The idle tasks share pid 0; name them as ps does.
        t.tasks.insert(
            0,
            Task {
                tgid: Some(0),
                comm: comm_bytes("swapper"),
                exited_in: None,
            },
        );
        let Ok(all) = procfs::process::all_processes() else {
            return t;
        };
        for p in all.flatten() {
            let Ok(stat) = p.stat() else { continue };
            let tgid = stat.pid;
            t.procs.insert(
                tgid,
                Process {
                    ppid: Some(stat.ppid),
                    exe: p.exe().ok().map(|e| e.to_string_lossy().into()),
                    cmdline: read_cmdline(tgid),
                    cgroup: read_cgroup(tgid),
                },
            );
            t.tasks.insert(
                tgid,
                Task {
                    tgid: Some(tgid),
                    comm: comm_bytes(&stat.comm),
                    exited_in: None,
                },
            );
            let Ok(threads) = p.tasks() else { continue };
            for th in threads.flatten() {
                if th.tid == tgid {
                    continue;
                }
                let comm = th.stat().map(|s| comm_bytes(&s.comm)).unwrap_or_default();
                t.tasks.insert(
                    th.tid,
                    Task {
                        tgid: Some(tgid),
                        comm,
                        exited_in: None,
                    },
                );
            }
        }
        t
    }

    /// Number of threads known.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// True when no thread is known.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Records that `tid` belongs to `tgid` (seen as the current task of an event).
    #[inline]
    pub fn see(&mut self, tid: i32, tgid: i32) {
        let t = self.tasks.entry(tid).or_default();
        t.tgid = Some(tgid);
    }

    /// Updates a thread's name when an event carries it.
    #[inline]
    pub fn set_comm(&mut self, tid: i32, comm: &[u8; COMM_LEN]) {
        if comm[0] == 0 {
            return;
        }
        let t = self.tasks.entry(tid).or_default();
        if &t.comm != comm {
            t.comm = *comm;
        }
    }

    /// A successful exec: new name, executable and command line.
    pub fn exec(&mut self, tid: i32, tgid: i32, comm: &[u8; COMM_LEN], filename: &str) {
        self.see(tid, tgid);
        self.set_comm(tid, comm);
        let p = self.procs.entry(tgid).or_default();
        p.exe = Some(filename.into());
        p.cmdline = read_cmdline(tgid);
        p.cgroup = read_cgroup(tgid).or(p.cgroup.take());
    }

    /// A fork. Whether the child is a thread or a process is learned when it first runs.
    pub fn fork(&mut self, parent_tgid: i32, child: i32, comm: &[u8; COMM_LEN]) {
        self.set_comm(child, comm);
        // A child starts in its parent's cgroup.
        let cgroup = self.procs.get(&parent_tgid).and_then(|p| p.cgroup.clone());
        let p = self.procs.entry(child).or_default();
        if p.ppid.is_none() {
            p.ppid = Some(parent_tgid);
        }
        if p.cgroup.is_none() {
            p.cgroup = cgroup;
        }
    }

    /// An exit, during segment `segment`.
    pub fn exit(&mut self, tid: i32, segment: u64) {
        if let Some(t) = self.tasks.get_mut(&tid) {
            t.exited_in = Some(segment);
        }
    }

    /// A thread and its process.
    pub fn get(&self, tid: i32) -> Option<(&Task, Option<&Process>)> {
        let t = self.tasks.get(&tid)?;
        // Process info is keyed by tgid; for an unresolved thread, fall back to its own id.
        let p = self.procs.get(&t.tgid.unwrap_or(tid));
        Some((t, p))
    }

    /// Forgets tasks that exited before segment `segment`: their rows are already written.
    pub fn prune(&mut self, segment: u64) {
        self.tasks
            .retain(|_, t| t.exited_in.is_none_or(|s| s >= segment));
        let live: std::collections::HashSet<i32> =
            self.tasks.values().filter_map(|t| t.tgid).collect();
        self.procs
            .retain(|tgid, _| live.contains(tgid) || self.tasks.contains_key(tgid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_paths_prefer_v2_then_the_common_v1_path() {
        assert_eq!(
            pick_cgroup("0::/kubepods.slice/pod1/c1\n"),
            "/kubepods.slice/pod1/c1"
        );
        let v1 = "9:name=systemd:/\n4:memory:/kubepods/pod1/c1\n1:cpu:/kubepods/pod1/c1\n3:cpuset:/x\n0::/\n";
        assert_eq!(pick_cgroup(v1), "/kubepods/pod1/c1");
        assert_eq!(pick_cgroup("4:memory:/a\n0::/\n"), "/a");
        assert_eq!(pick_cgroup("1:cpu:/\n0::/\n"), "/");
    }

    #[test]
    fn scan_finds_this_process_and_its_threads() {
        let me = std::process::id() as i32;
        let _t = std::thread::Builder::new()
            .name("scan-me".into())
            .spawn(|| std::thread::sleep(std::time::Duration::from_secs(2)))
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let table = TaskTable::scan_proc();
        let (task, proc_) = table.get(me).expect("own pid scanned");
        assert_eq!(task.tgid, Some(me));
        assert!(proc_.unwrap().cmdline.is_some());
        let thread_named = table
            .tasks
            .values()
            .any(|t| t.tgid == Some(me) && crate::decode::c_str(&t.comm) == "scan-me");
        assert!(thread_named, "thread comm found");
    }

    #[test]
    fn exited_tasks_are_pruned_one_segment_later() {
        let mut t = TaskTable::default();
        t.fork(1, 100, &comm_bytes("child"));
        t.see(100, 100);
        t.exit(100, 5);
        t.prune(5);
        assert!(t.get(100).is_some(), "kept while its segment is open");
        t.prune(6);
        assert!(t.get(100).is_none());
    }
}
