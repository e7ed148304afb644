//! Call frame information of one module, read with gimli from its `.eh_frame` (through
//! `.eh_frame_hdr`'s search table) and `.debug_frame`, and from a Go binary's `.gopclntab`
//! ([`super::golang`]): for a code address, how to recover the caller's stack pointer, frame
//! pointer and return address. Addresses here are the module's own (ELF virtual addresses); the
//! unwinder translates from the process's.
use std::{fs::File, ops::Range};

use gimli::{
    BaseAddresses, CfaRule, CieOrFde, DebugFrame, EhFrame, EhFrameHdr, EndianSlice, LittleEndian,
    Register, RegisterRule, UnwindContext, UnwindSection, UnwindTableRow,
};
use object::{Object, ObjectSection};

use self::expr::evaluate;
use super::golang::{GoRule, GoTable};

type Slice<'a> = EndianSlice<'a, LittleEndian>;
type Fde = gimli::FrameDescriptionEntry<Slice<'static>, usize>;

/// How one register of the caller is recovered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recover {
    /// Unchanged by this function.
    Same,
    /// Saved at CFA + offset.
    At(i64),
    /// Equal to CFA + offset.
    Val(i64),
    /// Saved at the address a DWARF expression computes (from the stack pointer, with the CFA
    /// pushed first): how a signal trampoline points at the registers the kernel saved.
    AtExpr(Expr),
    /// Held in the argument register (rdi on x86_64), which events carry for the innermost frame
    /// only: glibc's vfork keeps its return address there while the parent waits.
    InArg,
    /// Not recoverable (or by a rule this unwinder does not run): unknown from here on.
    Unknown,
}

/// Where the canonical frame address (the stack pointer before the call) comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cfa {
    /// Stack pointer + offset.
    Sp(i64),
    /// Frame pointer + offset.
    Fp(i64),
    /// The auxiliary register + offset: rbx on x86_64 (code that realigns its stack, such as
    /// ld.so's lazy-binding trampoline `_dl_runtime_resolve`, keeps its CFA there).
    Aux(i64),
    /// A DWARF expression of the stack pointer and the instruction pointer (GCC's PLT rule), and
    /// of stack memory (a signal trampoline's: the stack pointer the kernel saved).
    Expr(Expr),
}

/// A DWARF expression of a rule, by its place in the section the rule came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expr {
    /// `.debug_frame` rather than `.eh_frame`.
    pub debug_frame: bool,
    /// Offset of the expression in that section.
    pub offset: usize,
    /// Its length.
    pub len: usize,
}

/// The unwind rule at one code address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The outermost frame: its return address is undefined (`_start`, a thread's entry).
    End,
    /// A frame to step over.
    Frame {
        /// The caller's stack pointer (the CFA).
        cfa: Cfa,
        /// The return address.
        ra: Recover,
        /// The frame pointer.
        fp: Recover,
        /// The auxiliary register (rbx on x86_64).
        aux: Recover,
        /// A signal trampoline (CIE augmentation `S`): its "return address" is the instruction the
        /// signal interrupted, exact, not one after a call.
        signal: bool,
        /// The code after a thread-creating syscall that glibc leaves without CFI (`clone`,
        /// `clone3`: the new thread must not be unwound into its parent's frames). In the parent
        /// the rule of the code before the syscall still holds; the new thread's stack holds no
        /// return address, so one that no CFI confirms makes this the outermost frame.
        clone_gap: bool,
    },
}

/// What a module's CFI says about an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A rule.
    Rule(Rule),
    /// The module has CFI, but none covers this address.
    NotCovered,
    /// The rule uses something this unwinder does not run (a register other than sp/fp as the
    /// CFA base, an expression of other registers).
    Unsupported,
    /// Code that moves the stack pointer to another stack (Go's runtime): its callers are not on
    /// this stack.
    StackSwitch,
}

/// FDE address ranges of a section without a search table, sorted: (start, end, entry offset).
type Index = Vec<(u64, u64, usize)>;

/// A section's place in the file and in the module's address space.
#[derive(Clone, Debug)]
struct Section {
    file: Range<usize>,
    addr: u64,
}

/// The instruction set whose CFI is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// x86_64: CFA from rsp (7) or rbp (6); the return address column is 16.
    X86_64,
    /// aarch64: CFA from sp (31) or x29; the return address is x30 (the link register).
    Aarch64,
}

