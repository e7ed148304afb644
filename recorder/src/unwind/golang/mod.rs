//! Go binaries' own unwind tables: the runtime's `.gopclntab` (Go 1.18 and later), which Go keeps
//! in every binary, stripped or not, for its own tracebacks and garbage collector. Go emits no
//! `.eh_frame`, and stripped builds (`-ldflags=-s -w`, Debian's packages) no `.debug_frame`
//! either; without this table every Go frame was cut as code without CFI.
//!
//! For each function the table holds its entry, its name, flags, and a table of the stack
//! pointer's offset from the entry's at each instruction (`pcsp`). On x86_64 the caller's stack
//! pointer (the CFA) is then `sp + offset + 8` and the return address is at CFA - 8, exact at every
//! instruction: the same rule the Go runtime's own traceback runs. The layout read here is the
//! runtime's `pcHeader` and `_func` (`runtime/symtab.go`, `runtime/runtime2.go`); no crate reads
//! the `pcsp` tables (those that parse `.gopclntab` recover names only).
use std::ops::Range;

use object::{Object, ObjectSection};

/// Function flags (`abi.FuncFlag`).
const TOPFRAME: u8 = 1 << 0;
const SPWRITE: u8 = 1 << 1;

/// What the table says of one code address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoRule {
    /// The outermost frame of a stack (`runtime.goexit` under every goroutine, `runtime.mstart`
    /// and `runtime.rt0_go` under the threads' system stacks).
    Top,
    /// A frame whose caller's stack pointer is `sp + cfa`; the return address is at CFA - 8.
    /// `exact_return`: the return address is the instruction a signal interrupted, not one after
    /// a call (`runtime.asyncPreempt`, which the runtime's preemption signal makes a function call).
    Frame { cfa: i64, exact_return: bool },
    /// Code that moves the stack pointer to another stack (the runtime's switches to a thread's
    /// system stack: `systemstack`, `mcall`, `morestack`, the vDSO calls): the frames it came from
    /// are on a stack this walk has no pointer into.
    StackSwitch,
    /// The signal return trampoline: the kernel's signal frame, whose layout Go's table does not
    /// describe.
    SignalFrame,
}

/// One function of the table.
#[derive(Clone, Copy, Debug)]
struct Func {
    /// Entry address (the module's own).
    entry: u64,
    /// Offset of its `_func` in the function table.
    at: usize,
}

/// Offsets of the `_func` fields read.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// `flag` (after `funcID`).
    flag: usize,
    /// Size of the fixed part, which the `pcdata` table offsets follow.
    fixed: usize,
}

/// `_func` fields: offsets of the `pcsp`, `pcfile` and `pcln` tables, `npcdata`, `cuOffset`.
const PCSP: usize = 16;
const PCFILE: usize = 20;
const PCLN: usize = 24;
const NPCDATA: usize = 28;
const CU_OFFSET: usize = 32;
/// The `pcdata` table giving the index in the function's inline tree (-1: not inlined code).
const PCDATA_INL_TREE_INDEX: usize = 2;

/// A `.gopclntab` section.
pub struct GoTable<'a> {
    data: &'a [u8],
    text_start: u64,
    funcnames: usize,
    cutab: usize,
    filetab: usize,
    pctab: usize,
    /// Where the function table (`functab` then the `_func`s) begins.
    pcln: usize,
    nfunc: usize,
    layout: Layout,
}

