//! Automatic freezes: conditions watched in the live event stream. When one is met, the window is
//! frozen `--post` later (so the snapshot holds what came before and after), named after the
//! trigger and the time; a cool-down keeps a burst of matches from becoming a burst of freezes.
use std::{collections::HashMap, fmt, str::FromStr, time::Duration};

use flightrec_common::COMM_LEN;
use flightrec_schemas::task_state;

use crate::decode::Record;

/// What a trigger watches for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// A run-queue latency (wake-up or switch-out while runnable → switch-in) above this many ns.
    Runq(u64),
    /// A block request (issue → completion) slower than this many ns.
    Block(u64),
    /// A process killed by a signal (this one, or any).
    ExitSignal(Option<i32>),
    /// A process exiting with a non-zero code (this one, or any).
    ExitCode(Option<i32>),
    /// A process chosen by the OOM killer.
    ExitOom,
}

/// Whose events a trigger looks at: the thread that waited (runq), the task that issued the
/// request (block), the process that exited (exit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A process (tgid).
    Pid(i32),
    /// Threads with this name.
    Comm([u8; COMM_LEN]),
}

/// A condition, optionally limited to one process or one thread name: `runq>20ms`,
/// `block>50ms,comm=postgres`, `exit:code=3,pid=1234`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trigger {
    /// What fires it.
    pub condition: Condition,
    /// Whose events count; every task's when `None`.
    pub scope: Option<Scope>,
}

impl From<Condition> for Trigger {
    fn from(condition: Condition) -> Trigger {
        Trigger {
            condition,
            scope: None,
        }
    }
}

/// How a process ended, from `task_struct.exit_code` (a wait status).
pub fn exit_status(code: i32) -> (Option<i32>, Option<i32>) {
    let sig = code & 0x7f;
    if sig != 0 {
        (Some(sig), None)
    } else {
        (None, Some((code >> 8) & 0xff))
    }
}

impl Trigger {
    /// Short name used in snapshot names.
    pub fn name(&self) -> &'static str {
        match self.condition {
            Condition::Runq(_) => "runq",
            Condition::Block(_) => "block",
            Condition::ExitSignal(_) | Condition::ExitCode(_) | Condition::ExitOom => "exit",
        }
    }

    /// The source whose events the trigger watches, beside the scheduler's.
    pub fn needs_source(&self) -> Option<flightrec_common::Source> {
        match self.condition {
            Condition::ExitSignal(_) | Condition::ExitCode(_) => {
                Some(flightrec_common::Source::Process)
            }
            Condition::ExitOom => Some(flightrec_common::Source::Oom),
            Condition::Runq(_) => Some(flightrec_common::Source::Sched),
            Condition::Block(_) => Some(flightrec_common::Source::Block),
        }
    }
}

/// Refuses triggers whose events are not recorded.
pub fn check_sources(
    triggers: &[Trigger],
    sources: &[flightrec_common::Source],
) -> anyhow::Result<()> {
    for t in triggers {
        if let Some(s) = t.needs_source().filter(|s| !sources.contains(s)) {
            anyhow::bail!(
                "trigger {t} needs the {} events: add {} to --events",
                s.name(),
                s.name()
            );
        }
    }
    Ok(())
}

fn comm_text(c: &[u8; COMM_LEN]) -> String {
    let end = c.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
    String::from_utf8_lossy(&c[..end]).into_owned()
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let eq = |v: &Option<i32>| v.map(|v| format!("={v}")).unwrap_or_default();
        let d = |ns: u64| humantime::format_duration(Duration::from_nanos(ns));
        match self {
            Condition::Runq(ns) => write!(f, "runq>{}", d(*ns)),
            Condition::Block(ns) => write!(f, "block>{}", d(*ns)),
            Condition::ExitSignal(s) => write!(f, "exit:signal{}", eq(s)),
            Condition::ExitCode(c) => write!(f, "exit:code{}", eq(c)),
            Condition::ExitOom => write!(f, "exit:oom"),
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.condition)?;
        match &self.scope {
            None => Ok(()),
            Some(Scope::Pid(p)) => write!(f, ",pid={p}"),
            Some(Scope::Comm(c)) => write!(f, ",comm={}", comm_text(c)),
        }
    }
}

impl FromStr for Condition {
    type Err = String;

