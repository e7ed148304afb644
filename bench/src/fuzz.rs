//! `flightrec-bench fuzz`: mutates a real capture and its bundle case by case (truncations, bit
//! flips, swapped and foreign table files, deleted files, garbage metadata, damaged archives,
//! hostile tar members) and runs the analyzer on each, in process: the leniently opened analyses
//! (which must run on what is readable), the strict open and `verify`, the bundle importer. A case
//! passes when nothing panics and nothing is written outside its own directory. The cases come
//! from a seeded generator (xorshift64*: ten lines, reproducible with `--seed`; no crate needed).
use std::{
    fs,
    io::Write,
    panic::{catch_unwind, AssertUnwindSafe},
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{bail, Context, Result};
use flightrec_analyzer::{
    bundle, capture::Capture, filter::Filter, latency, offcpu, profile, summary, verify,
};

#[derive(clap::Args)]
pub struct Args {
    /// Cases to run.
    #[arg(long, default_value_t = 10_000)]
    cases: u64,
    /// The capture to mutate (a copy of it; the original is only read).
    #[arg(long, default_value = "fixtures/basic")]
    capture: PathBuf,
    /// Seed of the case generator: the same seed runs the same cases.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Every file of the capture under `root`, relative to it.
fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    for rel in files(from) {
        let dst = to.join(&rel);
        fs::create_dir_all(dst.parent().expect("inside the copy"))?;
        fs::copy(from.join(&rel), dst)?;
    }
    Ok(())
}

/// What a case did to the capture, for the report of a failing case.
fn mutate(rng: &mut Rng, cap: &Path, names: &[PathBuf]) -> Result<String> {
    let pick = |rng: &mut Rng| names[rng.below(names.len())].clone();
    let tables: Vec<&PathBuf> = names
        .iter()
        .filter(|n| n.extension().is_some_and(|e| e == "parquet"))
        .collect();
    Ok(match rng.below(7) {
        0 => {
            let f = pick(rng);
            let len = fs::metadata(cap.join(&f))?.len();
            let to = rng.below(len as usize + 1) as u64;
            fs::OpenOptions::new()
                .write(true)
                .open(cap.join(&f))?
                .set_len(to)?;
            format!("truncate {} to {to} of {len}", f.display())
        }
        1 => {
            let f = pick(rng);
            let mut b = fs::read(cap.join(&f))?;
            let n = 1 + rng.below(16);
            for _ in 0..n {
                if !b.is_empty() {
                    let at = rng.below(b.len());
                    b[at] ^= 1 + rng.below(255) as u8;
                }
            }
            fs::write(cap.join(&f), b)?;
            format!("flip {n} bytes of {}", f.display())
        }
        2 => {
            let (a, b) = (
                tables[rng.below(tables.len())],
                tables[rng.below(tables.len())],
            );
            let (da, db) = (fs::read(cap.join(a))?, fs::read(cap.join(b))?);
            fs::write(cap.join(a), db)?;
            fs::write(cap.join(b), da)?;
            format!("swap {} and {}", a.display(), b.display())
        }
        3 => {
            let f = pick(rng);
            fs::remove_file(cap.join(&f))?;
            format!("delete {}", f.display())
        }
        4 => {
            let f = pick(rng);
            let n = rng.below(64);
            let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            fs::write(cap.join(&f), &junk)?;
            format!("replace {} with {n} random bytes", f.display())
        }
        5 => {
            // A segment's metadata with a number changed (rows, times, ids).
            let metas: Vec<&PathBuf> = names
                .iter()
                .filter(|n| n.ends_with("segment.json"))
                .collect();
            let f = metas[rng.below(metas.len())];
            let text = fs::read_to_string(cap.join(f))?;
            let digits: Vec<usize> = text
                .char_indices()
                .filter(|(_, c)| c.is_ascii_digit())
                .map(|(i, _)| i)
                .collect();
            let mut b = text.into_bytes();
            if !digits.is_empty() {
                b[digits[rng.below(digits.len())]] = b"0123456789"[rng.below(10)];
            }
            fs::write(cap.join(f), b)?;
            format!("change a digit of {}", f.display())
        }
        _ => {
            // A table of one segment in place of another table of another segment.
            let (a, b) = (
                tables[rng.below(tables.len())],
                tables[rng.below(tables.len())],
            );
            fs::copy(cap.join(a), cap.join(b))?;
            format!("copy {} over {}", a.display(), b.display())
        }
    })
}

/// Runs what reads the capture; panics are the failure.
fn analyze(cap: &Path) {
    let f = Filter::default();
    if let Ok(c) = Capture::open_with(cap, false) {
        let _ = offcpu::offcpu(&c, &f, &offcpu::Options::default());
        let _ = profile::profile(&c, &f);
        let _ = latency::latency(&c, latency::Kind::Runq, None, &f);
        let _ = summary::summary(&c, &f);
        // The losses, with the damage found, as every report states them.
        let _ = flightrec_analyzer::lost::Lost::in_range(&c, &f).banner();
    }
    if let Ok(c) = Capture::open(cap) {
        let _ = verify::verify(&c);
    }
}

/// A bundle of `cap` with a hostile or damaged twist: (the tar's bytes, what was done).
fn hostile_bundle(rng: &mut Rng, cap: &Path, names: &[PathBuf]) -> Result<(Vec<u8>, String)> {
    let mut tar = tar::Builder::new(Vec::new());
    for n in names {
        tar.append_path_with_name(cap.join(n), n)?;
    }
    let what = match rng.below(6) {
        0 => member(
            &mut tar,
            "/etc/flightrec-fuzz",
            tar::EntryType::Regular,
            b"x",
        )?,
        1 => member(
            &mut tar,
            "segments/../../../../escape",
            tar::EntryType::Regular,
            b"x",
        )?,
        2 => {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(0o777);
            tar.append_link(&mut h, "segments/00000099/stacks.parquet", "/etc/passwd")?;
            "a symlink member".into()
        }
        3 => member(
            &mut tar,
            "segments/00000000/tasks.parquet",
            tar::EntryType::Char,
            b"",
        )?,
        4 => member(&mut tar, "manifest.json", tar::EntryType::Regular, b"{}")?,
        _ => "no extra member".into(),
    };
    let mut bytes = tar.into_inner()?;
    // Half the bundles are damaged too: flipped bytes or cut short.
    let how = match rng.below(4) {
        0 => {
            let at = rng.below(bytes.len());
            bytes[at] ^= 1 + rng.below(255) as u8;
            format!(", byte {at} flipped")
        }
        1 => {
            let to = rng.below(bytes.len());
            bytes.truncate(to);
            format!(", cut at {to}")
        }
        _ => String::new(),
    };
    Ok((bytes, format!("bundle with {what}{how}")))
}

fn member(
    tar: &mut tar::Builder<Vec<u8>>,
    name: &str,
    kind: tar::EntryType,
    data: &[u8],
) -> Result<String> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o600);
    // Written raw: the builder itself refuses some of these names.
    let raw = h.as_old_mut();
    raw.name = [0; 100];
    raw.name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    tar.append(&h, data)?;
    Ok(format!("member {name} ({kind:?})"))
}

