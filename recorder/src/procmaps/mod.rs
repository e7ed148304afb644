//! The address spaces of recorded processes: their mappings, read from `/proc/<pid>/maps` the
//! first time a process shows a user stack, again after exec and when an address falls outside
//! every known mapping; and the files they map (modules), opened once through
//! `/proc/<pid>/map_files/` and held open, so a process that exits, or a binary that is deleted,
//! can still be symbolized and unwound.
mod module;
pub mod young;

use std::{
    fs::File,
    path::PathBuf,
    sync::{Arc, OnceLock},
};

use aya::maps::{HashMap as BpfHashMap, MapData};
// Keys are process ids and inodes, looked up for every stack: FxHash is several times faster
// than SipHash, and nothing here is an adversary's input beyond slowness.
use rustc_hash::FxHashMap as HashMap;

use self::module::{open_mapped, vdso_module};
pub use self::module::{Module, DWARF_MAX_BYTES};
use crate::host;

/// A line of `/proc/<pid>/maps`, with the file behind it when it was opened as it was read.
#[derive(Debug)]
pub struct RawMapping {
    start: u64,
    end: u64,
    offset: u64,
    kind: RawKind,
}

#[derive(Debug)]
enum RawKind {
    /// A file: (device, inode), its path, and the file when already opened.
    File((u64, u64), PathBuf, Option<File>),
    Vdso,
    Label(&'static str),
}

/// Reads `/proc/<tgid>/maps`; with `open`, also opens every mapped file (while the process still
/// exists to open them through).
pub fn read_raw(tgid: i32, open: bool) -> Option<Vec<RawMapping>> {
    let maps = procfs::process::Process::new(tgid)
        .and_then(|p| p.maps())
        .ok()?;
    Some(
        maps.into_iter()
            .map(|m| {
                let (start, end) = m.address;
                let kind = match &m.pathname {
                    procfs::process::MMapPath::Path(path) => {
                        let key = (m.dev.0 as u64 * 1_000_000 + m.dev.1 as u64, m.inode);
                        let file = open
                            .then(|| open_mapped(tgid, start, end, path, m.inode))
                            .flatten();
                        RawKind::File(key, path.clone(), file)
                    }
                    procfs::process::MMapPath::Vdso => RawKind::Vdso,
                    procfs::process::MMapPath::Heap => RawKind::Label("[heap]"),
                    procfs::process::MMapPath::Stack => RawKind::Label("[stack]"),
                    _ => RawKind::Label("[anon]"),
                };
                RawMapping {
                    start,
                    end,
                    offset: m.offset,
                    kind,
                }
            })
            .collect(),
    )
}

/// One mapping of a process.
#[derive(Clone, Debug)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Offset in the file of `start`.
    pub offset: u64,
    /// The file, when it is one.
    pub module: Option<Arc<Module>>,
    /// Name of a mapping that is not a file (`[vdso]`, `[heap]`, anonymous JIT code).
    pub label: Option<String>,
}

#[derive(Default)]
struct ProcMaps {
    maps: Vec<Mapping>,
    stale: bool,
    exited_in: Option<u64>,
    /// Bumped at every new snapshot: unwinding results cached under an older one may differ.
    generation: u64,
    /// The process's last exec before the snapshot (monotonic ns; 0 when not known).
    epoch: u64,
    /// When the mappings were read (monotonic ns).
    read_at: u64,
    /// The first exec after the snapshot, seen in the stream or, for mappings inherited from the
    /// parent, recorded by the kernel: the mappings describe events before it only (monotonic ns;
    /// 0: none known).
    until: u64,
}

/// A user frame normalized on the recording host.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Process whose address space the address belongs to.
    pub tgid: i32,
    /// The address.
    pub addr: u64,
    /// File it falls in, with the offset into it.
    pub module: Option<(Arc<Module>, u64)>,
    /// Name of a non-file mapping it falls in.
    pub label: Option<String>,
    /// A return address in some stack (not only a stack's first frame): named by the call
    /// before it ([`flightrec_schemas::unwind::named_at`]).
    pub caller: bool,
}