    fn from_str(s: &str) -> Result<Condition, String> {
        let usage = || {
            format!(
                "trigger {s:?}: expected runq>DURATION, block>DURATION, exit:signal[=N], exit:code[=N] or exit:oom, optionally followed by ,pid=N or ,comm=NAME (e.g. runq>20ms,comm=postgres)"
            )
        };
        if let Some(rest) = s.strip_prefix("exit:") {
            let (what, n) = match rest.split_once('=') {
                Some((w, n)) => {
                    let n = n
                        .trim()
                        .parse::<i32>()
                        .map_err(|e| format!("{}: {e}", usage()))?;
                    (w, Some(n))
                }
                None => (rest, None),
            };
            return match what.trim() {
                "oom" if n.is_none() => Ok(Condition::ExitOom),
                "signal" => Ok(Condition::ExitSignal(n)),
                "code" => Ok(Condition::ExitCode(n)),
                _ => Err(usage()),
            };
        }
        let (kind, value) = s.split_once('>').ok_or_else(usage)?;
        let d = humantime::parse_duration(value.trim()).map_err(|e| format!("{}: {e}", usage()))?;
        let ns = d.as_nanos() as u64;
        match kind.trim() {
            "runq" => Ok(Condition::Runq(ns)),
            "block" => Ok(Condition::Block(ns)),
            _ => Err(usage()),
        }
    }
}

impl FromStr for Trigger {
    type Err = String;

    fn from_str(s: &str) -> Result<Trigger, String> {
        let (cond, scope) = match s.split_once(',') {
            Some((c, rest)) => (c, Some(rest)),
            None => (s, None),
        };
        let condition: Condition = cond.parse()?;
        let scope = match scope.map(|r| r.trim().split_once('=')) {
            None => None,
            Some(Some(("pid", v))) => Some(Scope::Pid(
                v.trim()
                    .parse()
                    .map_err(|e| format!("trigger {s:?}: pid={v}: {e}"))?,
            )),
            Some(Some(("comm", v))) => {
                let v = v.trim();
                if v.is_empty() || v.len() >= COMM_LEN {
                    return Err(format!(
                        "trigger {s:?}: comm must be 1 to {} bytes, as the kernel keeps it",
                        COMM_LEN - 1
                    ));
                }
                let mut c = [0u8; COMM_LEN];
                c[..v.len()].copy_from_slice(v.as_bytes());
                Some(Scope::Comm(c))
            }
            Some(_) => {
                return Err(format!(
                    "trigger {s:?}: after the condition, expected ,pid=N or ,comm=NAME"
                ))
            }
        };
        Ok(Trigger { condition, scope })
    }
}

/// A trigger that matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fired {
    /// Which.
    pub trigger: Trigger,
    /// The latency seen, ns (for exit triggers: the signal or the exit code).
    pub latency_ns: u64,
    /// The thread it concerned (runq), the issuing process (block) or the exiting process (exit).
    pub tid: i32,
    /// Monotonic ns of the event that completed the interval.
    pub at_ns: u64,
}

impl Fired {
    /// The reason recorded in the snapshot's manifest.
    pub fn reason(&self) -> String {
        let t = &self.trigger;
        let took = || humantime::format_duration(Duration::from_micros(self.latency_ns / 1000));
        match t.condition {
            Condition::ExitSignal(_) => format!(
                "trigger {t}: process {} killed by signal {}",
                self.tid, self.latency_ns
            ),
            Condition::ExitCode(_) => format!(
                "trigger {t}: process {} exited with code {}",
                self.tid, self.latency_ns
            ),
            Condition::Block(_) => format!(
                "trigger {t}: {} for a request issued by process {}",
                took(),
                self.tid
            ),
            Condition::Runq(_) => format!("trigger {t}: {} for tid {}", took(), self.tid),
            Condition::ExitOom => format!(
                "trigger {t}: process {} chosen by the OOM killer ({} kB resident)",
                self.tid, self.latency_ns
            ),
        }
    }
}

/// Live state of the configured triggers.
#[derive(Default)]
pub struct Watch {
    triggers: Vec<Trigger>,
    /// Runnable since: tid → ts.
    enqueued: HashMap<i32, u64>,
    /// Requests in flight: (dev, sector) → (issue ts, issuing tgid, issuing tid).
    issued: HashMap<(u32, u64), (u64, i32, i32)>,
    /// What the stream has said of each thread, for scoped triggers: tid → (tgid, comm).
    threads: HashMap<i32, (i32, [u8; COMM_LEN])>,
}

impl Watch {
    /// Watches `triggers`.
    pub fn new(triggers: Vec<Trigger>) -> Watch {
        Watch {
            triggers,
            ..Default::default()
        }
    }

    /// True when nothing is watched (the decoder skips the bookkeeping).
    pub fn is_empty(&self) -> bool {
        self.triggers.is_empty()
    }

