//! Helpers shared by the end-to-end tests: privilege checks, the real binaries, and reading a
//! capture back with the Parquet reader.
mod analyze;
mod attach;
mod cgroups;
mod chain;
mod claims;
mod cluster;
mod entry;
mod faults;
mod go_stacks;
mod incident;
mod irqs;
mod locks;
mod package;
mod peers;
mod record;
mod reliability;
mod signals;
mod sql;
mod stacks;
mod stacks_vs_perf;
mod tcp;
mod threads;
mod timeline;
mod tools;
mod wakeups;

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use arrow::{
    array::{Array, AsArray, RecordBatch},
    datatypes::{Int32Type, Int64Type, UInt32Type, UInt64Type},
};
use flightrec_schemas::{
    Manifest, SegmentMeta, Table, MANIFEST_FILE, SEGMENTS_DIR, SEGMENT_META_FILE,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// True when the tests may load eBPF programs.
pub fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Skips (with a clear message) a test that needs root; in CI that fails ([`flightrec_tests::skip`]).
macro_rules! require_root {
    () => {
        if !$crate::suite::is_root() {
            flightrec_tests::skip("this test loads eBPF programs and needs root (CI runs as root)");
            return;
        }
    };
}
pub(crate) use require_root;

/// CLOCK_MONOTONIC now, in ns: the clock of every `ts` column.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

static MACHINE: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Held by the tests that hold the recorder to deadlines (the kill test's one-second bound, the
/// rolling window) and by the tests that starve the machine (an RT hog, CPU-pinned loops, a flood
/// into a full disk), so that they run alone: a debug recorder starved by another test's RT hog
/// misses its deadlines, which says nothing about the recorder.
pub fn exclusive() -> std::sync::RwLockWriteGuard<'static, ()> {
    MACHINE.write().unwrap_or_else(|e| e.into_inner())
}

/// Held by the tests that assert zero loss or exact counts: they may run beside each other, never
/// beside a flood or a hog.
pub fn quiet() -> std::sync::RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(|e| e.into_inner())
}

/// A workspace binary built by `cargo test` (the recorder and analyzer packages have integration
/// tests of their own, so cargo builds their binaries before any test runs).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} not built: run the tests with `cargo test --workspace`",
        bin.display()
    );
    // `cargo test --test e2e` alone does not rebuild the other packages' binaries: refuse to test
    // an old one rather than pass or fail on code that is no longer there.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    // What each binary is built from: sources and the embedded object (not manifests, whose
    // dev-dependencies can change without relinking, nor docs or tests).
    let inputs: &[&str] = match name {
        "flightrec" => &[
            "recorder/src",
            "recorder/bpf",
            "schemas/src",
            "ebpf/flightrec-common/src",
            // export --lake
            "analyzer/src",
            "schemas/sql",
        ],
        "flightrec-analyze" => &["analyzer/src", "schemas/src", "schemas/sql"],
        "flightrec-cluster" => &["cluster/src"],
        _ => &[],
    };
    // Cargo's dep-info lists exactly the files the binary was built from: a test-only module
    // edited since (under `#[cfg(test)]`) is not one of them.
    let newest = match fs::read_to_string(dir.join(format!("{name}.d"))) {
        Ok(dep_info) => dep_info_inputs(&dep_info)
            .iter()
            .filter_map(|p| newest_mtime(Path::new(p)))
            .max(),
        Err(_) => inputs
            .iter()
            .filter_map(|d| newest_mtime(&root.join(d)))
            .max(),
    };
    let built = fs::metadata(&bin).and_then(|m| m.modified()).ok();
    if let (Some(newest), Some(built)) = (newest, built) {
        assert!(
            built >= newest,
            "{} is older than its sources: run `cargo build --workspace` first, or the tests with `cargo test --workspace`",
            bin.display()
        );
    }
    bin
}

/// The input files of a Makefile-style dep-info file (`target: a b\ c`, spaces escaped).
fn dep_info_inputs(dep_info: &str) -> Vec<String> {
    let Some((_, inputs)) = dep_info.lines().next().and_then(|l| l.split_once(": ")) else {
        return Vec::new();
    };
    inputs
        .replace("\\ ", "\u{0}")
        .split_whitespace()
        .map(|p| p.replace('\u{0}', " "))
        .collect()
}

