//! The address spaces of recorded processes: their mappings, read from `/proc/<pid>/maps` the
//! first time a process shows a user stack, again after exec and when an address falls outside
//! every known mapping; and the files they map (modules), opened once through
//! `/proc/<pid>/map_files/` and held open, so a process that exits, or a binary that is deleted,
//! can still be symbolized and unwound.
use std::{
    collections::HashMap,
    fs::File,
    os::fd::AsRawFd,
    sync::{Arc, OnceLock},
};

use aya::maps::{HashMap as BpfHashMap, MapData};

use crate::unwind::{Arch, ModuleCfi};

/// Opens the file behind a mapping: through `/proc/<pid>/map_files/` (the exact file, even if
/// deleted or replaced; needs CAP_SYS_ADMIN), else by its path when that is still the same inode
/// (enough with CAP_DAC_READ_SEARCH).
fn open_mapped(
    tgid: i32,
    start: u64,
    end: u64,
    path: &std::path::Path,
    inode: u64,
) -> Option<File> {
    use std::os::unix::fs::MetadataExt;
    if let Ok(f) = File::open(format!("/proc/{tgid}/map_files/{start:x}-{end:x}")) {
        return Some(f);
    }
    let f = File::open(path).ok()?;
    (f.metadata().ok()?.ino() == inode).then_some(f)
}

/// A mapped file, held open.
#[derive(Debug)]
pub struct Module {
    /// Unique for the recorder's life: caches key on it (an address could be reused after a
    /// module is dropped).
    pub id: u64,
    /// Its path as the process saw it.
    pub path: String,
    /// GNU build ID in hex, when the file has one.
    pub build_id: Option<String>,
    /// Size of the file in bytes.
    pub size: u64,
    /// Loadable segments as (file offset, virtual address, file size), to turn a file offset into
    /// the address a separate debug file knows it by.
    loads: Vec<(u64, u64, u64)>,
    file: File,
    /// Its call frame information, read on first use.
    cfi: OnceLock<Option<ModuleCfi>>,
}

/// The PT_LOAD program headers of an ELF file. The file is mapped, not read: the headers can
/// be anywhere in it (BOLT-optimized binaries keep them near the end).
fn load_segments(file: &File) -> Vec<(u64, u64, u64)> {
    use object::read::elf::{FileHeader, ProgramHeader};
    // SAFETY: read-only mapping, dropped before returning; see ModuleCfi::load on truncation.
    let Ok(data) = (unsafe { memmap2::Mmap::map(file) }) else {
        return Vec::new();
    };
    let parse = || -> Option<Vec<(u64, u64, u64)>> {
        let hdr = object::elf::FileHeader64::<object::Endianness>::parse(&*data).ok()?;
        let endian = hdr.endian().ok()?;
        let phdrs = hdr.program_headers(endian, &*data).ok()?;
        Some(
            phdrs
                .iter()
                .filter(|p| p.p_type(endian) == object::elf::PT_LOAD)
                .map(|p| (p.p_offset(endian), p.p_vaddr(endian), p.p_filesz(endian)))
                .collect(),
        )
    };
    parse().unwrap_or_default()
}

impl Module {
    /// The call frame information of the file, read when first asked for; `None` when it has none.
    pub fn cfi(&self) -> Option<&ModuleCfi> {
        self.cfi
            .get_or_init(|| ModuleCfi::load(&self.file, Arch::HOST))
            .as_ref()
    }

    /// The virtual address of a file offset, from the loadable segments.
    pub fn virt_offset(&self, file_offset: u64) -> Option<u64> {
        self.loads
            .iter()
            .find(|(off, _, size)| file_offset >= *off && file_offset < off + size)
            .map(|(off, vaddr, _)| vaddr + (file_offset - off))
    }
}

/// Modules up to this size are symbolized with their DWARF (file:line, inlined functions); larger
/// ones (typically unstripped debug builds) with ELF symbols only: parsing hundreds of MiB of DWARF
/// on the recorder's writer thread would cost seconds and memory at the worst moment.
pub const DWARF_MAX_BYTES: u64 = 64 << 20;

