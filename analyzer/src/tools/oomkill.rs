//! `oomkill`: each OOM kill, with the victim, its memory, and the task whose allocation invoked the
//! OOM killer (from `oom:mark_victim`).
use std::fmt::Write;

use arrow::datatypes::{Int32Type, UInt32Type, UInt64Type};
use flightrec_schemas::Table;
use serde::Serialize;

use crate::{
    capture::{Capture, Result},
    columns::{prim, strings},
    filter::Filter,
    lost::Lost,
    names::Tasks,
    parallel::selected,
};

/// One OOM kill.
#[derive(Clone, Debug, Serialize)]
pub struct Kill {
    #[serde(skip)]
    ts: u64,
    pub time: String,
    /// The task that invoked the OOM killer, and its process and name.
    pub trigger_tid: i32,
    pub trigger_pid: i32,
    pub trigger_comm: String,
    pub victim_pid: i32,
    pub victim_comm: String,
    pub uid: u32,
    pub oom_score_adj: i32,
    pub total_vm_kb: u64,
    pub anon_rss_kb: u64,
    pub file_rss_kb: u64,
    pub shmem_rss_kb: u64,
    pub pgtables_kb: u64,
}

/// Result of `oomkill`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub kills: Vec<Kill>,
    pub lost: Lost,
}

/// The OOM kills of the range whose victim `--pid`/`--comm` name (when given).
pub fn oomkill(cap: &Capture, filter: &Filter) -> Result<Report> {
    let mut kills = Vec::new();
    let cgroups = super::procs::cgroups(cap, filter)?;
    let cols = [
        "ts",
        "tid",
        "tgid",
        "victim_pid",
        "victim_comm",
        "uid",
        "oom_score_adj",
        "total_vm_kb",
        "anon_rss_kb",
        "file_rss_kb",
        "shmem_rss_kb",
        "pgtables_kb",
    ];
    for seg in selected(cap, filter) {
        let tasks = Tasks::load(seg)?;
        for b in seg.read(Table::Oom, &cols)? {
            let ts = prim::<UInt64Type>(&b, "ts");
            let (tid, tgid) = (prim::<Int32Type>(&b, "tid"), prim::<Int32Type>(&b, "tgid"));
            let (victim, vcomm) = (
                prim::<Int32Type>(&b, "victim_pid"),
                strings(&b, "victim_comm"),
            );
            let (uid, adj) = (
                prim::<UInt32Type>(&b, "uid"),
                prim::<Int32Type>(&b, "oom_score_adj"),
            );
            let kb = |c| prim::<UInt64Type>(&b, c);
            let (vm, anon, file, shmem, pgt) = (
                kb("total_vm_kb"),
                kb("anon_rss_kb"),
                kb("file_rss_kb"),
                kb("shmem_rss_kb"),
                kb("pgtables_kb"),
            );
            for i in 0..b.num_rows() {
                let (v, vc) = (victim.value(i), vcomm.value(i));
                if !filter.in_range(ts.value(i))
                    || filter.pid.is_some_and(|p| p != v)
                    || filter.comm.as_deref().is_some_and(|c| c != vc)
                    || !filter.in_cgroup(cgroups.get(&v).map(String::as_str))
                {
                    continue;
                }
                kills.push(Kill {
                    ts: ts.value(i),
                    time: super::time(cap, ts.value(i)),
                    trigger_tid: tid.value(i),
                    trigger_pid: tgid.value(i),
                    trigger_comm: tasks.comm(tid.value(i)).to_string(),
                    victim_pid: v,
                    victim_comm: vc.to_string(),
                    uid: uid.value(i),
                    oom_score_adj: adj.value(i),
                    total_vm_kb: vm.value(i),
                    anon_rss_kb: anon.value(i),
                    file_rss_kb: file.value(i),
                    shmem_rss_kb: shmem.value(i),
                    pgtables_kb: pgt.value(i),
                });
            }
        }
    }
    kills.sort_by_key(|k| k.ts);
    Ok(Report {
        kills,
        lost: Lost::in_range(cap, filter),
    })
}

impl Report {
    /// One line per kill, as oomkill prints it, with the victim's memory.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for k in &self.kills {
            let _ = writeln!(
                out,
                "{} Triggered by PID {} (\"{}\"), OOM kill of PID {} (\"{}\"): total-vm {} kB, \
                 anon-rss {} kB, file-rss {} kB, shmem-rss {} kB, uid {}, oom_score_adj {}",
                k.time,
                k.trigger_pid,
                k.trigger_comm,
                k.victim_pid,
                k.victim_comm,
                k.total_vm_kb,
                k.anon_rss_kb,
                k.file_rss_kb,
                k.shmem_rss_kb,
                k.uid,
                k.oom_score_adj
            );
        }
        if self.kills.is_empty() {
            out.push_str("no OOM kills in this range\n");
        }
        out
    }
}
