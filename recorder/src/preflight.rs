//! What the kernel offers, checked before anything is loaded: one line per missing piece saying
//! what is lost and how to fix it, instead of a failure deep inside a load. Missing pieces
//! without which nothing can be recorded (privileges, the BPF ring buffer, tracefs) stop the
//! recorder; the rest leave out what needs them and say so. `flightrec check` prints the whole
//! table.
use std::path::{Path, PathBuf};

use flightrec_common::Source;

use crate::sources;

/// What the checks read, so tests can describe another machine.
#[derive(Clone, Debug)]
pub struct Host {
    /// `uname -r`.
    pub release: String,
    /// The kernel's BTF, if readable.
    pub btf: Option<PathBuf>,
    /// tracefs, mounted (or mountable).
    pub tracefs: Option<PathBuf>,
    /// Effective capabilities (`CapEff` of /proc/self/status).
    pub caps: u64,
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

impl Host {
    /// This machine, as the recorder would see it.
    pub fn this() -> Host {
        let release = crate::host::kernel_release();
        let btf = Path::new("/sys/kernel/btf/vmlinux");
        let caps = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("CapEff:"))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
            .unwrap_or(0);
        Host {
            release,
            btf: std::fs::File::open(btf).ok().map(|_| btf.to_path_buf()),
            tracefs: crate::tracefs::tracefs_root().ok(),
            caps,
        }
    }

    fn has_cap(&self, cap: u32) -> bool {
        self.caps & (1u64 << cap) != 0
    }

    fn at_least(&self, version: (u32, u32)) -> bool {
        crate::host::release_version(&self.release) >= version
    }
}

/// One piece the recorder needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What it is.
    pub what: String,
    /// Present on this machine.
    pub ok: bool,
    /// Without it nothing can be recorded.
    pub fatal: bool,
    /// What is lost without it, and how to get it.
    pub lost: String,
    pub fix: String,
}

impl Check {
    /// The one line said about a missing piece.
    pub fn line(&self) -> String {
        format!("{} missing: {}; {}", self.what, self.lost, self.fix)
    }
}

/// The oldest kernel each tracepoint of a source appeared in (upstream), for the fix line.
fn since(event: &str) -> &'static str {
    match event {
        "contention_begin" | "contention_end" => "5.19",
        "tcp_send_reset" | "tcp_receive_reset" | "tcp_retransmit_skb" => "4.15",
        "inet_sock_set_state" => "4.16",
        "mark_victim" => "4.19",
        "mm_vmscan_memcg_reclaim_begin" | "mm_vmscan_memcg_reclaim_end" => "3.15",
        "page_fault_user" => "4.15 (x86 only)",
        "sched_waking" => "4.3",
        _ => "3.x",
    }
}

/// True when tracefs at `root` has the tracepoint `group:event`.
fn has_tracepoint(root: &Path, group: &str, event: &str) -> bool {
    root.join("events")
        .join(group)
        .join(event)
        .join("format")
        .is_file()
}

/// Every check, for the sources asked for.
pub fn checks(host: &Host, wanted: &[Source]) -> Vec<Check> {
    let mut out = Vec::new();
    let privileged =
        host.has_cap(CAP_SYS_ADMIN) || (host.has_cap(CAP_BPF) && host.has_cap(CAP_PERFMON));
    out.push(Check {
        what: "privileges to load BPF programs".into(),
        ok: privileged,
        fatal: true,
        lost: "nothing can be recorded".into(),
        fix: "run as root, or grant CAP_BPF and CAP_PERFMON (with CAP_DAC_READ_SEARCH and CAP_SYSLOG; README, Least privilege)".into(),
    });
    out.push(Check {
        what: "the BPF ring buffer".into(),
        ok: host.at_least((5, 8)),
        fatal: true,
        lost: "nothing can be recorded".into(),
        fix: format!("needs Linux 5.8 or later (this is {})", host.release),
    });
    out.push(Check {
        what: "tracefs".into(),
        ok: host.tracefs.is_some(),
        fatal: true,
        lost: "no tracepoint can be attached".into(),
        fix: "mount it: mount -t tracefs nodev /sys/kernel/tracing (needs CAP_SYS_ADMIN once)"
            .into(),
    });
    out.push(Check {
        what: "kernel BTF (/sys/kernel/btf/vmlinux)".into(),
        ok: host.btf.is_some(),
        fatal: false,
        lost: "exit codes, exec arguments, TCP byte counts, interrupt wakers and whole main-thread stacks are left out".into(),
        fix: "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (Linux 5.4 or later)".into(),
    });
    if wanted.contains(&Source::Sched) {
        out.push(Check {
            what: "BTF raw tracepoints for the scheduler's programs".into(),
            ok: host.btf.is_some() && host.at_least(sources::RAW_STATES_SINCE),
            fatal: false,
            lost: "the scheduler's programs attach as tracepoints: the same records, at more cost per event (the kernel formats a trace record before each)".into(),
            fix: "needs Linux 6.1 or later with BTF".into(),
        });
    }
    out.push(Check {
        what: "user registers of a task (bpf_task_pt_regs)".into(),
        ok: host.at_least((5, 15)),
        fatal: false,
        lost: "user stacks of code without frame pointers are cut where the frame pointers end"
            .into(),
        fix: "needs Linux 5.15 or later".into(),
    });
    if let Some(root) = &host.tracefs {
        for &s in wanted {
            for (_, group, event) in sources::tracepoints(s) {
                out.push(Check {
                    what: format!("tracepoint {group}:{event}"),
                    ok: has_tracepoint(root, group, event),
                    fatal: false,
                    lost: format!("the {} source is left out", s.name()),
                    fix: format!(
                        "needs Linux {} or later with its subsystem enabled, or leave {} out of --events",
                        since(event),
                        s.name()
                    ),
                });
            }
        }
    }
    out
}