impl Module {
    /// A path that opens the held file (`/proc/self/fd/N`).
    pub fn fd_path(&self) -> String {
        format!("/proc/self/fd/{}", self.file.as_raw_fd())
    }
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
}

/// A new module id.
fn next_module_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The vDSO as a module: this process's copy of the kernel's image, written to a memfd so it can
/// be unwound and symbolized like any file.
fn vdso_module() -> Option<Arc<Module>> {
    use std::io::Write;
    // SAFETY: no preconditions; 0 when the kernel passed no vDSO.
    let base = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) };
    if base == 0 {
        return None;
    }
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let size = maps.lines().find_map(|l| {
        let (range, rest) = l.split_once(' ')?;
        rest.ends_with("[vdso]").then_some(())?;
        let (a, b) = range.split_once('-')?;
        let (a, b) = (
            u64::from_str_radix(a, 16).ok()?,
            u64::from_str_radix(b, 16).ok()?,
        );
        (a == base).then_some(b - a)
    })?;
    // SAFETY: the vDSO mapping of this process, `size` bytes from `base`, readable while it lives.
    let image = unsafe { std::slice::from_raw_parts(base as *const u8, size as usize) };
    // SAFETY: a NUL-terminated name; no flags.
    let fd = unsafe { libc::memfd_create(c"flightrec-vdso".as_ptr(), 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a descriptor we just created and own.
    let mut file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    file.write_all(image).ok()?;
    let fd_path = format!("/proc/self/fd/{}", file.as_raw_fd());
    Some(Arc::new(Module {
        id: next_module_id(),
        path: "[vdso]".into(),
        build_id: blazesym::helper::read_elf_build_id(&fd_path)
            .ok()
            .flatten()
            .map(|b| hex(&b)),
        size,
        loads: load_segments(&file),
        file,
        cfi: OnceLock::new(),
    }))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl UserMaps {
    /// Mappings that use the kernel's record of execs: a snapshot then knows which events it may
    /// describe (those after the last exec before it was read).
    pub fn with_execs(execs: BpfHashMap<MapData, u32, u64>) -> UserMaps {
        UserMaps {
            execs: Some(execs),
            ..Default::default()
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
        let Ok(maps) = procfs::process::Process::new(tgid).and_then(|p| p.maps()) else {
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
        let mut out = Vec::new();
        for m in maps {
            let (start, end) = m.address;
            let mut mapping = Mapping {
                start,
                end,
                offset: m.offset,
                module: None,
                label: None,
            };
            match &m.pathname {
                procfs::process::MMapPath::Path(path) => {
                    let key = (m.dev.0 as u64 * 1_000_000 + m.dev.1 as u64, m.inode);
                    if let Some(module) = self.modules.get(&key) {
                        mapping.module = Some(module.clone());
                    } else if let Some(file) = open_mapped(tgid, start, end, path, m.inode) {
                        let fd_path = format!("/proc/self/fd/{}", file.as_raw_fd());
                        let build_id = blazesym::helper::read_elf_build_id(&fd_path)
                            .ok()
                            .flatten()
                            .map(|b| hex(&b));
                        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
                        let module = Arc::new(Module {
                            id: next_module_id(),
                            path: path.to_string_lossy().into_owned(),
                            build_id,
                            size,
                            loads: load_segments(&file),
                            file,
                            cfi: OnceLock::new(),
                        });
                        self.modules.insert(key, module.clone());
                        mapping.module = Some(module);
                    }
                }
                procfs::process::MMapPath::Vdso => {
                    mapping.label = Some("[vdso]".into());
                    mapping.module = self.vdso.get_or_init(vdso_module).clone();
                }
                procfs::process::MMapPath::Heap => mapping.label = Some("[heap]".into()),
                procfs::process::MMapPath::Stack => mapping.label = Some("[stack]".into()),
                _ => mapping.label = Some("[anon]".into()),
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
        }
    }
}