impl Arch {
    /// The architecture the recorder runs on.
    pub const HOST: Arch = if cfg!(target_arch = "aarch64") {
        Arch::Aarch64
    } else {
        Arch::X86_64
    };

    /// DWARF numbers of (stack pointer, frame pointer, return address).
    pub fn dwarf_regs(self) -> (gimli::Register, gimli::Register, gimli::Register) {
        match self {
            Arch::X86_64 => (gimli::X86_64::RSP, gimli::X86_64::RBP, gimli::X86_64::RA),
            Arch::Aarch64 => (gimli::AArch64::SP, gimli::AArch64::X29, gimli::AArch64::X30),
        }
    }

    /// DWARF number of the auxiliary register the events carry ([`flightrec_common::UserRegs::aux`])
    /// when a rule may use it: rbx on x86_64. None on aarch64, where it is the link register,
    /// which the return-address rules name already.
    pub fn dwarf_aux(self) -> Option<gimli::Register> {
        match self {
            Arch::X86_64 => Some(gimli::X86_64::RBX),
            Arch::Aarch64 => None,
        }
    }

    /// DWARF number of the argument register the events carry ([`flightrec_common::UserRegs::arg`]):
    /// rdi on x86_64; none read on aarch64.
    pub fn dwarf_arg(self) -> Option<gimli::Register> {
        match self {
            Arch::X86_64 => Some(gimli::X86_64::RDI),
            Arch::Aarch64 => None,
        }
    }

    /// DWARF number of the instruction pointer, for CFA expressions.
    pub fn dwarf_ip(self) -> gimli::Register {
        match self {
            Arch::X86_64 => gimli::X86_64::RA,
            Arch::Aarch64 => gimli::AArch64::X30,
        }
    }

    /// Where the return address is when the CFI does not say: on x86_64 the call pushed it at
    /// CFA - 8. On aarch64 it is in the link register, which only the innermost frame has; the
    /// walk on aarch64 is not built yet, so it is unknown there.
    pub fn default_ra(self) -> Recover {
        match self {
            Arch::X86_64 => Recover::At(-8),
            Arch::Aarch64 => Recover::Unknown,
        }
    }
}

/// The CFI of one ELF file, mapped into memory.
pub struct ModuleCfi {
    data: memmap2::Mmap,
    arch: Arch,
    bases: BaseAddresses,
    eh_frame: Option<Section>,
    eh_frame_hdr: Option<Section>,
    /// `.eh_frame` FDEs when there is no `.eh_frame_hdr` table.
    eh_index: Option<Index>,
    debug_frame: Option<(Section, Index)>,
    /// The ELF entry point: where the kernel (or the dynamic loader) starts the program.
    entry: u64,
    /// `.text`, whose instructions the clone gap is told by.
    text: Option<Section>,
    /// A Go binary's own table, for the code no CFI covers (all of it in a pure Go binary).
    go: Option<GoTable<'static>>,
}

/// Bytes from the entry point taken as the entry code when no CFI covers them: musl's `_start`
/// (about 22 bytes on x86_64) has none, where glibc's marks its return address undefined.
const ENTRY_CODE: u64 = 64;

fn section(obj: &object::File<'_>, name: &str) -> Option<Section> {
    let s = obj.section_by_name(name)?;
    // Compressed (Go writes its `.debug_frame` so): not read as it is.
    if let object::SectionFlags::Elf { sh_flags } = s.flags() {
        if sh_flags & u64::from(object::elf::SHF_COMPRESSED) != 0 {
            return None;
        }
    }
    let (offset, size) = s.file_range()?;
    Some(Section {
        file: offset as usize..(offset + size) as usize,
        addr: s.address(),
    })
}

fn index<R: UnwindSection<Slice<'static>>>(sec: &R, bases: &BaseAddresses) -> Index
where
    R::Offset: gimli::UnwindOffset<usize>,
{
    let mut out = Vec::new();
    let mut entries = sec.entries(bases);
    while let Ok(Some(e)) = entries.next() {
        if let CieOrFde::Fde(partial) = e {
            if let Ok(fde) = partial.parse(R::cie_from_offset) {
                out.push((fde.initial_address(), fde.end_address(), fde.offset()));
            }
        }
    }
    out.sort_unstable();
    out
}

impl std::fmt::Debug for ModuleCfi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleCfi")
            .field("bytes", &self.data.len())
            .field("eh_frame", &self.eh_frame.is_some())
            .field("debug_frame", &self.debug_frame.is_some())
            .finish()
    }
}

