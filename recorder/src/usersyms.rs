//! User-space frames, made independent of the recording host's processes and files.
//!
//! On the drain thread, each user frame is normalized to (module, file offset) from a snapshot of
//! its process's mappings, taken the first time the process shows a user stack, again after exec,
//! and again when a frame falls outside every known mapping. Every module is opened once through
//! `/proc/<pid>/map_files/`, and the descriptor is kept: a process that exits, or a binary that is
//! deleted, still symbolizes. On the writer thread, [`Symbolizer`] names the frames with blazesym
//! (ELF symbols and DWARF where present) into the segment's `user_frames` table.
use std::{collections::HashMap, fs::File, os::fd::AsRawFd, sync::Arc};

use arrow::{
    array::{ArrayRef, Int32Builder, StringBuilder, UInt32Builder, UInt64Builder},
    record_batch::RecordBatch,
};
use blazesym::symbolize::{self, source::Source, Input, Symbolized};
use flightrec_schemas::Table;

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
}

/// The PT_LOAD program headers of an ELF file.
fn load_segments(file: &File) -> Vec<(u64, u64, u64)> {
    use object::read::elf::{FileHeader, ProgramHeader};
    let Ok(data) = read_head(file) else {
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

/// The first 64 KiB of the file: the ELF and program headers are at its start.
fn read_head(file: &File) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 64 * 1024];
    let n = file.read_at(&mut buf, 0)?;
    buf.truncate(n);
    Ok(buf)
}