/// Mapping snapshots of live processes and the modules they map.
#[derive(Default)]
pub struct UserMaps {
    procs: HashMap<i32, ProcMaps>,
    /// Modules by (device, inode).
    modules: HashMap<(u64, u64), Arc<Module>>,
    /// The kernel's map of each process's last exec (`EXECS`), when the process events are on.
    execs: Option<BpfHashMap<MapData, u32, u64>>,
    /// The vDSO, the same image in every 64-bit process of this kernel.
    vdso: OnceLock<Option<Arc<Module>>>,
    /// The process each task was forked from (tasks that are threads included).
    parents: HashMap<i32, i32>,
    /// The first exec of each process the event stream showed (monotonic ns).
    execs_seen: HashMap<i32, u64>,
    /// The watcher of young processes' mappings.
    young: Option<young::Young>,
}

impl UserMaps {
    /// Mappings that use the kernel's record of execs: a snapshot then knows which events it may
    /// describe (those after the last exec before it was read).
    pub fn with_execs(execs: BpfHashMap<MapData, u32, u64>) -> UserMaps {
        UserMaps {
            execs: Some(execs),
            young: young::Young::start().ok(),
            ..Default::default()
        }
    }

    /// Installs what the young-process watcher read since the last call.
    fn absorb(&mut self) {
        let reads: Vec<young::Read> = match &self.young {
            Some(y) => y.reads().collect(),
            None => return,
        };
        for r in reads {
            // The kernel's record of the last exec dates the read, when it is from before it.
            let last = self.last_exec(r.tgid);
            let epoch = if last != 0 && last <= r.read_at {
                last
            } else {
                r.exec_ns
            };
            self.install(r.tgid, r.maps, epoch, r.read_at);
        }
    }

    /// When process `tgid` last exec'd, as the kernel recorded it (0: not known).
    fn last_exec(&self, tgid: i32) -> u64 {
        self.execs
            .as_ref()
            .and_then(|m| m.get(&(tgid as u32), 0).ok())
            .unwrap_or(0)
    }

    /// True when the current snapshot of `tgid`'s mappings describes an event at `ts`: it is after
    /// the last exec before the snapshot and, for mappings inherited from the parent, before the
    /// child's own exec.
    pub fn describes(&self, tgid: i32, ts: u64) -> bool {
        self.procs
            .get(&tgid)
            .is_none_or(|p| ts >= p.epoch && (p.until == 0 || ts < p.until))
    }

    /// Process `child` was forked by process `parent`. The parent's mappings are read now if they
    /// were not yet: the child may be gone before its own can be.
    pub fn fork(&mut self, parent: i32, child: i32) {
        if self.parents.len() >= 1 << 16 {
            self.parents.clear();
        }
        self.parents.insert(child, parent);
        if !self.procs.contains_key(&parent) {
            self.snapshot(parent);
        }
    }

    fn snapshot(&mut self, tgid: i32) {
        // An exec between reading the kernel's record and the mappings would date the snapshot too
        // early: read the record on both sides and try again if it moved.
        let mut epoch = self.last_exec(tgid);
        for _ in 0..3 {
            self.read_maps(tgid, epoch);
            let after = self.last_exec(tgid);
            if after == epoch {
                return;
            }
            epoch = after;
        }
    }

    fn read_maps(&mut self, tgid: i32, epoch: u64) {
        let Some(maps) = read_raw(tgid, false) else {
            // Gone already: keep what we had.
            if let Some(p) = self.procs.get_mut(&tgid) {
                p.stale = false;
                return;
            }
            // Never read: a forked child had its parent's mappings, until it exec'd (a shell's
            // subshells often live shorter than the drain takes to see them).
            let maps = self
                .parents
                .get(&tgid)
                .and_then(|parent| self.procs.get(parent))
                .map(|p| p.maps.clone())
                .unwrap_or_default();
            // Valid until the first exec: the one the stream showed, or failing that the
            // kernel's last one (any later one only narrows nothing it could describe).
            let last = Some(self.last_exec(tgid)).filter(|t| *t != 0);
            let until = [self.execs_seen.get(&tgid).copied(), last]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(u64::MAX);
            self.procs.insert(
                tgid,
                ProcMaps {
                    maps,
                    generation: 1,
                    until,
                    ..Default::default()
                },
            );
            return;
        };
        self.install(tgid, maps, epoch, host::monotonic_ns());
    }