#[test]
fn dep_info_inputs_are_split_at_unescaped_spaces() {
    let d = "/t/debug/flightrec: /w/a.rs /w/my\\ dir/b.rs /w/bpf/x.o\n\n/w/a.rs:\n";
    assert_eq!(
        dep_info_inputs(d),
        ["/w/a.rs", "/w/my dir/b.rs", "/w/bpf/x.o"]
    );
    assert!(dep_info_inputs("garbage").is_empty());
}

/// Newest modification time of a file, or of the files below a directory.
fn newest_mtime(path: &Path) -> Option<std::time::SystemTime> {
    if path.is_file() {
        return fs::metadata(path).and_then(|m| m.modified()).ok();
    }
    fs::read_dir(path)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            if p.is_dir() {
                newest_mtime(&p)
            } else {
                e.metadata().and_then(|m| m.modified()).ok()
            }
        })
        .max()
}

/// Runs a workspace binary that must succeed; returns its stdout.
pub fn run_ok(bin: &str, args: &[&str]) -> String {
    let out = Command::new(workspace_bin(bin))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {bin}: {e}"));
    assert!(
        out.status.success(),
        "{bin} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

pub use flightrec_tests::perf_record_switches;

/// Runs `flightrec-analyze ARGS --json` and parses what it prints.
pub fn analyze_json(args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&run_ok("flightrec-analyze", &a)).expect("json")
}

/// The rows of a SQL query over `input` (a capture or lake), as JSON objects.
pub fn sql_rows(input: &str, query: &str) -> Vec<serde_json::Value> {
    let out = run_ok(
        "flightrec-analyze",
        &["sql", input, "--format", "json", "-e", query],
    );
    serde_json::from_str(&out).expect("json rows")
}

/// Prints a line to the test harness's own stderr, which `cargo test` shows even for a test that
/// passes (the `eprintln!` of a passing test is captured): measured figures belong in every CI log.
pub fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The known workload.
/// Builds the C program tests/e2e/data/`src` with `flags` into `dir`/`name`.
pub fn build_c_program(src: &str, dir: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("e2e/data")
        .join(src);
    let bin = dir.join(name);
    let status = Command::new("cc")
        .args(flags)
        .args(["-g", "-pthread", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("cc (gcc) is needed to build the test programs");
    assert!(status.success(), "compiling {} {flags:?}", src.display());
    bin
}

/// Runs a ground-truth program to its end: its pid and the number it printed after `label `
/// (what it measured itself: `blocked_ns 123`).
pub fn run_measuring(bin: &Path, args: &[&str], label: &str) -> (u32, u64) {
    let child = Command::new(bin)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{} failed", bin.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let value = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(label)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("{} printed no {label}: {text}", bin.display()));
    (pid, value)
}

pub fn workload() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flightrec-workload"))
}

/// A running `flightrec record`.
pub struct Recording {
    child: Option<Child>,
}

impl Drop for Recording {
    /// A test that fails half-way must not leave a recorder running.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            let _ = child.wait();
        }
    }
}

