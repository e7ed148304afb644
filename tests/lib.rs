//! End-to-end tests of flightrec live in `e2e/` (one test binary); `workload.rs` is the known
//! workload they record. This library holds what tests in other packages share with them.

/// True when running in CI: `CI` is set and neither empty, `0` nor `false` (as GitHub, GitLab and
/// most CI systems set it; `.ci/run` sets it too).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Says why a test that needs the real kernel (root, tracefs, BTF) does not run here. In CI that
/// is a failure: a CI machine that lost root must never pass green.
pub fn skip(why: &str) {
    assert!(
        !in_ci(),
        "{why}, and CI is set: a test that cannot run here fails instead of skipping"
    );
    eprintln!("skipped: {why}");
}

/// `perf record` of context switches, quiet and without copying every binary it saw into
/// ~/.debug (gigabytes over many runs); the caller adds its options and command.
pub fn perf_record_switches() -> std::process::Command {
    let mut c = std::process::Command::new("perf");
    c.args([
        "record",
        "-q",
        "--no-buildid-cache",
        "-e",
        "sched:sched_switch",
    ]);
    c
}

/// A thread's stretch on one CPU, from its switch-in to its switch-out (monotonic ns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice {
    /// The thread.
    pub tid: i32,
    /// The CPU it ran on.
    pub cpu: u16,
    /// Switch-in; when `whole` is false, the CPU's switch before the unreported switch-in (the
    /// earliest it can have been).
    pub start: u64,
    /// Switch-out.
    pub end: u64,
    /// False when the kernel never reported the switch-in: the CPU's chain of switches breaks
    /// there (the previous switch on the CPU handed it to another task). Seen on this machine: the
    /// kernel never emits `sched_switch` for a thread of PID 1 (the VM's agent) leaving a CPU, so
    /// whatever runs after it comes in unannounced. The slice is then a bound, not a measurement.
    pub whole: bool,
}

/// The on-CPU slices of `threads`, from `sched_switch` rows `(ts, cpu, prev_tid, next_tid)` in
/// any order. Each CPU's switches are walked in their own order (one clock; across CPUs,
/// timestamps of a migration's switch-out and switch-in need not be ordered). A switch-out whose
/// switch-in is missing from the CPU's chain gives a slice that is not `whole`.
pub fn on_cpu_slices(
    mut switches: Vec<(u64, u16, i32, i32)>,
    threads: &std::collections::HashSet<i32>,
) -> Vec<Slice> {
    switches.sort_unstable_by_key(|s| (s.1, s.0));
    let mut out = Vec::new();
    // The CPU, and who its last switch handed it to, when.
    let mut running: Option<(u16, i32, u64)> = None;
    for (ts, cpu, prev, next) in switches {
        if let Some((_, tid, since)) = running.filter(|r| r.0 == cpu) {
            if threads.contains(&prev) {
                out.push(Slice {
                    tid: prev,
                    cpu,
                    start: since,
                    end: ts,
                    whole: tid == prev,
                });
            }
        }
        running = Some((cpu, next, ts));
    }
    out
}

/// What periodic per-CPU sampling can give for these slices: the cpu-clock timer of a CPU ticks
/// every `period` ns, so a slice of length L holds floor(L / period) or ceil(L / period) ticks
/// (a slice that is not whole: from none up to the ceiling of its bound).
/// Returns (sum of floors, sum of ceilings).
pub fn sample_bounds(slices: &[Slice], period: u64) -> (u64, u64) {
    slices.iter().fold((0, 0), |(lo, hi), s| {
        let l = s.end - s.start;
        let floor = if s.whole { l / period } else { 0 };
        (lo + floor, hi + l.div_ceil(period))
    })
}

/// The sample `(ts, cpu, tid)` lies in one of its thread's slices on that CPU.
pub fn in_a_slice(slices: &[Slice], ts: u64, cpu: u16, tid: i32) -> bool {
    slices
        .iter()
        .any(|s| s.tid == tid && s.cpu == cpu && s.start <= ts && ts < s.end)
}
