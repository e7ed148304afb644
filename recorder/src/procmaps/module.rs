//! The files processes map (modules): opened once, held open, with what unwinding and
//! symbolization need of them.
use std::{
    fs::File,
    os::fd::AsRawFd,
    sync::{Arc, OnceLock},
};

use crate::unwind::cfi::{Arch, ModuleCfi};

/// Opens the file behind a mapping: through `/proc/<pid>/map_files/` (the exact file, even if
/// deleted or replaced; needs CAP_SYS_ADMIN), else by its path when that is still the same inode
/// (enough with CAP_DAC_READ_SEARCH).
pub(super) fn open_mapped(
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

impl Module {
    /// A module of the file `file`, which process(es) map from `path`.
    pub(super) fn open(path: String, file: File) -> Module {
        let fd_path = format!("/proc/self/fd/{}", file.as_raw_fd());
        Module {
            id: next_module_id(),
            path,
            build_id: blazesym::helper::read_elf_build_id(&fd_path)
                .ok()
                .flatten()
                .map(|b| hex(&b)),
            size: file.metadata().map(|m| m.len()).unwrap_or(0),
            loads: load_segments(&file),
            file,
            cfi: OnceLock::new(),
        }
    }
}

/// A new module id.
fn next_module_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The vDSO as a module: this process's copy of the kernel's image, written to a memfd so it can
/// be unwound and symbolized like any file.
pub(super) fn vdso_module() -> Option<Arc<Module>> {
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