pub fn run(a: Args) -> Result<()> {
    if !a.capture.join("manifest.json").is_file() {
        bail!(
            "{} is not a capture (no manifest.json)",
            a.capture.display()
        );
    }
    flightrec_analyzer::capture::quiet_decoder_panics();
    let root = tempfile::Builder::new()
        .prefix("flightrec-fuzz-")
        .tempdir()?;
    let base = root.path().join("base");
    copy_dir(&a.capture, &base).context("copying the capture")?;
    let names = files(&base);
    let work = root.path().join("work");
    fs::create_dir(&work)?;
    // Checked after each case: it wrote nowhere else.
    let before = files(root.path());
    let mut rng = Rng(a.seed.max(1));
    let (mut panics, mut escapes, mut bundles) = (Vec::new(), Vec::new(), 0u64);
    let start = Instant::now();
    for case in 0..a.cases {
        let dir = work.join(format!("{case}"));
        let what = if rng.below(4) == 0 {
            bundles += 1;
            let (bytes, what) = hostile_bundle(&mut rng, &base, &names)?;
            fs::create_dir(&dir)?;
            let tar = dir.join("bundle.tar");
            fs::File::create(&tar)?.write_all(&bytes)?;
            let dest = dir.join("unpacked");
            fs::create_dir(&dest)?;
            let r = catch_unwind(AssertUnwindSafe(|| {
                if bundle::unpack(&tar, &dest).is_ok() {
                    analyze(&dest);
                }
            }));
            if r.is_err() {
                panics.push(format!("case {case}: {what}"));
            }
            what
        } else {
            copy_dir(&base, &dir)?;
            let what = mutate(&mut rng, &dir, &names)?;
            if catch_unwind(AssertUnwindSafe(|| analyze(&dir))).is_err() {
                panics.push(format!("case {case}: {what}"));
            }
            what
        };
        // Nothing but the case's own directory may have changed.
        fs::remove_dir_all(&dir)?;
        if files(root.path()) != before || Path::new("/etc/flightrec-fuzz").exists() {
            escapes.push(format!("case {case}: {what}"));
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("| cases | of them bundles | panics | writes outside the case | time |");
    println!("|---|---|---|---|---|");
    println!(
        "| {} | {bundles} | {} | {} | {secs:.1} s |",
        a.cases,
        panics.len(),
        escapes.len()
    );
    println!(
        "\nflightrec-bench fuzz --cases {} --seed {} --capture {}",
        a.cases,
        a.seed,
        a.capture.display()
    );
    for p in panics.iter().chain(&escapes).take(10) {
        println!("FAILED {p}");
    }
    if !panics.is_empty() || !escapes.is_empty() {
        bail!(
            "{} panics and {} writes outside the case directory",
            panics.len(),
            escapes.len()
        );
    }
    Ok(())
}