impl ModuleCfi {
    /// Maps `file` and finds its CFI; `None` when it is not an ELF file or has none.
    pub fn load(file: &File, arch: Arch) -> Option<ModuleCfi> {
        // SAFETY: the mapping is read only; a file truncated under us can fault the recorder, the
        // same risk every profiler that maps binaries takes (blazesym, perf, samply).
        let data = unsafe { memmap2::Mmap::map(file) }.ok()?;
        // The slices handed to gimli borrow the mapping, which lives as long as `self`.
        let bytes: &'static [u8] = unsafe { std::slice::from_raw_parts(data.as_ptr(), data.len()) };
        let obj = object::File::parse(bytes).ok()?;
        let eh_frame = section(&obj, ".eh_frame");
        let eh_frame_hdr = section(&obj, ".eh_frame_hdr");
        let debug = section(&obj, ".debug_frame");
        let go = (arch == Arch::X86_64)
            .then(|| GoTable::find(&obj))
            .flatten();
        if eh_frame.is_none() && debug.is_none() && go.is_none() {
            return None;
        }
        let mut bases = BaseAddresses::default();
        if let Some(s) = &eh_frame {
            bases = bases.set_eh_frame(s.addr);
        }
        if let Some(s) = &eh_frame_hdr {
            bases = bases.set_eh_frame_hdr(s.addr);
        }
        let text = section(&obj, ".text");
        if let Some(s) = &text {
            bases = bases.set_text(s.addr);
        }
        if let Some(s) = section(&obj, ".got") {
            bases = bases.set_got(s.addr);
        }
        let mut cfi = ModuleCfi {
            data,
            arch,
            bases,
            eh_frame,
            eh_frame_hdr,
            eh_index: None,
            debug_frame: None,
            entry: obj.entry(),
            text,
            go,
        };
        if cfi.hdr_table_usable() == Some(false) {
            cfi.eh_index = cfi
                .eh_frame
                .as_ref()
                .map(|s| index(&EhFrame::new(cfi.bytes(&s.file), LittleEndian), &cfi.bases));
        }
        cfi.debug_frame = debug.map(|s| {
            let idx = index(
                &DebugFrame::new(cfi.bytes(&s.file), LittleEndian),
                &cfi.bases,
            );
            (s, idx)
        });
        Some(cfi)
    }