    /// True when thread `tid` (of process `tgid`, named `comm`, where the record says) is in scope.
    /// What a record does not say comes from what earlier records said of the thread: a thread
    /// the stream has not shown yet is not in a scoped trigger's scope.
    fn in_scope(
        &self,
        scope: &Option<Scope>,
        tid: i32,
        tgid: Option<i32>,
        comm: Option<&[u8; COMM_LEN]>,
    ) -> bool {
        let known = self.threads.get(&tid);
        match scope {
            None => true,
            Some(Scope::Pid(p)) => tgid.or(known.map(|k| k.0)) == Some(*p),
            Some(Scope::Comm(c)) => comm.or(known.map(|k| &k.1)) == Some(c),
        }
    }

    /// Learns thread names and processes from the records that carry them (switches, execs,
    /// samples).
    fn learn(&mut self, rec: &Record<'_>) {
        match rec {
            Record::Switch(e, ..) => {
                // Current is prev: its tgid is the header's.
                if e.prev_pid != 0 {
                    self.threads
                        .insert(e.prev_pid, (e.hdr.tgid as i32, e.prev_comm));
                }
                if let Some(t) = self.threads.get_mut(&e.next_pid) {
                    t.1 = e.next_comm;
                }
            }
            // Current is the task after exec.
            Record::Exec(e, _) => {
                self.threads
                    .insert(e.hdr.tid as i32, (e.hdr.tgid as i32, e.comm));
            }
            Record::Sample(e, ..) => {
                self.threads
                    .insert(e.hdr.tid as i32, (e.hdr.tgid as i32, e.comm));
            }
            Record::Exit(e) => {
                self.threads.remove(&e.pid);
            }
            _ => {}
        }
    }

