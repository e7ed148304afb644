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

/// A thread's stretch on one CPU, from its switch-in to its switch-out (monotonic ns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice {
    /// The thread.
    pub tid: i32,
    /// The CPU it ran on.
    pub cpu: u16,
    /// Switch-in.
    pub start: u64,
    /// Switch-out.
    pub end: u64,
}

/// The on-CPU slices of `threads`, from `sched_switch` rows `(ts, cpu, prev_tid, next_tid)` in
/// any order.
pub fn on_cpu_slices(
    mut switches: Vec<(u64, u16, i32, i32)>,
    threads: &std::collections::HashSet<i32>,
) -> Vec<Slice> {
    switches.sort_unstable();
    let mut on = std::collections::HashMap::new();
    let mut out = Vec::new();
    for (ts, cpu, prev, next) in switches {
        if let Some((start, cpu)) = on.remove(&prev) {
            out.push(Slice {
                tid: prev,
                cpu,
                start,
                end: ts,
            });
        }
        if threads.contains(&next) {
            on.insert(next, (ts, cpu));
        }
    }
    out
}

/// What periodic per-CPU sampling can give for these slices: the cpu-clock timer of a CPU ticks
/// every `period` ns, so a slice of length L holds floor(L / period) or ceil(L / period) ticks.
/// Returns (sum of floors, sum of ceilings).
pub fn sample_bounds(slices: &[Slice], period: u64) -> (u64, u64) {
    slices.iter().fold((0, 0), |(lo, hi), s| {
        let l = s.end - s.start;
        (lo + l / period, hi + l.div_ceil(period))
    })
}

/// The sample `(ts, cpu, tid)` lies in one of its thread's slices on that CPU.
pub fn in_a_slice(slices: &[Slice], ts: u64, cpu: u16, tid: i32) -> bool {
    slices
        .iter()
        .any(|s| s.tid == tid && s.cpu == cpu && s.start <= ts && ts < s.end)
}