    fn bytes(&self, r: &Range<usize>) -> &'static [u8] {
        let b = self.data.get(r.clone()).unwrap_or_default();
        // SAFETY: borrows the mapping owned by self; gimli's readers never outlive a lookup.
        unsafe { std::slice::from_raw_parts(b.as_ptr(), b.len()) }
    }

    /// Some(true) when `.eh_frame` has a usable search table, Some(false) when it has none.
    fn hdr_table_usable(&self) -> Option<bool> {
        self.eh_frame.as_ref()?;
        let Some(h) = &self.eh_frame_hdr else {
            return Some(false);
        };
        let hdr = EhFrameHdr::new(self.bytes(&h.file), LittleEndian);
        Some(
            hdr.parse(&self.bases, 8)
                .ok()
                .is_some_and(|p| p.table().is_some()),
        )
    }

    /// The frame description covering module address `addr`, and whether it is `.debug_frame`'s.
    fn fde(&self, addr: u64) -> Option<(Fde, bool)> {
        if let Some(eh) = &self.eh_frame {
            let frame = EhFrame::new(self.bytes(&eh.file), LittleEndian);
            let fde = match (&self.eh_frame_hdr, &self.eh_index) {
                (_, Some(idx)) => by_index(&frame, &self.bases, idx, addr),
                (Some(h), None) => {
                    let hdr = EhFrameHdr::new(self.bytes(&h.file), LittleEndian);
                    hdr.parse(&self.bases, 8).ok().and_then(|p| {
                        p.table()?
                            .fde_for_address(&frame, &self.bases, addr, EhFrame::cie_from_offset)
                            .ok()
                    })
                }
                (None, None) => None,
            };
            if let Some(fde) = fde.filter(|f| f.contains(addr)) {
                return Some((fde, false));
            }
        }
        let (s, idx) = self.debug_frame.as_ref()?;
        let frame = DebugFrame::new(self.bytes(&s.file), LittleEndian);
        by_index(&frame, &self.bases, idx, addr).map(|f| (f, true))
    }

    /// The rule at module address `addr`.
    pub fn lookup(&self, addr: u64, ctx: &mut UnwindContext<usize>) -> Lookup {
        let Some((fde, debug_frame)) = self.fde(addr) else {
            if let Some(rule) = self.go.as_ref().and_then(|g| g.rule(addr)) {
                return go_lookup(rule);
            }
            // The program's entry code without CFI (a static musl binary's `_start`): nothing
            // called it, so this is the outermost frame, as glibc's CFI says of its own.
            if (self.entry..self.entry.saturating_add(ENTRY_CODE)).contains(&addr) && addr > 0 {
                return Lookup::Rule(Rule::End);
            }
            return self.clone_gap(addr, ctx).unwrap_or(Lookup::NotCovered);
        };
        match self.row(&fde, debug_frame, addr, ctx) {
            Some(row) => self.rule(&row, debug_frame, fde.is_signal_trampoline()),
            None => Lookup::NotCovered,
        }
    }

    /// The row of `fde` (of `.debug_frame` or `.eh_frame`) in effect at module address `addr`.
    fn row(
        &self,
        fde: &Fde,
        debug_frame: bool,
        addr: u64,
        ctx: &mut UnwindContext<usize>,
    ) -> Option<UnwindTableRow<usize>> {
        if debug_frame {
            let s = &self.debug_frame.as_ref()?.0;
            let frame = DebugFrame::new(self.bytes(&s.file), LittleEndian);
            fde.unwind_info_for_address(&frame, &self.bases, ctx, addr)
                .ok()
                .cloned()
        } else {
            let s = self.eh_frame.as_ref()?;
            let frame = EhFrame::new(self.bytes(&s.file), LittleEndian);
            fde.unwind_info_for_address(&frame, &self.bases, ctx, addr)
                .ok()
                .cloned()
        }
    }

    /// The rule right after a `syscall` instruction that ends its function's CFI (glibc's
    /// `clone` and `clone3` end it there on purpose): the CFI of the code before the syscall, which
    /// changes no stack, marked [`Rule::Frame::clone_gap`]. x86_64 only.
    fn clone_gap(&self, addr: u64, ctx: &mut UnwindContext<usize>) -> Option<Lookup> {
        const SYSCALL: [u8; 2] = [0x0f, 0x05];
        let at = addr.checked_sub(2)?;
        let text = self.text.as_ref().filter(|_| self.arch == Arch::X86_64)?;
        let off = usize::try_from(at.checked_sub(text.addr)?).ok()?;
        let code = self.bytes(&text.file).get(off..off.checked_add(2)?)?;
        if code != SYSCALL {
            return None;
        }
        let (fde, debug_frame) = self.fde(at.checked_sub(1)?)?;
        if fde.end_address() != at || debug_frame {
            return None;
        }
        let row = self.row(&fde, false, at - 1, ctx)?;
        let mut rule = self.rule(&row, false, false);
        let Lookup::Rule(Rule::Frame { clone_gap, .. }) = &mut rule else {
            return None;
        };
        *clone_gap = true;
        Some(rule)
    }

    /// The first address of the code range whose CFI covers module address `addr`: where the
    /// compiler's frame description begins, a function's entry (or of a part of one it split
    /// off, such as a `.cold` block). `None` where no CFI covers `addr`.
    pub fn function_start(&self, addr: u64) -> Option<u64> {
        match self.fde(addr) {
            Some((f, _)) => Some(f.initial_address()),
            None => self.go_function(addr).map(|(_, entry)| entry),
        }
    }

    /// True for a Go binary (one with Go's own table).
    pub fn is_go(&self) -> bool {
        self.go.is_some()
    }

    /// The Go function holding module address `addr` (its name and entry), from a Go binary's
    /// own table: the names of a stripped Go binary.
    pub fn go_function(&self, addr: u64) -> Option<(&'static str, u64)> {
        self.go.as_ref()?.function(addr)
    }

    /// The source file and line of module address `addr` from a Go binary's own table, where it
    /// is its function's own code (not inlined).
    pub fn go_line(&self, addr: u64) -> Option<(&'static str, u32)> {
        self.go.as_ref()?.line(addr)
    }

    /// True when `addr` is in a signal trampoline (`__restore_rt`), whose CFI says so.
    pub fn signal_trampoline(&self, addr: u64) -> bool {
        self.fde(addr)
            .is_some_and(|(f, _)| f.is_signal_trampoline())
    }

    fn rule(&self, row: &UnwindTableRow<usize>, debug_frame: bool, signal: bool) -> Lookup {
        let (sp, fp, ra) = self.arch.dwarf_regs();
        let aux = self.arch.dwarf_aux();
        let expr = |e: &gimli::UnwindExpression<usize>| Expr {
            debug_frame,
            offset: e.offset,
            len: e.length,
        };
        let cfa = match row.cfa() {
            CfaRule::RegisterAndOffset { register, offset } if *register == sp => Cfa::Sp(*offset),
            CfaRule::RegisterAndOffset { register, offset } if *register == fp => Cfa::Fp(*offset),
            CfaRule::RegisterAndOffset { register, offset } if Some(*register) == aux => {
                Cfa::Aux(*offset)
            }
            CfaRule::RegisterAndOffset { .. } => return Lookup::Unsupported,
            CfaRule::Expression(e) => Cfa::Expr(expr(e)),
        };
        let recover = |r: Register, default: Recover| match row.register(r) {
            None => default,
            Some(RegisterRule::SameValue) => Recover::Same,
            Some(RegisterRule::Offset(n)) => Recover::At(n),
            Some(RegisterRule::ValOffset(n)) => Recover::Val(n),
            Some(RegisterRule::Expression(e)) => Recover::AtExpr(expr(&e)),
            Some(RegisterRule::Register(r)) if Some(r) == self.arch.dwarf_arg() => Recover::InArg,
            Some(_) => Recover::Unknown,
        };
        // The return address column: undefined marks the outermost frame. Unmentioned, it is
        // where the call put it (x86_64: at CFA - 8).
        if matches!(row.register(ra), Some(RegisterRule::Undefined)) {
            return Lookup::Rule(Rule::End);
        }
        Lookup::Rule(Rule::Frame {
            cfa,
            ra: recover(ra, self.arch.default_ra()),
            // A callee-saved register the CFI does not mention is unchanged.
            fp: recover(fp, Recover::Same),
            aux: aux.map_or(Recover::Unknown, |r| recover(r, Recover::Same)),
            signal,
            clone_gap: false,
        })
    }

    /// Evaluates a rule's expression for the given stack and instruction pointers, with
    /// `initial` pushed first (the CFA, for a register's rule) and `mem` reading the stack.
    pub fn eval(
        &self,
        e: Expr,
        sp: u64,
        ip: u64,
        initial: Option<u64>,
        mem: &mut dyn FnMut(u64) -> Option<u64>,
    ) -> Option<u64> {
        let sec = if e.debug_frame {
            &self.debug_frame.as_ref()?.0
        } else {
            self.eh_frame.as_ref()?
        };
        let bytes = self.bytes(&sec.file).get(e.offset..e.offset + e.len)?;
        evaluate(bytes, self.arch, sp, ip, initial, mem)
    }
}