impl Module {
    /// The virtual address of a file offset, from the loadable segments.
    fn virt_offset(&self, file_offset: u64) -> Option<u64> {
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
    fn fd_path(&self) -> String {
        format!("/proc/self/fd/{}", self.file.as_raw_fd())
    }
}

#[derive(Clone, Debug)]
struct Mapping {
    start: u64,
    end: u64,
    offset: u64,
    module: Option<Arc<Module>>,
    /// Name of a mapping that is not a file (`[vdso]`, `[heap]`, anonymous JIT code).
    label: Option<String>,
}

#[derive(Default)]
struct ProcMaps {
    maps: Vec<Mapping>,
    stale: bool,
    exited_in: Option<u64>,
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
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl UserMaps {
    fn snapshot(&mut self, tgid: i32) {
        let Ok(maps) = procfs::process::Process::new(tgid).and_then(|p| p.maps()) else {
            // Gone already: keep what we had.
            if let Some(p) = self.procs.get_mut(&tgid) {
                p.stale = false;
            }
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
                            path: path.to_string_lossy().into_owned(),
                            build_id,
                            size,
                            loads: load_segments(&file),
                            file,
                        });
                        self.modules.insert(key, module.clone());
                        mapping.module = Some(module);
                    }
                }
                procfs::process::MMapPath::Vdso => mapping.label = Some("[vdso]".into()),
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
    }

    fn find(&self, tgid: i32, addr: u64) -> Option<&Mapping> {
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

    /// The process exec'd: its mappings changed.
    pub fn exec(&mut self, tgid: i32) {
        self.procs.entry(tgid).or_default().stale = true;
    }

    /// The process exited during segment `segment`.
    pub fn exit(&mut self, tgid: i32, segment: u64) {
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

/// A named frame.
#[derive(Clone, Debug, Default)]
struct Named {
    symbol: Option<String>,
    offset: Option<u64>,
    file: Option<String>,
    line: Option<u32>,
}

/// blazesym, with results cached across segments (on the writer thread).
pub struct Symbolizer {
    inner: symbolize::Symbolizer,
    cache: HashMap<(usize, u64), Named>,
    redact: bool,
}

impl Default for Symbolizer {
    fn default() -> Self {
        Symbolizer::new(false)
    }
}

/// Counts of a `user_frames` table.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameCounts {
    /// Distinct user frames.
    pub frames: u64,
    /// Of those, frames no symbol was found for.
    pub unknown: u64,
}

impl Symbolizer {
    /// A symbolizer; `redact` keeps only the file name of modules and drops source paths.
    pub fn new(redact: bool) -> Symbolizer {
        Symbolizer {
            inner: symbolize::Symbolizer::new(),
            cache: HashMap::new(),
            redact,
        }
    }

    fn name(&mut self, module: &Arc<Module>, offsets: &[u64]) {
        let key = Arc::as_ptr(module) as usize;
        let todo: Vec<u64> = offsets
            .iter()
            .copied()
            .filter(|o| !self.cache.contains_key(&(key, *o)))
            .collect();
        if todo.is_empty() {
            return;
        }
        let mut elf = symbolize::source::Elf::new(module.fd_path());
        elf.debug_syms = module.size <= DWARF_MAX_BYTES;
        let src = Source::Elf(elf);
        let results = self
            .inner
            .symbolize(&src, Input::FileOffset(todo.as_slice()))
            .unwrap_or_default();
        for (i, off) in todo.iter().enumerate() {
            let named = match results.get(i) {
                Some(Symbolized::Sym(s)) => Named {
                    symbol: Some(s.name.to_string()),
                    offset: Some(s.offset as u64),
                    file: s
                        .code_info
                        .as_ref()
                        .map(|c| c.to_path().display().to_string()),
                    line: s.code_info.as_ref().and_then(|c| c.line),
                },
                _ => Named::default(),
            };
            self.cache.insert((key, *off), named);
        }
    }

    /// The `user_frames` table of a segment's frames.
    pub fn table(&mut self, frames: &[Frame]) -> (RecordBatch, FrameCounts) {
        let mut by_module: HashMap<usize, (Arc<Module>, Vec<u64>)> = HashMap::new();
        for f in frames {
            if let Some((m, off)) = &f.module {
                by_module
                    .entry(Arc::as_ptr(m) as usize)
                    .or_insert_with(|| (m.clone(), Vec::new()))
                    .1
                    .push(*off);
            }
        }
        for (m, offs) in by_module.values() {
            self.name(m, offs);
        }
        let mut tgid = Int32Builder::new();
        let mut addr = UInt64Builder::new();
        let mut module = StringBuilder::new();
        let mut build_id = StringBuilder::new();
        let mut file_offset = UInt64Builder::new();
        let mut virt_offset = UInt64Builder::new();
        let mut symbol = StringBuilder::new();
        let mut sym_offset = UInt64Builder::new();
        let mut file = StringBuilder::new();
        let mut line = UInt32Builder::new();
        let mut counts = FrameCounts::default();
        for f in frames {
            tgid.append_value(f.tgid);
            addr.append_value(f.addr);
            let named = match &f.module {
                Some((m, off)) => {
                    if self.redact {
                        module.append_value(m.path.rsplit('/').next().unwrap_or(&m.path));
                    } else {
                        module.append_value(&m.path);
                    }
                    build_id.append_option(m.build_id.as_deref());
                    file_offset.append_value(*off);
                    virt_offset.append_option(m.virt_offset(*off));
                    self.cache
                        .get(&(Arc::as_ptr(m) as usize, *off))
                        .cloned()
                        .unwrap_or_default()
                }
                None => {
                    module.append_option(f.label.as_deref());
                    build_id.append_null();
                    file_offset.append_null();
                    virt_offset.append_null();
                    Named::default()
                }
            };
            counts.frames += 1;
            if named.symbol.is_none() {
                counts.unknown += 1;
            }
            symbol.append_option(named.symbol);
            sym_offset.append_option(named.offset);
            file.append_option(named.file.filter(|_| !self.redact));
            line.append_option(named.line);
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(tgid.finish()),
            Arc::new(addr.finish()),
            Arc::new(module.finish()),
            Arc::new(build_id.finish()),
            Arc::new(file_offset.finish()),
            Arc::new(virt_offset.finish()),
            Arc::new(symbol.finish()),
            Arc::new(sym_offset.finish()),
            Arc::new(file.finish()),
            Arc::new(line.finish()),
        ];
        let batch =
            RecordBatch::try_new(Table::UserFrames.schema(), cols).expect("user_frames schema");
        (batch, counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    #[no_mangle]
    fn flightrec_usersyms_test_marker() -> u64 {
        std::hint::black_box(42)
    }

    #[test]
    fn own_function_is_named_and_survives_as_a_held_module() {
        let me = std::process::id() as i32;
        let addr = flightrec_usersyms_test_marker as *const () as u64;
        let mut maps = UserMaps::default();
        maps.cover(me, &[addr]);
        let f = maps.frame(me, addr);
        let (m, _) = f.module.as_ref().expect("in the test binary");
        assert!(m.path.contains("flightrec_recorder"), "{}", m.path);
        let mut s = Symbolizer::default();
        let (batch, counts) = s.table(&[f, maps.frame(me, 8)]);
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(
            (counts.frames, counts.unknown),
            (2, 1),
            "address 8 is in no mapping"
        );
        let sym = batch
            .column_by_name("symbol")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap()
            .value(0)
            .to_string();
        assert!(sym.contains("flightrec_usersyms_test_marker"), "{sym}");
        let virt = batch
            .column_by_name("virt_offset")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::UInt64Array>()
            .unwrap()
            .value(0);
        assert!(virt > 0, "a virtual offset for separate debug files");
    }
}
