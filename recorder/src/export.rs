//! `flightrec export`: one tar file holding a capture's manifest and finished segments (the
//! Parquet inside is already compressed). Entries have fixed modes and times, so the same capture
//! always exports to the same bytes.
use std::{
    fs::{self, File},
    io::{BufWriter, Write},
    path::Path,
};

use anyhow::{bail, Context, Result};
use flightrec_schemas::{MANIFEST_FILE, SEGMENTS_DIR, SEGMENT_META_FILE};

use crate::segment::finished_segments;

fn append(tar: &mut tar::Builder<impl Write>, name: &str, path: &Path) -> Result<()> {
    let mut f = File::open(path).with_context(|| {
        format!("{} disappeared during export (evicted by a running recorder? export a snapshot instead)", path.display())
    })?;
    let mut h = tar::Header::new_gnu();
    h.set_size(f.metadata()?.len());
    h.set_mode(0o600);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    tar.append_data(&mut h, name, &mut f)?;
    Ok(())
}

/// A recorder killed while recording left its open segment in a journal: salvage it so the export
/// ships it too. A journal that cannot be salvaged is reported, and the finished segments go.
fn salvage_before_export(capture: &Path) {
    match crate::journal::salvage_stopped(capture) {
        Ok(Some(s)) => s.report(capture, false),
        Ok(None) => {}
        Err(e) => eprintln!(
            "flightrec: cannot salvage the journal of {}: {e:#}; exporting the finished segments",
            capture.display()
        ),
    }
}

/// Writes `capture` (a capture or snapshot directory) into the tar file `out`.
pub fn export(capture: &Path, out: &Path) -> Result<u64> {
    if !capture.join(MANIFEST_FILE).is_file() {
        bail!(
            "{} is not a flightrec capture or snapshot (no {MANIFEST_FILE})",
            capture.display()
        );
    }
    salvage_before_export(capture);
    let segments = finished_segments(capture);
    if segments.is_empty() {
        bail!("{} holds no finished segment to export", capture.display());
    }
    let tmp = out.with_extension("tar.tmp");
    let file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut tar = tar::Builder::new(BufWriter::new(file));
    append(&mut tar, MANIFEST_FILE, &capture.join(MANIFEST_FILE))?;
    for seg in &segments {
        let dir = capture.join(SEGMENTS_DIR).join(seg.dir_name());
        let mut files: Vec<_> = fs::read_dir(&dir)?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        files.sort();
        // segment.json last, as on disk: a reader treats a segment without it as unfinished.
        files.retain(|f| f != SEGMENT_META_FILE);
        files.push(SEGMENT_META_FILE.into());
        for f in files {
            let name = format!("{SEGMENTS_DIR}/{}/{}", seg.dir_name(), f.to_string_lossy());
            append(&mut tar, &name, &dir.join(&f))?;
        }
    }
    let mut w = tar.into_inner()?;
    w.flush()?;
    w.into_inner()?.sync_all()?;
    fs::rename(&tmp, out).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(fs::metadata(out)?.len())
}

/// `flightrec export --lake DIR CAPTURE...`: each capture (directory, snapshot or bundle) into the
/// lake tree at `lake` (`schemas/lake.md`). A stopped recorder's journal is salvaged first, as for
/// a tar export.
pub fn export_lake(captures: &[std::path::PathBuf], lake: &Path) -> Result<()> {
    use flightrec_analyzer::{capture::Capture, lake::write};
    fs::create_dir_all(lake).with_context(|| format!("cannot create {}", lake.display()))?;
    for path in captures {
        // A bundle has no journal; a directory may.
        if path.join(MANIFEST_FILE).is_file() {
            salvage_before_export(path);
        }
        let cap = Capture::open(path)?;
        let done = write::export(&cap, lake)
            .with_context(|| format!("cannot export {} into {}", path.display(), lake.display()))?;
        eprintln!(
            "flightrec: {} -> {} as capture {} ({} files, {} events)",
            path.display(),
            lake.display(),
            done.capture,
            done.files,
            done.rows
        );
    }
    Ok(())
}
