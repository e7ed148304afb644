//! Kernel symbols from /proc/kallsyms, so kernel frames can be named on any machine.
use std::{fs, sync::Arc};

use arrow::{
    array::{ArrayRef, StringBuilder, UInt64Builder},
    record_batch::RecordBatch,
};
use flightrec_schemas::Table;
use rustc_hash::FxHashMap;

use crate::decode::{Record, Stack};

/// A sorted kernel symbol table.
#[derive(Default)]
pub struct KernelSymbols {
    syms: Vec<(u64, Box<str>, Option<Box<str>>)>,
}

impl KernelSymbols {
    /// Reads /proc/kallsyms. Without privileges the kernel shows zero addresses: then the table is
    /// empty and frames stay addresses.
    pub fn load() -> KernelSymbols {
        fs::read_to_string("/proc/kallsyms")
            .map(|t| Self::parse(&t))
            .unwrap_or_default()
    }

    /// Parses kallsyms text.
    pub fn parse(text: &str) -> KernelSymbols {
        let mut syms = Vec::new();
        for line in text.lines() {
            let mut it = line.split_ascii_whitespace();
            let (Some(addr), Some(ty), Some(name)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            if !matches!(ty, "t" | "T" | "w" | "W") {
                continue;
            }
            let Ok(addr) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            if addr == 0 {
                continue;
            }
            let module = it
                .next()
                .map(|m| m.trim_start_matches('[').trim_end_matches(']').into());
            syms.push((addr, name.into(), module));
        }
        syms.sort_by_key(|s| s.0);
        KernelSymbols { syms }
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.syms.len()
    }

    /// True when no symbols could be read.
    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }

    /// (symbol, offset, module) of an address.
    pub fn resolve(&self, addr: u64) -> Option<(&str, u64, Option<&str>)> {
        let i = self.syms.partition_point(|s| s.0 <= addr).checked_sub(1)?;
        let (start, name, module) = &self.syms[i];
        Some((name, addr - start, module.as_deref()))
    }

    /// The `kernel_symbols` table for the given (address, caller) pairs: a caller is a return
    /// address, named by the call before it ([`flightrec_schemas::unwind::named_at`]); `offset` stays the
    /// address's own distance from the symbol.
    pub fn table(&self, addrs: &[(u64, bool)]) -> RecordBatch {
        let mut a = UInt64Builder::new();
        let mut s = StringBuilder::new();
        let mut o = UInt64Builder::new();
        let mut m = StringBuilder::new();
        for &(addr, caller) in addrs {
            let at = flightrec_schemas::unwind::named_at(addr, caller);
            if let Some((name, off, module)) = self.resolve(at) {
                a.append_value(addr);
                s.append_value(name);
                o.append_value(off + (addr - at));
                m.append_option(module);
            }
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(a.finish()),
            Arc::new(s.finish()),
            Arc::new(o.finish()),
            Arc::new(m.finish()),
        ];
        RecordBatch::try_new(Table::KernelSymbols.schema(), cols).expect("kernel_symbols schema")
    }
}

