//! Facts about the recording host that go into the manifest.
use std::fs;

use flightrec_schemas::ClockAnchor;

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and out pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// CLOCK_MONOTONIC now, in ns: the clock of `bpf_ktime_get_ns()`.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC) as u64
}

/// CPU time of this process (all threads, user + system), ns.
pub fn process_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID) as u64
}

/// Monotonic and wall clocks read back to back; of three tries, the pair read closest together.
pub fn clock_anchor() -> ClockAnchor {
    (0..3)
        .map(|_| {
            let a = monotonic_ns();
            let r = clock_ns(libc::CLOCK_REALTIME);
            let b = monotonic_ns();
            (
                b - a,
                ClockAnchor {
                    monotonic_ns: a + (b - a) / 2,
                    realtime_ns: r,
                },
            )
        })
        .min_by_key(|(gap, _)| *gap)
        .map(|(_, anchor)| anchor)
        .expect("three tries")
}

fn read_trim(path: &str) -> String {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Host name.
pub fn hostname() -> String {
    read_trim("/proc/sys/kernel/hostname")
}

/// Kernel release (`uname -r`).
pub fn kernel_release() -> String {
    read_trim("/proc/sys/kernel/osrelease")
}

/// (major, minor) of a kernel release such as `6.18.0-1-amd64`; (0, 0) when it has no numbers.
pub fn release_version(release: &str) -> (u32, u32) {
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// Boot id: monotonic timestamps compare only within one boot.
pub fn boot_id() -> String {
    read_trim("/proc/sys/kernel/random/boot_id")
}

/// Block device names by `major:minor`.
pub fn block_devices() -> std::collections::BTreeMap<String, String> {
    fs::read_dir("/sys/class/block")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let dev = fs::read_to_string(e.path().join("dev")).ok()?;
            Some((
                dev.trim().to_string(),
                e.file_name().to_string_lossy().to_string(),
            ))
        })
        .collect()
}

/// Online CPUs.
pub fn cpus() -> u32 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_is_consistent_with_the_wall_clock() {
        let a = clock_anchor();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        let est = a.to_realtime_ns(monotonic_ns());
        assert!(
            (now - est).abs() < 1_000_000_000,
            "within a second: {now} vs {est}"
        );
        assert_eq!(boot_id().len(), 36);
        if std::path::Path::new("/sys/class/block").is_dir() {
            let devs = block_devices();
            assert!(devs.keys().all(|k| k.contains(':')), "{devs:?}");
        }
    }
}
