//! Broken and hostile captures: no panic. What cannot be a capture is one clear error line and a
//! non-zero exit; a damaged file costs only itself: the analyses run on the rest and state the
//! damage with the losses, and `--strict` (and `verify`) refuse with one line.
use std::{fs, path::Path};

use super::*;

fn broken_copy() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cap");
    copy_dir(&fixture("basic").dir, &dir);
    (tmp, dir)
}

/// The capture's segment directories, oldest first.
fn segment_dirs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir.join("segments"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

fn first_segment(dir: &Path) -> std::path::PathBuf {
    segment_dirs(dir)[0].clone()
}

fn fails_with(dir: &Path, args: &[&str], want: &str) {
    for cmd in [
        &["summary"][..],
        &["offcpu"],
        &["latency", "--kind", "runq"],
        &["profile", "--folded"],
    ] {
        let mut a: Vec<&str> = cmd.to_vec();
        a.insert(1, dir.to_str().unwrap());
        a.extend_from_slice(args);
        let (success, _, stderr) = analyze(&a);
        assert!(!success, "{a:?} should fail");
        assert!(stderr.contains(want), "{a:?}: want {want:?} in {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.starts_with("flightrec-analyze: "), "{stderr}");
    }
}

/// Every analysis runs on what is readable and states a table of segment 0 it needed (one of
/// sched_switch, profile and tasks, damaged by the callers) as damaged, in text and JSON; with
/// `--strict` each fails with one line naming `want`.
fn damaged_but_analyzed(dir: &Path, want: &str) {
    for cmd in [
        &["summary"][..],
        &["offcpu"],
        &["latency", "--kind", "runq"],
        &["profile", "--folded"],
    ] {
        let mut a: Vec<&str> = cmd.to_vec();
        a.insert(1, dir.to_str().unwrap());
        let (success, stdout, stderr) = analyze(&a);
        assert!(success, "{a:?}: {stderr}");
        let text = format!("{stdout}{stderr}");
        let named = ["sched_switch", "profile", "tasks"]
            .iter()
            .any(|t| text.contains(&format!("DAMAGED segment 0 {t} ")));
        assert!(
            named,
            "{a:?}: no damaged table of segment 0 named in {text}"
        );
        assert!(!text.contains("panicked"), "{text}");
    }
    let (success, stdout, _) = analyze(&["offcpu", dir.to_str().unwrap(), "--json"]);
    assert!(success);
    let j: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let damaged = j["lost"]["damaged"].as_array().unwrap();
    assert!(
        damaged.iter().any(|d| d["segment"] == 0
            && d["table"] == "sched_switch"
            && d["rows"].as_u64() > Some(0)),
        "{damaged:?}"
    );
    fails_with(dir, &["--strict"], want);
    let (success, _, stderr) = analyze(&["verify", dir.to_str().unwrap()]);
    assert!(
        !success && stderr.contains("is damaged"),
        "verify: {stderr}"
    );
}

#[test]
fn not_a_capture() {
    let tmp = tempfile::tempdir().unwrap();
    fails_with(tmp.path(), &[], "is not a flightrec capture");
    fails_with(
        &tmp.path().join("missing"),
        &[],
        "is not a flightrec capture",
    );
}

#[test]
fn empty_capture() {
    let (_t, dir) = broken_copy();
    fs::remove_dir_all(dir.join("segments")).unwrap();
    fs::create_dir(dir.join("segments")).unwrap();
    fails_with(&dir, &[], "holds no finished segment");
}

#[test]
fn future_format_version() {
    let (_t, dir) = broken_copy();
    let p = dir.join("manifest.json");
    let text = fs::read_to_string(&p).unwrap().replacen(
        "\"format_version\": 1",
        "\"format_version\": 7",
        1,
    );
    fs::write(&p, text).unwrap();
    fails_with(&dir, &[], "format version 7");
}

#[test]
fn garbage_manifest() {
    let (_t, dir) = broken_copy();
    fs::write(dir.join("manifest.json"), b"\x00\xffnot json").unwrap();
    fails_with(&dir, &[], "is not a valid flightrec file");
}

#[test]
fn truncated_parquet() {
    let (_t, dir) = broken_copy();
    for t in ["sched_switch", "profile", "tasks"] {
        let p = first_segment(&dir).join(format!("{t}.parquet"));
        let len = fs::metadata(&p).unwrap().len();
        let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(len / 2).unwrap();
    }
    damaged_but_analyzed(&dir, "is not a readable Parquet file");
}

#[test]
fn missing_table() {
    let (_t, dir) = broken_copy();
    for t in ["sched_switch", "profile", "tasks"] {
        fs::remove_file(first_segment(&dir).join(format!("{t}.parquet"))).unwrap();
    }
    damaged_but_analyzed(&dir, "is missing: the segment is incomplete");
}

#[test]
fn wrong_schema() {
    // A valid Parquet file of another table where sched_switch should be.
    let (_t, dir) = broken_copy();
    let seg = first_segment(&dir);
    for t in ["sched_switch", "profile", "tasks"] {
        fs::copy(seg.join("tcp.parquet"), seg.join(format!("{t}.parquet"))).unwrap();
    }
    damaged_but_analyzed(&dir, "not a flightrec table of this format version");
}

#[test]
fn a_segment_with_unreadable_metadata_is_left_out_and_named() {
    let (_t, dir) = broken_copy();
    let total = |dir: &Path| -> u64 {
        let (ok, out, err) = analyze(&["offcpu", dir.to_str().unwrap(), "--json"]);
        assert!(ok, "{err}");
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        j["total"].as_u64().unwrap()
    };
    let whole = total(&dir);
    fs::write(first_segment(&dir).join("segment.json"), b"{ not json").unwrap();
    let rest = total(&dir);
    // The other four segments still count; the first one's time does not.
    assert!(rest > 0 && rest < whole, "{rest} of {whole}");
    let (ok, out, _) = analyze(&["summary", dir.to_str().unwrap()]);
    assert!(ok);
    assert!(out.contains("DAMAGED segment directory 00000000"), "{out}");
    fails_with(&dir, &["--strict"], "is not a valid flightrec file");
}

#[test]
fn bit_flips_never_panic() {
    // Flip bytes through a Parquet file: each run must end in a result or one clear error.
    let (_t, dir) = broken_copy();
    let p = first_segment(&dir).join("sched_switch.parquet");
    let orig = fs::read(&p).unwrap();
    for step in 0..24 {
        let mut bytes = orig.clone();
        let at = (step * 7919) % bytes.len();
        bytes[at] ^= 0x5a;
        fs::write(&p, &bytes).unwrap();
        let (success, _, stderr) = analyze(&["offcpu", dir.to_str().unwrap()]);
        if !success {
            assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        }
    }
}

#[test]
fn bad_arguments() {
    let f = fixture("basic");
    let dir = f.dir.to_str().unwrap();
    for (args, want) in [
        (
            vec!["latency", dir, "--kind", "runq", "--by", "disk"],
            "does not apply",
        ),
        (
            vec!["latency", dir, "--kind", "bogus"],
            "invalid value 'bogus'",
        ),
        (
            vec!["offcpu", dir, "--from", "yesterday"],
            "cannot read time",
        ),
        (
            vec!["offcpu", dir, "--from", "3s", "--to", "1s"],
            "--from must be before --to",
        ),
        (vec!["offcpu", dir, "--min", "fast"], "invalid value"),
    ] {
        let (success, _, stderr) = analyze(&args);
        assert!(!success, "{args:?}");
        assert!(stderr.contains(want), "{args:?}: want {want:?} in {stderr}");
    }
}

#[test]
fn a_capture_with_only_a_journal_says_how_to_salvage_it() {
    let (_t, dir) = broken_copy();
    fs::remove_dir_all(dir.join("segments")).unwrap();
    fs::create_dir_all(dir.join("segments/.00000000.journal")).unwrap();
    fails_with(&dir, &[], "only the journal of the open one");
    fails_with(&dir, &[], "flightrec salvage");
}

#[test]
fn verify_lists_open_journals_beside_sound_segments() {
    let (_t, dir) = broken_copy();
    fs::create_dir_all(dir.join("segments/.00000099.journal")).unwrap();
    let out = ok(&["verify", dir.to_str().unwrap()]);
    assert!(
        out.contains("segment 00000099: open, in its journal"),
        "{out}"
    );
    assert!(out.trim_end().ends_with(": ok"), "{out}");
}

#[test]
fn a_capture_without_bpf_statistics_says_so_instead_of_zero() {
    let (_t, dir) = broken_copy();
    for seg in fs::read_dir(dir.join("segments")).unwrap().flatten() {
        let path = seg.path().join("segment.json");
        let mut meta: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        // What an unprivileged recorder writes: the kernel counted no runs.
        meta["cost"]["bpf_ns"] = serde_json::json!({});
        meta["cost"]["bpf_runs"] = serde_json::json!({});
        fs::write(&path, serde_json::to_vec(&meta).unwrap()).unwrap();
    }
    let out = ok(&["summary", dir.to_str().unwrap()]);
    assert!(out.contains("eBPF programs not measured"), "{out}");
    assert!(!out.contains("0 runs"), "{out}");
}

/// Damaged files kept from fuzzing (`tests/data/broken/`), each placed into a copy of the fixture's
/// second segment: the decoders used to panic on them.
#[test]
fn corpus_of_files_that_made_the_decoders_panic() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/broken");
    let mut seen = 0;
    for entry in fs::read_dir(&corpus).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(table) = name
            .strip_suffix(".parquet")
            .and_then(|n| n.rsplit('.').next())
        else {
            continue;
        };
        let (_t, dir) = broken_copy();
        let second = &segment_dirs(&dir)[1];
        fs::copy(entry.path(), second.join(format!("{table}.parquet"))).unwrap();
        // offcpu (with --strict) and verify read every column of the table and refuse; offcpu
        // without it runs on the rest; runq latency reads some of the columns and may not touch
        // the damage, but must not panic either.
        for (args, must_fail) in [
            (&["offcpu", "--strict"][..], true),
            (&["verify"], true),
            (&["offcpu"], false),
            (&["latency", "--kind", "runq"], false),
        ] {
            let mut a = args.to_vec();
            a.insert(1, dir.to_str().unwrap());
            let (success, stdout, stderr) = analyze(&a);
            let text = format!("{stdout}{stderr}");
            assert!(!text.contains("panicked"), "{name} {a:?}: {text}");
            if must_fail {
                assert!(!success, "{name} {a:?} should fail");
                assert!(
                    text.contains("the capture is damaged") || text.contains("DAMAGED"),
                    "{name} {a:?}: {text}"
                );
            } else {
                assert!(success, "{name} {a:?}: {stderr}");
            }
        }
        seen += 1;
    }
    assert!(seen > 0, "the corpus is empty");
}