impl std::fmt::Debug for GoTable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoTable")
            .field("functions", &self.nfunc)
            .field("text_start", &self.text_start)
            .finish()
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// An unsigned LEB128 varint of at most 32 bits (the runtime's `readvarint`), and its length.
fn varint(b: &[u8]) -> Option<(u32, usize)> {
    let mut v: u32 = 0;
    for (i, byte) in b.iter().take(5).enumerate() {
        v |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

impl<'a> GoTable<'a> {
    /// The table of an ELF file: the `.gopclntab` section (`.data.rel.ro.gopclntab` in a
    /// position-independent build); in an externally linked build, where the host linker merged it
    /// into `.data.rel.ro` (Docker's CLI), the header found there whose text start lies in `.text`.
    /// Only files with Go's build information are searched.
    pub fn find(obj: &object::File<'a>) -> Option<GoTable<'a>> {
        let data = |name: &str| obj.section_by_name(name)?.data().ok();
        if let Some(t) = [".gopclntab", ".data.rel.ro.gopclntab"]
            .into_iter()
            .find_map(|n| GoTable::parse(data(n)?))
        {
            return Some(t);
        }
        obj.section_by_name(".go.buildinfo")?;
        let text = obj.section_by_name(".text")?;
        let text = text.address()..text.address() + text.size();
        let rel_ro = data(".data.rel.ro")?;
        // The table is 32-byte aligned; its magic and fixed header bytes start the search.
        (0..rel_ro.len().saturating_sub(64))
            .step_by(32)
            .filter(|&at| {
                matches!(u32_at(rel_ro, at), Some(0xffff_fff0 | 0xffff_fff1))
                    && rel_ro.get(at + 4..at + 8) == Some(&[0, 0, 1, 8])
                    && u64_at(rel_ro, at + 24).is_some_and(|t| text.contains(&t))
            })
            .find_map(|at| GoTable::parse(&rel_ro[at..]))
    }

    /// Reads the table from the section's bytes; `None` for a layout other than Go 1.18's and
    /// later on a 64-bit, byte-quantum architecture, or offsets outside the section.
    pub fn parse(data: &'a [u8]) -> Option<GoTable<'a>> {
        let magic = u32_at(data, 0)?;
        let layout = match magic {
            // Go 1.18 and 1.19.
            0xffff_fff0 => Layout {
                flag: 37,
                fixed: 40,
            },
            // Go 1.20 and later: `startLine` added before `funcID`.
            0xffff_fff1 => Layout {
                flag: 41,
                fixed: 44,
            },
            _ => return None,
        };
        let (min_lc, ptr_size) = (*data.get(6)?, *data.get(7)?);
        if min_lc != 1 || ptr_size != 8 {
            return None;
        }
        let word = |i: usize| -> Option<usize> { usize::try_from(u64_at(data, 8 + 8 * i)?).ok() };
        let nfunc = word(0)?;
        let text_start = u64_at(data, 24)?;
        let (funcnames, cutab, filetab) = (word(3)?, word(4)?, word(5)?);
        let (pctab, pcln) = (word(6)?, word(7)?);
        let end = pcln.checked_add(nfunc.checked_add(1)?.checked_mul(8)?)?;
        if nfunc == 0 || end > data.len() || funcnames > data.len() || pctab > data.len() {
            return None;
        }
        Some(GoTable {
            data,
            text_start,
            funcnames,
            cutab,
            filetab,
            pctab,
            pcln,
            nfunc,
            layout,
        })
    }

    /// The `functab` entry `i`: (entry offset from the text start, `_func` offset).
    fn functab(&self, i: usize) -> Option<(u32, u32)> {
        let at = self.pcln + 8 * i;
        Some((u32_at(self.data, at)?, u32_at(self.data, at + 4)?))
    }

    /// The function holding module address `addr`, and its code range.
    fn func(&self, addr: u64) -> Option<(Func, Range<u64>)> {
        let off = u32::try_from(addr.checked_sub(self.text_start)?).ok()?;
        // The last entry holds the end of the text.
        let (mut lo, mut hi) = (0, self.nfunc);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.functab(mid + 1)?.0 <= off {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let (start, funcoff) = self.functab(lo)?;
        let (end, _) = self.functab(lo + 1)?;
        if off < start || off >= end {
            return None;
        }
        let f = Func {
            entry: self.text_start.checked_add(u64::from(start))?,
            at: self.pcln.checked_add(funcoff as usize)?,
        };
        Some((f, f.entry..self.text_start.checked_add(u64::from(end))?))
    }

    fn field(&self, f: Func, at: usize) -> Option<u32> {
        u32_at(self.data, f.at.checked_add(at)?)
    }

    fn name_of(&self, f: Func) -> Option<&'a str> {
        self.string(self.funcnames, self.field(f, 4)? as usize)
    }

    /// The NUL-terminated string at `at` of the table at `base`.
    fn string(&self, base: usize, at: usize) -> Option<&'a str> {
        let rest = self.data.get(base.checked_add(at)?..)?;
        let len = rest.iter().position(|b| *b == 0)?;
        std::str::from_utf8(&rest[..len]).ok()
    }

    /// The value of the `pcsp` table of `f` at `addr`: the stack pointer's offset from its value
    /// at the entry.
    fn sp_offset(&self, f: Func, addr: u64) -> Option<i64> {
        self.pc_value(f, self.field(f, PCSP)?, addr)
    }

    /// The value at `addr` of the table of `f` at `table` in `pctab` (the runtime's `pcvalue`):
    /// pairs of a value change (zig-zag) and a code length, as varints.
    fn pc_value(&self, f: Func, table: u32, addr: u64) -> Option<i64> {
        if table == 0 {
            return None;
        }
        let mut p = self.data.get(self.pctab.checked_add(table as usize)?..)?;
        let (mut pc, mut val, mut first) = (f.entry, -1i64, true);
        // A table is a few bytes per stack change; a bound keeps a damaged one from running on.
        for _ in 0..100_000 {
            let (uv, n) = varint(p)?;
            if uv == 0 && !first {
                return None;
            }
            first = false;
            val += i64::from((uv >> 1) as i32 ^ -((uv & 1) as i32));
            p = p.get(n..)?;
            let (pcdelta, n) = varint(p)?;
            p = p.get(n..)?;
            pc = pc.checked_add(u64::from(pcdelta))?;
            if addr < pc {
                return Some(val);
            }
        }
        None
    }

    /// The rule at module address `addr` (a return address already moved back into its call);
    /// `None` where no Go function is.
    pub fn rule(&self, addr: u64) -> Option<GoRule> {
        let (f, range) = self.func(addr)?;
        // A return address one past a function's end leads to the next one's entry: the kernel's
        // signal frame returns to the trampoline's first instruction.
        if addr.checked_add(1) == Some(range.end) {
            let next = self.func(range.end).and_then(|(n, _)| self.name_of(n));
            if next.is_some_and(|n| n.starts_with("runtime.sigreturn")) {
                return Some(GoRule::SignalFrame);
            }
        }
        let flag = *self.data.get(f.at.checked_add(self.layout.flag)?)?;
        if flag & TOPFRAME != 0 {
            return Some(GoRule::Top);
        }
        if flag & SPWRITE != 0 {
            return Some(GoRule::StackSwitch);
        }
        let off = self.sp_offset(f, addr)?;
        if off < 0 {
            return None;
        }
        Some(GoRule::Frame {
            cfa: off + 8,
            exact_return: self.name_of(f) == Some("runtime.asyncPreempt"),
        })
    }

    /// The source file and line of module address `addr`, where it is the function's own code:
    /// code the compiler inlined there is another function's, which the table's inline tree would
    /// name (not read), so it has none.
    pub fn line(&self, addr: u64) -> Option<(&'a str, u32)> {
        let (f, _) = self.func(addr)?;
        if self.field(f, NPCDATA)? as usize > PCDATA_INL_TREE_INDEX {
            let at = self.layout.fixed + 4 * PCDATA_INL_TREE_INDEX;
            let table = self.field(f, at)?;
            if table != 0 && self.pc_value(f, table, addr)? != -1 {
                return None;
            }
        }
        let file = u32::try_from(self.pc_value(f, self.field(f, PCFILE)?, addr)?).ok()?;
        let line = u32::try_from(self.pc_value(f, self.field(f, PCLN)?, addr)?).ok()?;
        let cu = self.field(f, CU_OFFSET)?.checked_add(file)? as usize;
        let at = self.cutab.checked_add(cu.checked_mul(4)?)?;
        let name_at = u32_at(self.data, at).filter(|o| *o != u32::MAX)?;
        Some((self.string(self.filetab, name_at as usize)?, line))
    }

    /// The function holding module address `addr`: its name and entry.
    pub fn function(&self, addr: u64) -> Option<(&'a str, u64)> {
        let (f, _) = self.func(addr)?;
        Some((self.name_of(f)?, f.entry))
    }
}

#[cfg(test)]
mod tests;