impl Recording {
    /// Starts the recorder and waits until its programs are attached (it writes the manifest then).
    pub fn start(dir: &Path, args: &[&str]) -> Recording {
        let child = Command::new(workspace_bin("flightrec"))
            .arg("record")
            .arg("--dir")
            .arg(dir)
            .arg("--quiet")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start flightrec");
        let mut rec = Recording { child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !dir.join(MANIFEST_FILE).exists() {
            let child = rec.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("poll recorder") {
                let out = rec
                    .child
                    .take()
                    .unwrap()
                    .wait_with_output()
                    .expect("recorder output");
                panic!(
                    "recorder exited early ({status}): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            assert!(
                Instant::now() < deadline,
                "recorder did not start within 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        rec
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Stops it with SIGINT, as Ctrl-C would, and returns its output.
    pub fn stop(self) -> Output {
        let id = self.child.as_ref().expect("running").id();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(id as i32, libc::SIGINT) };
        self.wait()
    }

    /// Waits for it to stop by itself (`--duration`).
    pub fn wait(mut self) -> Output {
        let out = self
            .child
            .take()
            .expect("running")
            .wait_with_output()
            .expect("recorder output");
        assert!(
            out.status.success(),
            "recorder failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// A capture read back from disk.
pub struct Capture {
    /// Its directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

impl Capture {
    /// Opens a capture directory.
    pub fn open(dir: &Path) -> Capture {
        let manifest = Manifest::read(&dir.join(MANIFEST_FILE)).expect("manifest");
        Capture {
            dir: dir.to_path_buf(),
            manifest,
        }
    }

    /// Finished segment directories on disk, oldest first (hidden `.N.tmp` ones are being written).
    pub fn segment_dirs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.dir.join(SEGMENTS_DIR))
            .expect("segments dir")
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    }

    /// Metadata of every segment on disk.
    pub fn segment_metas(&self) -> Vec<SegmentMeta> {
        self.segment_dirs()
            .iter()
            .map(|d| SegmentMeta::read(&d.join(SEGMENT_META_FILE)).expect("segment.json"))
            .collect()
    }

    /// All rows of a table, one batch per segment.
    pub fn table(&self, table: Table) -> Vec<RecordBatch> {
        self.segment_dirs()
            .iter()
            .flat_map(|d| read_parquet(&d.join(table.file_name())))
            .collect()
    }

    /// All rows of a table, each batch with the index of its segment (stack ids are per segment).
    pub fn table_by_segment(&self, table: Table) -> Vec<(usize, RecordBatch)> {
        self.segment_dirs()
            .iter()
            .enumerate()
            .flat_map(|(i, d)| {
                read_parquet(&d.join(table.file_name()))
                    .into_iter()
                    .map(move |b| (i, b))
            })
            .collect()
    }

    /// Function names of the kernel stacks of each segment: `[segment][stack id]` → names, leaf
    /// first, from the raw `stacks` and `kernel_symbols` tables.
    pub fn kernel_stacks(&self) -> Vec<std::collections::HashMap<u32, Vec<String>>> {
        let mut out = vec![std::collections::HashMap::new(); self.segment_dirs().len()];
        let mut names = vec![std::collections::HashMap::new(); out.len()];
        for (seg, b) in self.table_by_segment(Table::KernelSymbols) {
            let (addr, sym) = (u64s(&b, "addr"), strings(&b, "symbol"));
            for i in 0..b.num_rows() {
                names[seg].insert(addr[i].unwrap(), sym[i].clone().unwrap_or_default());
            }
        }
        for (seg, b) in self.table_by_segment(Table::Stacks) {
            let (id, kernel) = (u32s(&b, "stack_id"), b.column_by_name("kernel").unwrap());
            let kernel = kernel.as_boolean();
            let frames = b.column_by_name("frames").unwrap().as_list::<i32>();
            for (i, id) in id.into_iter().enumerate() {
                if !kernel.value(i) {
                    continue;
                }
                let f = frames.value(i);
                let named = f
                    .as_primitive::<UInt64Type>()
                    .values()
                    .iter()
                    .map(|a| names[seg].get(a).cloned().unwrap_or_default())
                    .collect();
                out[seg].insert(id.unwrap(), named);
            }
        }
        out
    }

    /// (ts, cpu, prev_tid, next_tid) of every switch in the capture, by time.
    pub fn switch_rows(&self) -> Vec<(u64, u16, i32, i32)> {
        let mut v = Vec::new();
        for b in self.table(Table::SchedSwitch) {
            let (ts, cpu) = (u64s(&b, "ts"), u16s(&b, "cpu"));
            let (prev, next) = (i32s(&b, "prev_tid"), i32s(&b, "next_tid"));
            for i in 0..b.num_rows() {
                v.push((
                    ts[i].unwrap(),
                    cpu[i].unwrap(),
                    prev[i].unwrap(),
                    next[i].unwrap(),
                ));
            }
        }
        v.sort_unstable();
        v
    }

    /// Switch-outs of `tid` in `state` whose kernel stack passes through `function`, by time.
    pub fn switch_outs_through(&self, tid: i32, state: i64, function: &str) -> Vec<u64> {
        let kstacks = self.kernel_stacks();
        let mut out = Vec::new();
        for (seg, b) in self.table_by_segment(Table::SchedSwitch) {
            let (ts, prev) = (u64s(&b, "ts"), i32s(&b, "prev_tid"));
            let (st, kstack) = (i64s(&b, "prev_state"), u32s(&b, "kstack"));
            for i in 0..b.num_rows() {
                let through = kstack[i]
                    .and_then(|k| kstacks[seg].get(&k))
                    .is_some_and(|names| names.iter().any(|n| n == function));
                if prev[i] == Some(tid) && st[i] == Some(state) && through {
                    out.push(ts[i].unwrap());
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// Of `tid`'s switch-outs at `outs`, those whose time off CPU cannot be measured: the kernel
    /// never reported the switch-in that ended it (the slice the thread ran next is not whole: its
    /// CPU's chain of switches breaks there, see `flightrec_tests::on_cpu_slices`).
    pub fn unmeasured_off_cpu(&self, tid: i32, outs: &[u64]) -> Vec<u64> {
        let slices = flightrec_tests::on_cpu_slices(self.switch_rows(), &[tid].into());
        outs.iter()
            .copied()
            .filter(|&t| {
                slices
                    .iter()
                    .filter(|s| s.end > t)
                    .min_by_key(|s| s.end)
                    .is_some_and(|s| !s.whole)
            })
            .collect()
    }

    /// Sum of a per-source count over all segments.
    pub fn sum(
        &self,
        pick: impl Fn(&SegmentMeta) -> &BTreeMap<String, u64>,
    ) -> BTreeMap<String, u64> {
        let mut total = BTreeMap::new();
        for m in self.segment_metas() {
            for (k, v) in pick(&m) {
                *total.entry(k.clone()).or_insert(0) += v;
            }
        }
        total
    }
}

/// Reads a Parquet file with the parquet crate's own reader.
pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let f = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ParquetRecordBatchReaderBuilder::try_new(f)
        .expect("parquet footer")
        .build()
        .expect("parquet reader")
        .map(|b| b.expect("parquet batch"))
        .collect()
}

/// Values of an Int32 column (nulls as None).
pub fn i32s(b: &RecordBatch, col: &str) -> Vec<Option<i32>> {
    let a = b
        .column_by_name(col)
        .unwrap_or_else(|| panic!("no column {col}"));
    a.as_primitive::<Int32Type>().iter().collect()
}

/// Values of an Int64 column.
pub fn i64s(b: &RecordBatch, col: &str) -> Vec<Option<i64>> {
    b.column_by_name(col)
        .expect(col)
        .as_primitive::<Int64Type>()
        .iter()
        .collect()
}

/// Values of a UInt16 column.
pub fn u16s(b: &RecordBatch, col: &str) -> Vec<Option<u16>> {
    b.column_by_name(col)
        .expect(col)
        .as_primitive::<arrow::datatypes::UInt16Type>()
        .iter()
        .collect()
}

/// Values of a UInt32 column.
pub fn u32s(b: &RecordBatch, col: &str) -> Vec<Option<u32>> {
    b.column_by_name(col)
        .expect(col)
        .as_primitive::<UInt32Type>()
        .iter()
        .collect()
}

/// Values of a UInt64 column.
pub fn u64s(b: &RecordBatch, col: &str) -> Vec<Option<u64>> {
    b.column_by_name(col)
        .expect(col)
        .as_primitive::<UInt64Type>()
        .iter()
        .collect()
}

/// Values of a string column, plain or dictionary encoded.
pub fn strings(b: &RecordBatch, col: &str) -> Vec<Option<String>> {
    let a = b.column_by_name(col).expect(col);
    let a = arrow::compute::cast(a, &arrow::datatypes::DataType::Utf8).expect("cast to utf8");
    let s = a.as_string::<i32>();
    (0..s.len())
        .map(|i| s.is_valid(i).then(|| s.value(i).to_string()))
        .collect()
}
