//! Freezing the window: `snapshots/<name>/` gets hard links to every finished segment's files and a
//! manifest listing them. No data is copied, recording goes on, and the rolling window, which only
//! deletes under `segments/`, never touches frozen data (the links keep the files alive).
use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use flightrec_schemas::{Frozen, Manifest, SEGMENTS_DIR};

use crate::segment::{private_dir, segment_path, write_manifest};

/// Directory of the snapshots of a capture.
pub const SNAPSHOTS_DIR: &str = "snapshots";

/// Checks a snapshot name: letters, digits, `.`, `_`, `-`; not starting with `.`.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !ok {
        bail!("snapshot name {name:?} must be 1-128 letters, digits, '.', '_' or '-', not starting with '.'");
    }
    Ok(())
}

/// A default name from the wall clock.
pub fn default_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
    )
}

/// Hard-links the segments of `manifest` into `capture/snapshots/<name>/`, recording why.
pub fn freeze(
    capture: &Path,
    manifest: &Manifest,
    name: &str,
    reason: &str,
    cause_ns: u64,
) -> Result<PathBuf> {
    check_name(name)?;
    let root = capture.join(SNAPSHOTS_DIR);
    crate::segment::check_owned_dir(&root)?;
    private_dir(&root)?;
    let dst = root.join(name);
    if dst.exists() {
        bail!("snapshot {name} exists already");
    }
    // Assemble under a hidden name, rename when complete, like segments.
    let tmp = root.join(format!(".{name}.tmp"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    private_dir(&tmp.join(SEGMENTS_DIR))?;
    for seg in &manifest.segments {
        let from = segment_path(capture, seg.id);
        let to = tmp.join(SEGMENTS_DIR).join(seg.dir_name());
        private_dir(&to)?;
        for f in fs::read_dir(&from).with_context(|| format!("reading {}", from.display()))? {
            let f = f?;
            fs::hard_link(f.path(), to.join(f.file_name()))
                .with_context(|| format!("linking {}", f.path().display()))?;
        }
    }
    let mut frozen = manifest.clone();
    frozen.frozen = Some(Frozen {
        name: name.to_string(),
        reason: reason.to_string(),
        cause_ns,
        frozen_ns: crate::host::monotonic_ns(),
    });
    write_manifest(&tmp, &frozen)?;
    fs::rename(&tmp, &dst)?;
    Ok(dst)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use flightrec_schemas::{ClockAnchor, RecordConfig, SegmentMeta, SEGMENT_META_FILE};

    use super::*;

    fn manifest(segments: Vec<SegmentMeta>) -> Manifest {
        Manifest {
            format_version: flightrec_schemas::FORMAT_VERSION,
            host: "h".into(),
            kernel_release: "k".into(),
            arch: "x86_64".into(),
            boot_id: "b".into(),
            cpus: 1,
            recorder_version: "0".into(),
            clock: ClockAnchor {
                monotonic_ns: 0,
                realtime_ns: 0,
            },
            config: RecordConfig {
                events: vec![],
                freq_hz: 49,
                segment_ns: 1,
                window_ns: 1,
                max_size_bytes: 1,
                ringbuf_bytes: 1,
                syscall_pid: None,
                syscall_comm: None,
                redacted: false,
                waker_stacks: false,
                raw_tracepoints: Vec::new(),
            },
            devices: Default::default(),
            segments,
            frozen: None,
            unwritten: Vec::new(),
        }
    }

    #[test]
    fn frozen_files_are_links_that_outlive_eviction() {
        let cap = tempfile::tempdir().unwrap();
        let meta = SegmentMeta {
            id: 3,
            ..Default::default()
        };
        let seg = segment_path(cap.path(), 3);
        private_dir(&seg).unwrap();
        fs::write(seg.join("sched_switch.parquet"), b"data").unwrap();
        fs::write(
            seg.join(SEGMENT_META_FILE),
            serde_json::to_vec(&meta).unwrap(),
        )
        .unwrap();
        let m = manifest(vec![meta]);
        let snap = freeze(cap.path(), &m, "incident", "request", 42).unwrap();
        let frozen = snap
            .join(SEGMENTS_DIR)
            .join("00000003")
            .join("sched_switch.parquet");
        assert_eq!(
            fs::metadata(&frozen).unwrap().nlink(),
            2,
            "a hard link, not a copy"
        );
        // The window evicts the segment: the snapshot keeps its data.
        fs::remove_dir_all(&seg).unwrap();
        assert_eq!(fs::read(&frozen).unwrap(), b"data");
        let read = Manifest::read(&snap.join("manifest.json")).unwrap();
        assert_eq!(read.frozen.unwrap().reason, "request");
        assert!(freeze(cap.path(), &m, "incident", "again", 0)
            .unwrap_err()
            .to_string()
            .contains("exists already"));
        assert!(freeze(cap.path(), &m, "../escape", "x", 0).is_err());
    }

    #[test]
    fn names_are_checked() {
        for good in ["incident-42", "a.b_c", "runq-20261126T010203.123Z"] {
            check_name(good).unwrap();
        }
        for bad in ["", "../x", "a/b", ".hidden", "sp ace", &"x".repeat(200)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
