//! Kernel symbols from /proc/kallsyms, so kernel frames can be named on any machine.
use std::{fs, sync::Arc};

use arrow::{
    array::{ArrayRef, StringBuilder, UInt64Builder},
    record_batch::RecordBatch,
};
use flightrec_schemas::Table;

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

    /// The `kernel_symbols` table for the given addresses.
    pub fn table(&self, addrs: &[u64]) -> RecordBatch {
        let mut a = UInt64Builder::new();
        let mut s = StringBuilder::new();
        let mut o = UInt64Builder::new();
        let mut m = StringBuilder::new();
        for &addr in addrs {
            if let Some((name, off, module)) = self.resolve(addr) {
                a.append_value(addr);
                s.append_value(name);
                o.append_value(off);
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
        assert_eq!(k.table(&[0xffffffff81000150, 0x1000]).num_rows(), 1);
    }
}