    /// Makes `raw` the mappings of `tgid`, read at `read_at` after its exec at `epoch`, unless a
    /// newer read is installed already.
    fn install(&mut self, tgid: i32, raw: Vec<RawMapping>, epoch: u64, read_at: u64) {
        if self.procs.get(&tgid).is_some_and(|p| p.read_at > read_at) {
            return;
        }
        let mut out = Vec::with_capacity(raw.len());
        for m in raw {
            let mut mapping = Mapping {
                start: m.start,
                end: m.end,
                offset: m.offset,
                module: None,
                label: None,
            };
            match m.kind {
                RawKind::File(key, path, file) => {
                    if let Some(module) = self.modules.get(&key) {
                        mapping.module = Some(module.clone());
                    } else if let Some(file) =
                        file.or_else(|| open_mapped(tgid, m.start, m.end, &path, key.1))
                    {
                        let module =
                            Arc::new(Module::open(path.to_string_lossy().into_owned(), file));
                        self.modules.insert(key, module.clone());
                        mapping.module = Some(module);
                    }
                }
                RawKind::Vdso => {
                    mapping.label = Some("[vdso]".into());
                    mapping.module = self.vdso.get_or_init(vdso_module).clone();
                }
                RawKind::Label(l) => mapping.label = Some(l.into()),
            }
            out.push(mapping);
        }
        out.sort_by_key(|m| m.start);
        let p = self.procs.entry(tgid).or_default();
        p.maps = out;
        p.stale = false;
        p.generation += 1;
        p.epoch = epoch;
        p.until = 0;
        p.read_at = read_at;
    }

    /// The mapping of process `tgid` that holds `addr`.
    pub fn find(&self, tgid: i32, addr: u64) -> Option<&Mapping> {
        let maps = &self.procs.get(&tgid)?.maps;
        let i = maps.partition_point(|m| m.start <= addr).checked_sub(1)?;
        let m = &maps[i];
        (addr < m.end).then_some(m)
    }

    /// Makes sure the frames of a new user stack can be normalized, re-reading the process's
    /// mappings when it is new, has exec'd, or a frame is outside every known mapping.
    pub fn cover(&mut self, tgid: i32, frames: &[u64]) {
        self.absorb();
        let needs = match self.procs.get(&tgid) {
            None => true,
            Some(p) => p.stale || frames.iter().any(|&a| self.find(tgid, a).is_none()),
        };
        if needs {
            self.snapshot(tgid);
        }
    }

    /// How many times the process's mappings were read (0: never).
    pub fn generation(&self, tgid: i32) -> u64 {
        self.procs.get(&tgid).map_or(0, |p| p.generation)
    }

    /// The process exec'd: its mappings changed.
    pub fn exec(&mut self, tgid: i32, ts: u64) {
        // The mappings read so far describe the events before this exec only.
        if let Some(p) = self.procs.get_mut(&tgid) {
            p.stale = true;
            p.until = if p.until == 0 { ts } else { p.until.min(ts) };
        }
        self.execs_seen.entry(tgid).or_insert(ts);
        if let Some(y) = &self.young {
            y.exec(tgid, ts);
        }
    }

    /// The process exited during segment `segment`.
    pub fn exit(&mut self, tgid: i32, segment: u64) {
        self.parents.remove(&tgid);
        self.execs_seen.remove(&tgid);
        if let Some(p) = self.procs.get_mut(&tgid) {
            p.exited_in = Some(segment);
        }
    }

    /// Forgets processes that exited before `segment` and modules no process maps any more.
    pub fn prune(&mut self, segment: u64) {
        self.procs
            .retain(|_, p| p.exited_in.is_none_or(|s| s >= segment));
        self.modules.retain(|_, m| Arc::strong_count(m) > 1);
    }

    /// Normalizes one frame.
    pub fn frame(&self, tgid: i32, addr: u64) -> Frame {
        let m = self.find(tgid, addr);
        Frame {
            tgid,
            addr,
            module: m.and_then(|m| {
                m.module
                    .clone()
                    .map(|module| (module, addr - m.start + m.offset))
            }),
            label: m.and_then(|m| m.label.clone()),
            caller: false,
        }
    }
}