/// True for a function of the kernel's tracing glue or a BPF program (`bpf_prog_<tag>_<name>` when
/// the kernel names JIT code in kallsyms): what a stack walked from inside a program passes through
/// before the frame the event happened in.
fn is_glue(name: &str) -> bool {
    ["bpf_prog_", "bpf_trace_run", "__bpf_trace_", "__traceiter_"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// Cuts the leading frames of the BPF program and the tracing glue from kernel stacks. A program
/// on a BTF raw tracepoint gets the stack from inside itself (a tracepoint program gets it from
/// where the kernel recorded the event), so its stacks begin with its own frame and the glue that
/// called it: frames of the recorder, not of the task.
#[derive(Default)]
pub struct TracingGlue {
    /// Whether an address is glue, for the few addresses that begin stacks.
    memo: FxHashMap<u64, bool>,
}

impl TracingGlue {
    /// Bounds the memo: stacks begin at a handful of addresses, but nothing else limits them.
    const MEMO_MAX: usize = 4096;

    /// Frames of glue at the start of `frames`.
    pub fn leading(&mut self, ksyms: &KernelSymbols, frames: impl Iterator<Item = u64>) -> usize {
        let mut n = 0;
        for addr in frames {
            if self.memo.len() >= Self::MEMO_MAX {
                self.memo.clear();
            }
            let glue = *self
                .memo
                .entry(addr)
                .or_insert_with(|| ksyms.resolve(addr).is_some_and(|(name, ..)| is_glue(name)));
            if !glue {
                break;
            }
            n += 1;
        }
        n
    }

    /// `rec` with the glue cut from its kernel stack (switches and wakings: the scheduler programs
    /// that may be attached as BTF raw tracepoints).
    pub fn trim<'a>(&mut self, ksyms: &KernelSymbols, rec: Record<'a>) -> Record<'a> {
        let mut cut = |s: Stack<'a>| match s {
            Stack::Frames(b) => {
                let n = self.leading(ksyms, s.frames());
                Stack::Frames(&b[(n * 8).min(b.len())..])
            }
            e => e,
        };
        match rec {
            Record::Switch(e, k, u) => Record::Switch(e, cut(k), u),
            Record::Waking(e, k, u) => Record::Waking(e, cut(k), u),
            rec => rec,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_to_the_enclosing_function() {
        let k = KernelSymbols::parse(
            "ffffffff81000000 T _stext\nffffffff81000100 t schedule\nffffffff81000200 D data_sym\n\
             ffffffffc0000000 t ext4_foo\t[ext4]\n",
        );
        assert_eq!(
            k.resolve(0xffffffff81000150),
            Some(("schedule", 0x50, None))
        );
        assert_eq!(
            k.resolve(0xffffffffc0000010),
            Some(("ext4_foo", 0x10, Some("ext4")))
        );
        assert_eq!(k.resolve(0x1000), None);
        assert_eq!(
            k.table(&[(0xffffffff81000150, false), (0x1000, false)])
                .num_rows(),
            1
        );
    }

    #[test]
    fn a_return_address_is_named_by_its_call() {
        // `do_exit_ish` ends with a call that never returns: its return address is where
        // `next_fn` starts.
        let k =
            KernelSymbols::parse("ffffffff81000100 t do_exit_ish\nffffffff81000120 T next_fn\n");
        let t = k.table(&[(0xffffffff81000120, true), (0xffffffff81000120, false)]);
        use arrow::{array::AsArray, datatypes::UInt64Type};
        let names = t.column_by_name("symbol").unwrap().as_string::<i32>();
        let offsets = t
            .column_by_name("offset")
            .unwrap()
            .as_primitive::<UInt64Type>();
        assert_eq!((names.value(0), offsets.value(0)), ("do_exit_ish", 0x20));
        // Where a thread was (a sample's first frame) is named by itself.
        assert_eq!((names.value(1), offsets.value(1)), ("next_fn", 0));
    }

    #[test]
    fn the_programs_and_the_tracing_glue_are_cut_from_the_start_of_kernel_stacks() {
        let k = KernelSymbols::parse(
            "ffffffff81000100 t __schedule\nffffffff81000200 T schedule\n\
             ffffffff81000300 t __bpf_trace_sched_switch\nffffffff81000400 T bpf_trace_run4\n\
             ffffffffc0001000 t bpf_prog_0123456789abcdef_sched_switch_btf\t[bpf]\n",
        );
        let mut glue = TracingGlue::default();
        let raw = [
            0xffffffffc0001010u64,
            0xffffffff81000420,
            0xffffffff81000310,
            0xffffffff81000130,
            0xffffffff81000208,
        ];
        assert_eq!(glue.leading(&k, raw.into_iter()), 3);
        // A tracepoint program's stack starts where the event happened: nothing is cut, and glue
        // deeper in a stack is never cut.
        assert_eq!(glue.leading(&k, raw[3..].iter().copied()), 0);
        let odd = [0xffffffff81000130, 0xffffffff81000420];
        assert_eq!(glue.leading(&k, odd.into_iter()), 0);
        let rec = crate::decode::tests::switch_record(1, 2, 1, &raw, 0);
        let Record::Switch(_, ks, _) = glue.trim(&k, crate::decode::decode(&rec).unwrap()) else {
            panic!("a switch");
        };
        assert_eq!(ks.frames().collect::<Vec<_>>(), raw[3..]);
    }
}
