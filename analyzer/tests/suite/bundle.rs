//! Exported bundles: a valid one reads like its directory; hostile or broken ones are refused with
//! one clear line, and nothing is written outside the private directory.
use std::{fs, io::Write, path::Path};

use super::*;

pub(super) fn tar_of_dir(dir: &Path, out: &Path) {
    let mut b = tar::Builder::new(fs::File::create(out).unwrap());
    b.append_path_with_name(dir.join("manifest.json"), "manifest.json")
        .unwrap();
    b.append_dir_all("segments", dir.join("segments")).unwrap();
    b.finish().unwrap();
}

/// A tar with one raw entry whose header we control completely.
fn raw_tar(
    out: &Path,
    name: &[u8],
    kind: tar::EntryType,
    data: &[u8],
    declared: Option<u64>,
    link: Option<&str>,
) {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(declared.unwrap_or(data.len() as u64));
    if let Some(l) = link {
        h.set_link_name(l).unwrap();
    }
    h.set_cksum();
    let mut f = fs::File::create(out).unwrap();
    f.write_all(h.as_bytes()).unwrap();
    f.write_all(data).unwrap();
    let pad = (512 - data.len() % 512) % 512;
    f.write_all(&vec![0; pad + 1024]).unwrap();
}

fn refused(path: &Path, want: &str) {
    let (success, _, stderr) = analyze(&["summary", path.to_str().unwrap()]);
    assert!(!success, "{} should be refused", path.display());
    assert!(stderr.contains(want), "want {want:?} in {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn a_bundle_reads_exactly_like_its_directory() {
    let f = fixture("basic");
    let tmp = tempfile::tempdir().unwrap();
    let tar = tmp.path().join("incident.tar");
    tar_of_dir(&f.dir, &tar);
    let pid = f.pid.to_string();
    for args in [
        vec!["summary"],
        vec!["offcpu", "--folded", "--pid", &pid],
        vec!["latency", "--kind", "block", "--json"],
        vec!["profile", "--folded"],
    ] {
        let mut on_dir = args.clone();
        on_dir.insert(1, f.dir.to_str().unwrap());
        let mut on_tar = args.clone();
        on_tar.insert(1, tar.to_str().unwrap());
        assert_eq!(ok(&on_dir), ok(&on_tar), "{args:?}");
    }
}

#[test]
fn hostile_bundles_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n);
    let reg = tar::EntryType::Regular;
    raw_tar(
        &p("abs.tar"),
        b"/etc/flightrec-pwned",
        reg,
        b"x",
        None,
        None,
    );
    refused(&p("abs.tar"), "absolute path");
    raw_tar(
        &p("dotdot.tar"),
        b"segments/../../flightrec-pwned",
        reg,
        b"x",
        None,
        None,
    );
    refused(&p("dotdot.tar"), "'..' in the path");
    raw_tar(
        &p("symlink.tar"),
        b"manifest.json",
        tar::EntryType::Symlink,
        b"",
        None,
        Some("/etc/passwd"),
    );
    refused(&p("symlink.tar"), "only regular files");
    raw_tar(
        &p("hardlink.tar"),
        b"manifest.json",
        tar::EntryType::Link,
        b"",
        None,
        Some("/etc/passwd"),
    );
    refused(&p("hardlink.tar"), "only regular files");
    raw_tar(
        &p("device.tar"),
        b"manifest.json",
        tar::EntryType::Char,
        b"",
        None,
        None,
    );
    refused(&p("device.tar"), "only regular files");
    raw_tar(
        &p("foreign.tar"),
        b"segments/00000001/run.sh",
        reg,
        b"#!/bin/sh",
        None,
        None,
    );
    refused(&p("foreign.tar"), "not a file of a flightrec capture");
    raw_tar(
        &p("huge.tar"),
        b"segments/00000001/profile.parquet",
        reg,
        b"PAR1",
        Some(1 << 40),
        None,
    );
    refused(&p("huge.tar"), "declared size too large");
    fs::write(
        p("garbage.tar"),
        b"this is not a tar file at all, just some bytes",
    )
    .unwrap();
    refused(&p("garbage.tar"), "is not a valid flightrec bundle");
    fs::write(p("empty.tar"), vec![0u8; 1024]).unwrap();
    refused(&p("empty.tar"), "empty archive");
    assert!(!Path::new("/etc/flightrec-pwned").exists());
    assert!(!tmp
        .path()
        .parent()
        .unwrap()
        .join("flightrec-pwned")
        .exists());
}

#[test]
fn truncated_and_partial_bundles_are_refused() {
    let f = fixture("basic");
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full.tar");
    tar_of_dir(&f.dir, &full);
    let bytes = fs::read(&full).unwrap();
    let cut = tmp.path().join("cut.tar");
    fs::write(&cut, &bytes[..bytes.len() / 2 + 100]).unwrap();
    let (success, _, stderr) = analyze(&["summary", cut.to_str().unwrap()]);
    assert!(!success);
    assert!(
        stderr.contains("is not a valid flightrec bundle") || stderr.contains("truncated"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // Only segments, no manifest.
    let nomani = tmp.path().join("nomanifest.tar");
    let mut b = tar::Builder::new(fs::File::create(&nomani).unwrap());
    b.append_dir_all("segments", f.dir.join("segments"))
        .unwrap();
    b.finish().unwrap();
    drop(b);
    refused(&nomani, "is not a flightrec capture");
}
