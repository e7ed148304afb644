//! Reading an exported capture (`flightrec export`, a tar file) without unpacking it by hand.
//!
//! Bundles come from anywhere, so every entry is checked before a byte is written: only regular
//! files and directories, only the names a capture has (`manifest.json`,
//! `segments/<8 digits>/<name>.parquet|segment.json`), no absolute paths or `..`, sizes within
//! limits. Accepted files are written with `create_new` into a fresh private directory that is
//! removed when the capture is dropped.
use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read},
    os::unix::fs::OpenOptionsExt,
    path::{Component, Path},
};

/// Largest file accepted from a bundle.
pub const MAX_MEMBER_BYTES: u64 = 4 << 30;
/// Largest total accepted from a bundle.
pub const MAX_TOTAL_BYTES: u64 = 32 << 30;
/// Most entries accepted.
pub const MAX_ENTRIES: usize = 200_000;

/// Why a bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Not readable as tar.
    #[error("{path} is not a valid flightrec bundle: {reason}")]
    Invalid {
        /// The bundle.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// An entry that a capture never has.
    #[error("{path}: refusing entry {entry:?}: {reason}")]
    Refused {
        /// The bundle.
        path: String,
        /// The entry name.
        entry: String,
        /// Why.
        reason: String,
    },
    /// Writing the extracted files failed.
    #[error("cannot unpack {path}: {cause}")]
    Io {
        /// The bundle.
        path: String,
        /// The cause.
        cause: io::Error,
    },
}

fn valid_name(parts: &[&str]) -> bool {
    let file_ok = |f: &str| {
        f == "segment.json"
            || f.strip_suffix(".parquet").is_some_and(|t| {
                !t.is_empty() && t.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            })
    };
    match parts {
        ["manifest.json"] => true,
        ["segments"] => true,
        ["segments", id] => id.len() == 8 && id.bytes().all(|b| b.is_ascii_digit()),
        ["segments", id, f] => {
            id.len() == 8 && id.bytes().all(|b| b.is_ascii_digit()) && file_ok(f)
        }
        _ => false,
    }
}

/// Unpacks the bundle at `path` into `dest` (an empty directory).
pub fn unpack(path: &Path, dest: &Path) -> Result<(), BundleError> {
    let shown = path.display().to_string();
    let invalid = |e: &dyn std::fmt::Display| BundleError::Invalid {
        path: shown.clone(),
        reason: e.to_string(),
    };
    let io_err = |cause| BundleError::Io {
        path: shown.clone(),
        cause,
    };
    let file = File::open(path).map_err(io_err)?;
    let mut archive = tar::Archive::new(file);
    let (mut total, mut count) = (0u64, 0usize);
    for entry in archive.entries().map_err(|e| invalid(&e))? {
        let mut entry = entry.map_err(|e| invalid(&e))?;
        count += 1;
        let raw = entry.path().map_err(|e| invalid(&e))?.into_owned();
        let name = raw.display().to_string();
        let refuse = |reason: &str| BundleError::Refused {
            path: shown.clone(),
            entry: name.clone(),
            reason: reason.to_string(),
        };
        if count > MAX_ENTRIES {
            return Err(refuse("too many entries"));
        }
        let mut parts = Vec::new();
        for c in raw.components() {
            match c {
                Component::Normal(p) => {
                    parts.push(p.to_str().ok_or_else(|| refuse("name is not UTF-8"))?)
                }
                Component::CurDir => {}
                Component::ParentDir => return Err(refuse("'..' in the path")),
                Component::RootDir | Component::Prefix(_) => return Err(refuse("absolute path")),
            }
        }
        if !valid_name(&parts) {
            return Err(refuse("not a file of a flightrec capture"));
        }
        let kind = entry.header().entry_type();
        let target = dest.join(parts.join("/"));
        match kind {
            tar::EntryType::Directory => {
                fs::create_dir_all(&target).map_err(io_err)?;
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            _ => {
                return Err(refuse(
                    "only regular files are allowed (no links, devices or fifos)",
                ))
            }
        }
        let size = entry.header().size().map_err(|e| invalid(&e))?;
        if size > MAX_MEMBER_BYTES {
            return Err(refuse("declared size too large"));
        }
        total += size;
        if total > MAX_TOTAL_BYTES {
            return Err(refuse("bundle too large"));
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_err)?;
        }
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&target)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => refuse("duplicate entry"),
                _ => io_err(e),
            })?;
        let copied = io::copy(&mut (&mut entry).take(size), &mut out).map_err(|e| invalid(&e))?;
        if copied != size {
            return Err(invalid(&format!(
                "{name} is truncated ({copied} of {size} bytes)"
            )));
        }
    }
    if count == 0 {
        return Err(invalid(&"empty archive"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_capture_names_pass() {
        for ok in [
            &["manifest.json"][..],
            &["segments", "00000001", "sched_switch.parquet"],
            &["segments", "00000001", "segment.json"],
            &["segments"],
        ] {
            assert!(valid_name(ok), "{ok:?}");
        }
        for bad in [
            &["etc", "passwd"][..],
            &["segments", "1", "x.parquet"],
            &["segments", "00000001", "evil.sh"],
            &["segments", "00000001", "a", "b.parquet"],
            &["manifest.json.bak"],
            &[],
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