    /// Looks at one record; returns the first trigger it satisfies.
    pub fn observe(&mut self, rec: &Record<'_>) -> Option<Fired> {
        let scoped = self.triggers.iter().any(|t| t.scope.is_some());
        for i in 0..self.triggers.len() {
            let t = self.triggers[i];
            let hit = match (t.condition, rec) {
                (Condition::Runq(_), Record::Wakeup(e, _)) => {
                    self.enqueued.insert(e.pid, e.hdr.ts);
                    None
                }
                (Condition::Runq(limit), Record::Switch(e, ..)) => {
                    if task_state::is_runnable(e.prev_state) && e.prev_pid != 0 {
                        self.enqueued.insert(e.prev_pid, e.hdr.ts);
                    }
                    self.enqueued
                        .remove(&e.next_pid)
                        .map(|t0| (e.hdr.ts.saturating_sub(t0), e.next_pid))
                        .filter(|(lat, tid)| {
                            *lat > limit && self.in_scope(&t.scope, *tid, None, Some(&e.next_comm))
                        })
                }
                (Condition::ExitSignal(want), Record::Exit(e))
                    if e.group_dead != 0 && e.exit_code != flightrec_common::EXIT_CODE_UNKNOWN =>
                {
                    let (sig, _) = exit_status(e.exit_code);
                    sig.filter(|s| want.is_none_or(|w| w == *s))
                        .map(|s| (s as u64, e.hdr.tgid as i32))
                        .filter(|_| {
                            self.in_scope(&t.scope, e.pid, Some(e.hdr.tgid as i32), Some(&e.comm))
                        })
                }
                (Condition::ExitCode(want), Record::Exit(e))
                    if e.group_dead != 0 && e.exit_code != flightrec_common::EXIT_CODE_UNKNOWN =>
                {
                    let (_, code) = exit_status(e.exit_code);
                    code.filter(|c| *c != 0 && want.is_none_or(|w| w == *c))
                        .map(|c| (c as u64, e.hdr.tgid as i32))
                        .filter(|_| {
                            self.in_scope(&t.scope, e.pid, Some(e.hdr.tgid as i32), Some(&e.comm))
                        })
                }
                (Condition::ExitOom, Record::Oom(e)) => {
                    let rss = e.anon_rss + e.file_rss + e.shmem_rss;
                    Some((rss, e.pid))
                        .filter(|_| self.in_scope(&t.scope, e.pid, Some(e.pid), Some(&e.comm)))
                }
                (Condition::Block(limit), Record::Block(e, complete)) => {
                    if !complete {
                        let who = (e.hdr.ts, e.hdr.tgid as i32, e.hdr.tid as i32);
                        self.issued.insert((e.dev, e.sector), who);
                        None
                    } else {
                        self.issued
                            .remove(&(e.dev, e.sector))
                            .filter(|(t0, tgid, tid)| {
                                e.hdr.ts.saturating_sub(*t0) > limit
                                    && self.in_scope(&t.scope, *tid, Some(*tgid), None)
                            })
                            .map(|(t0, pid, _)| (e.hdr.ts.saturating_sub(t0), pid))
                    }
                }
                _ => None,
            };
            if let Some((latency_ns, tid)) = hit {
                let at_ns = match rec {
                    Record::Switch(e, ..) => e.hdr.ts,
                    Record::Block(e, _) => e.hdr.ts,
                    Record::Exit(e) => e.hdr.ts,
                    Record::Oom(e) => e.hdr.ts,
                    _ => 0,
                };
                return Some(Fired {
                    trigger: t,
                    latency_ns,
                    tid,
                    at_ns,
                });
            }
        }
        if scoped {
            self.learn(rec);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{decode, tests::switch_record};

    #[test]
    fn parses_and_prints() {
        assert_eq!(
            "runq>20ms".parse::<Trigger>().unwrap(),
            Condition::Runq(20_000_000).into()
        );
        assert_eq!(
            "block>1s".parse::<Trigger>().unwrap(),
            Condition::Block(1_000_000_000).into()
        );
        assert_eq!(
            Trigger::from(Condition::Runq(20_000_000)).to_string(),
            "runq>20ms"
        );
        let scoped: Trigger = "block>50ms,comm=postgres".parse().unwrap();
        assert_eq!(scoped.to_string(), "block>50ms,comm=postgres");
        let scoped: Trigger = "exit:code=3,pid=42".parse().unwrap();
        assert_eq!(scoped.scope, Some(Scope::Pid(42)));
        assert_eq!(scoped.to_string(), "exit:code=3,pid=42");
        assert!("runq>1ms,user=root".parse::<Trigger>().is_err());
        assert!("runq>1ms,comm=a-name-longer-than-15"
            .parse::<Trigger>()
            .is_err());
        assert!("runq>1ms,pid=x".parse::<Trigger>().is_err());
        assert!("runq<20ms"
            .parse::<Trigger>()
            .unwrap_err()
            .contains("expected runq>DURATION"));
        assert!("disk>1ms".parse::<Trigger>().is_err());
        assert!("runq>soon".parse::<Trigger>().is_err());
        assert_eq!(
            "exit:signal=11".parse::<Trigger>().unwrap(),
            Condition::ExitSignal(Some(11)).into()
        );
        assert_eq!(
            "exit:code".parse::<Trigger>().unwrap(),
            Condition::ExitCode(None).into()
        );
        assert_eq!(
            Trigger::from(Condition::ExitSignal(Some(9))).to_string(),
            "exit:signal=9"
        );
        assert!("exit:status".parse::<Trigger>().is_err());
        assert_eq!(exit_status(11), (Some(11), None), "killed by SIGSEGV");
        assert_eq!(exit_status(3 << 8), (None, Some(3)), "exit(3)");
    }

    #[test]
    fn runq_fires_only_above_its_threshold() {
        let mut w = Watch::new(vec![Condition::Runq(5_000_000).into()]);
        let at = |ts: u64, prev: i32, next: i32, state: i64| {
            let mut b = switch_record(prev, next, state, &[], 0);
            b[..8].copy_from_slice(&ts.to_ne_bytes());
            b
        };
        // 7 is preempted at 1 ms (runnable), back at 3 ms: 2 ms, below the threshold.
        assert_eq!(w.observe(&decode(&at(1_000_000, 7, 8, 0)).unwrap()), None);
        assert_eq!(w.observe(&decode(&at(3_000_000, 8, 7, 1)).unwrap()), None);
        // Preempted again at 4 ms, back at 12 ms: 8 ms.
        assert_eq!(w.observe(&decode(&at(4_000_000, 7, 8, 0)).unwrap()), None);
        let fired = w
            .observe(&decode(&at(12_000_000, 8, 7, 1)).unwrap())
            .unwrap();
        assert_eq!((fired.latency_ns, fired.tid), (8_000_000, 7));
    }

    #[test]
    fn a_scoped_trigger_fires_only_for_its_process() {
        let at = |ts: u64, prev: i32, next: i32, state: i64| {
            let mut b = switch_record(prev, next, state, &[], 0);
            b[..8].copy_from_slice(&ts.to_ne_bytes());
            b
        };
        let mut w = Watch::new(vec!["runq>5ms,pid=7".parse().unwrap()]);
        // 8 (process 8) waits 10 ms: out of scope. 7 (process 7) waits 10 ms: fires.
        assert_eq!(
            w.observe(&decode(&at(1_000_000, 8, 7, 0x100)).unwrap()),
            None
        );
        assert_eq!(
            w.observe(&decode(&at(11_000_000, 7, 8, 0x100)).unwrap()),
            None
        );
        let fired = w
            .observe(&decode(&at(21_000_000, 8, 7, 1)).unwrap())
            .expect("7 waited 10 ms while preempted");
        assert_eq!((fired.tid, fired.latency_ns), (7, 10_000_000));
        assert_eq!(fired.reason(), "trigger runq>5ms,pid=7: 10ms for tid 7");
    }
}
