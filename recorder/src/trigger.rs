//! Automatic freezes: conditions watched in the live event stream. When one is met, the window is
//! frozen `--post` later (so the snapshot holds what came before and after), named after the
//! trigger and the time; a cool-down keeps a burst of matches from becoming a burst of freezes.
use std::{collections::HashMap, fmt, str::FromStr, time::Duration};

use flightrec_schemas::task_state;

use crate::decode::Record;

/// A condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// A run-queue latency (wake-up or preemption → switch-in) above this many ns.
    Runq(u64),
    /// A block request (issue → completion) slower than this many ns.
    Block(u64),
    /// A process killed by a signal (this one, or any).
    ExitSignal(Option<i32>),
    /// A process exiting with a non-zero code (this one, or any).
    ExitCode(Option<i32>),
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
        match self {
            Trigger::Runq(_) => "runq",
            Trigger::Block(_) => "block",
            Trigger::ExitSignal(_) | Trigger::ExitCode(_) => "exit",
        }
    }

    /// True for triggers on process exits (they need the `process` source).
    pub fn needs_process_events(&self) -> bool {
        matches!(self, Trigger::ExitSignal(_) | Trigger::ExitCode(_))
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, ns) = match self {
            Trigger::Runq(ns) => ("runq", ns),
            Trigger::Block(ns) => ("block", ns),
            Trigger::ExitSignal(s) => {
                return write!(
                    f,
                    "exit:signal{}",
                    s.map(|s| format!("={s}")).unwrap_or_default()
                )
            }
            Trigger::ExitCode(c) => {
                return write!(
                    f,
                    "exit:code{}",
                    c.map(|c| format!("={c}")).unwrap_or_default()
                )
            }
        };
        write!(
            f,
            "{name}>{}",
            humantime::format_duration(Duration::from_nanos(*ns))
        )
    }
}

impl FromStr for Trigger {
    type Err = String;

    fn from_str(s: &str) -> Result<Trigger, String> {
        let usage = || {
            format!(
                "trigger {s:?}: expected runq>DURATION, block>DURATION, exit:signal[=N] or exit:code[=N] (e.g. runq>20ms)"
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
                "signal" => Ok(Trigger::ExitSignal(n)),
                "code" => Ok(Trigger::ExitCode(n)),
                _ => Err(usage()),
            };
        }
        let (kind, value) = s.split_once('>').ok_or_else(usage)?;
        let d = humantime::parse_duration(value.trim()).map_err(|e| format!("{}: {e}", usage()))?;
        let ns = d.as_nanos() as u64;
        match kind.trim() {
            "runq" => Ok(Trigger::Runq(ns)),
            "block" => Ok(Trigger::Block(ns)),
            _ => Err(usage()),
        }
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

/// Live state of the configured triggers.
#[derive(Default)]
pub struct Watch {
    triggers: Vec<Trigger>,
    enqueued: HashMap<i32, u64>,
    issued: HashMap<(u32, u64), (u64, i32)>,
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

    /// Looks at one record; returns the first trigger it satisfies.
    pub fn observe(&mut self, rec: &Record<'_>) -> Option<Fired> {
        for i in 0..self.triggers.len() {
            let t = self.triggers[i];
            let hit = match (t, rec) {
                (Trigger::Runq(_), Record::Wakeup(e, _)) => {
                    self.enqueued.insert(e.pid, e.hdr.ts);
                    None
                }
                (Trigger::Runq(limit), Record::Switch(e, ..)) => {
                    if task_state::is_runnable(e.prev_state) && e.prev_pid != 0 {
                        self.enqueued.insert(e.prev_pid, e.hdr.ts);
                    }
                    self.enqueued
                        .remove(&e.next_pid)
                        .map(|t0| (e.hdr.ts.saturating_sub(t0), e.next_pid))
                        .filter(|(lat, _)| *lat > limit)
                }
                (Trigger::ExitSignal(want), Record::Exit(e))
                    if e.group_dead != 0 && e.exit_code != flightrec_common::EXIT_CODE_UNKNOWN =>
                {
                    let (sig, _) = exit_status(e.exit_code);
                    sig.filter(|s| want.is_none_or(|w| w == *s))
                        .map(|s| (s as u64, e.hdr.tgid as i32))
                }
                (Trigger::ExitCode(want), Record::Exit(e))
                    if e.group_dead != 0 && e.exit_code != flightrec_common::EXIT_CODE_UNKNOWN =>
                {
                    let (_, code) = exit_status(e.exit_code);
                    code.filter(|c| *c != 0 && want.is_none_or(|w| w == *c))
                        .map(|c| (c as u64, e.hdr.tgid as i32))
                }
                (Trigger::Block(limit), Record::Block(e, complete)) => {
                    if !complete {
                        self.issued
                            .insert((e.dev, e.sector), (e.hdr.ts, e.hdr.tgid as i32));
                        None
                    } else {
                        self.issued
                            .remove(&(e.dev, e.sector))
                            .map(|(t0, pid)| (e.hdr.ts.saturating_sub(t0), pid))
                            .filter(|(lat, _)| *lat > limit)
                    }
                }
                _ => None,
            };
            if let Some((latency_ns, tid)) = hit {
                let at_ns = match rec {
                    Record::Switch(e, ..) => e.hdr.ts,
                    Record::Block(e, _) => e.hdr.ts,
                    Record::Exit(e) => e.hdr.ts,
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
            Trigger::Runq(20_000_000)
        );
        assert_eq!(
            "block>1s".parse::<Trigger>().unwrap(),
            Trigger::Block(1_000_000_000)
        );
        assert_eq!(Trigger::Runq(20_000_000).to_string(), "runq>20ms");
        assert!("runq<20ms"
            .parse::<Trigger>()
            .unwrap_err()
            .contains("expected runq>DURATION"));
        assert!("disk>1ms".parse::<Trigger>().is_err());
        assert!("runq>soon".parse::<Trigger>().is_err());
        assert_eq!(
            "exit:signal=11".parse::<Trigger>().unwrap(),
            Trigger::ExitSignal(Some(11))
        );
        assert_eq!(
            "exit:code".parse::<Trigger>().unwrap(),
            Trigger::ExitCode(None)
        );
        assert_eq!(Trigger::ExitSignal(Some(9)).to_string(), "exit:signal=9");
        assert!("exit:status".parse::<Trigger>().is_err());
        assert_eq!(exit_status(11), (Some(11), None), "killed by SIGSEGV");
        assert_eq!(exit_status(3 << 8), (None, Some(3)), "exit(3)");
    }

    #[test]
    fn runq_fires_only_above_its_threshold() {
        let mut w = Watch::new(vec![Trigger::Runq(5_000_000)]);
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
}