/// The sources of `wanted` whose tracepoints are all present.
pub fn usable(host: &Host, wanted: &[Source]) -> Vec<Source> {
    let Some(root) = &host.tracefs else {
        return Vec::new();
    };
    wanted
        .iter()
        .copied()
        .filter(|&s| {
            sources::tracepoints(s)
                .iter()
                .all(|(_, g, e)| has_tracepoint(root, g, e))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(tracepoints: &[(&str, &str)]) -> (tempfile::TempDir, Host) {
        let dir = tempfile::tempdir().unwrap();
        for (g, e) in tracepoints {
            let d = dir.path().join("events").join(g).join(e);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("format"), "name: x\n").unwrap();
        }
        let host = Host {
            release: "5.10.0-28-amd64".into(),
            btf: None,
            tracefs: Some(dir.path().to_path_buf()),
            caps: (1 << CAP_BPF) | (1 << CAP_PERFMON),
        };
        (dir, host)
    }

    #[test]
    fn an_older_kernel_without_lock_tracepoints_loses_that_source_only() {
        let (_d, host) = fake(&[
            ("sched", "sched_switch"),
            ("sched", "sched_waking"),
            ("sched", "sched_wakeup"),
            ("sched", "sched_wakeup_new"),
        ]);
        let wanted = [Source::Sched, Source::Lock];
        let missing: Vec<String> = checks(&host, &wanted)
            .iter()
            .filter(|c| !c.ok)
            .map(Check::line)
            .collect();
        assert!(missing
            .iter()
            .all(|l| !l.contains("privileges") && !l.contains("ring buffer")));
        assert!(missing.iter().any(|l| l.starts_with("tracepoint lock:contention_begin missing: the lock source is left out; needs Linux 5.19")), "{missing:?}");
        assert!(missing
            .iter()
            .any(|l| l.contains("kernel BTF") && l.contains("exit codes")));
        assert!(missing.iter().any(|l| l.contains("bpf_task_pt_regs")));
        assert!(missing.iter().any(|l| l.starts_with("BTF raw tracepoints for the scheduler's programs missing: the scheduler's programs attach as tracepoints")), "{missing:?}");
        assert_eq!(usable(&host, &wanted), [Source::Sched]);
    }

    #[test]
    fn no_privileges_or_an_old_kernel_is_fatal() {
        let (_d, mut host) = fake(&[]);
        host.caps = 0;
        host.release = "4.19.0".into();
        let fatal: Vec<String> = checks(&host, &[])
            .into_iter()
            .filter(|c| !c.ok && c.fatal)
            .map(|c| c.what)
            .collect();
        assert_eq!(
            fatal,
            ["privileges to load BPF programs", "the BPF ring buffer"]
        );
    }

    #[test]
    fn this_machine_offers_everything() {
        let host = Host::this();
        if host.caps == 0 {
            flightrec_tests::skip("needs root");
            return;
        }
        let missing: Vec<String> = checks(&host, &Source::ALL)
            .iter()
            .filter(|c| !c.ok)
            .map(Check::line)
            .collect();
        assert!(missing.is_empty(), "{missing:?}");
    }
}
