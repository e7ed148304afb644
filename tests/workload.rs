//! A workload with known behaviour, for recording tests:
//!   flightrec-workload [--sleeps N] [--sleep-ms MS] [--writes N --dir DIR] [--burn-ms MS]
//! sleeps N times for MS each (off-CPU, interruptible), does N 4 KiB O_DIRECT writes each followed by
//! fsync (block I/O), then burns CPU in `flightrec_workload_burn` (on-CPU samples).
use std::{
    alloc::{alloc_zeroed, dealloc, Layout},
    fs::OpenOptions,
    hint::black_box,
    io::Write,
    os::unix::fs::{FileExt, OpenOptionsExt},
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

#[derive(Default)]
struct Args {
    sleeps: u32,
    sleep_ms: u64,
    writes: u32,
    dir: Option<PathBuf>,
    burn_ms: u64,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        sleep_ms: 25,
        ..Default::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--sleeps" => a.sleeps = value()?.parse().map_err(|e| format!("--sleeps: {e}"))?,
            "--sleep-ms" => {
                a.sleep_ms = value()?.parse().map_err(|e| format!("--sleep-ms: {e}"))?
            }
            "--writes" => a.writes = value()?.parse().map_err(|e| format!("--writes: {e}"))?,
            "--dir" => a.dir = Some(PathBuf::from(value()?)),
            "--burn-ms" => a.burn_ms = value()?.parse().map_err(|e| format!("--burn-ms: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.writes > 0 && a.dir.is_none() {
        return Err("--writes needs --dir".into());
    }
    Ok(a)
}

#[inline(never)]
#[no_mangle]
pub fn flightrec_workload_sleep(n: u32, ms: u64) {
    for _ in 0..n {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

#[inline(never)]
#[no_mangle]
pub fn flightrec_workload_burn(ms: u64) -> u64 {
    let end = Instant::now() + Duration::from_millis(ms);
    let mut x = 0u64;
    while Instant::now() < end {
        for i in 0..10_000u64 {
            x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
    }
    x
}

fn direct_writes(dir: &std::path::Path, n: u32) -> std::io::Result<()> {
    let path = dir.join("flightrec-workload.dat");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)?;
    let layout = Layout::from_size_align(4096, 4096).expect("layout");
    // SAFETY: non-zero size; freed below with the same layout.
    let buf = unsafe { alloc_zeroed(layout) };
    // SAFETY: buf is a live 4096-byte allocation.
    let slice = unsafe { std::slice::from_raw_parts_mut(buf, 4096) };
    slice.fill(0xa5);
    let mut result = Ok(());
    for i in 0..n {
        result = f
            .write_all_at(slice, i as u64 * 4096)
            .and_then(|_| f.sync_all());
        if result.is_err() {
            break;
        }
    }
    // SAFETY: allocated above with this layout.
    unsafe { dealloc(buf, layout) };
    let _ = std::fs::remove_file(&path);
    result
}

fn main() -> ExitCode {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("flightrec-workload: {e}");
            return ExitCode::from(2);
        }
    };
    flightrec_workload_sleep(a.sleeps, a.sleep_ms);
    if let Some(dir) = &a.dir {
        if let Err(e) = direct_writes(dir, a.writes) {
            eprintln!(
                "flightrec-workload: O_DIRECT writes in {}: {e}",
                dir.display()
            );
            return ExitCode::FAILURE;
        }
    }
    let x = flightrec_workload_burn(a.burn_ms);
    let _ = writeln!(std::io::stdout(), "{}", x & 1);
    ExitCode::SUCCESS
}