/// The rule of a Go table's answer. The frame pointer and rbx are left unknown: Go saves its
/// caller's frame pointer only once its prologue has run, and passes arguments in rbx.
fn go_lookup(rule: GoRule) -> Lookup {
    match rule {
        GoRule::Top => Lookup::Rule(Rule::End),
        GoRule::Frame { cfa, exact_return } => Lookup::Rule(Rule::Frame {
            cfa: Cfa::Sp(cfa),
            ra: Recover::At(-8),
            fp: Recover::Unknown,
            aux: Recover::Unknown,
            signal: exact_return,
            clone_gap: false,
        }),
        GoRule::StackSwitch => Lookup::StackSwitch,
        GoRule::SignalFrame => Lookup::Unsupported,
    }
}

/// The FDE of `idx` covering `addr`.
fn by_index<R: UnwindSection<Slice<'static>>>(
    frame: &R,
    bases: &BaseAddresses,
    idx: &Index,
    addr: u64,
) -> Option<Fde>
where
    R::Offset: gimli::UnwindOffset<usize>,
{
    let i = idx.partition_point(|e| e.0 <= addr).checked_sub(1)?;
    let (start, end, offset) = idx[i];
    if addr < start || addr >= end {
        return None;
    }
    frame
        .fde_from_offset(bases, offset.into(), R::cie_from_offset)
        .ok()
}

mod expr;
#[cfg(test)]
mod tests;
