//! Per-segment lookups: task names (`tasks`), stacks (`stacks`) and kernel symbols
//! (`kernel_symbols`). Ids and names are only meaningful inside their own segment.
use std::{collections::HashMap, fmt::Write, sync::Arc};

use arrow::datatypes::{Int32Type, UInt32Type, UInt64Type};
use flightrec_schemas::Table;

use crate::{
    capture::{Result, Segment},
    columns::{bools, opt, prim, strings},
};

/// Task names of one segment.
#[derive(Default)]
pub struct Tasks {
    by_tid: HashMap<i32, (Option<i32>, Arc<str>)>,
    unknown: Arc<str>,
}

impl Tasks {
    /// Reads a segment's `tasks` table.
    pub fn load(seg: &Segment) -> Result<Tasks> {
        let mut by_tid = HashMap::new();
        for b in seg.read(Table::Tasks, &["tid", "tgid", "comm"])? {
            let (tid, tgid, comm) = (
                prim::<Int32Type>(&b, "tid"),
                prim::<Int32Type>(&b, "tgid"),
                strings(&b, "comm"),
            );
            for i in 0..b.num_rows() {
                by_tid.insert(tid.value(i), (opt(tgid, i), Arc::from(comm.value(i))));
            }
        }
        Ok(Tasks {
            by_tid,
            unknown: Arc::from("[unknown]"),
        })
    }

    /// The thread's name.
    pub fn comm(&self, tid: i32) -> &Arc<str> {
        self.by_tid.get(&tid).map(|t| &t.1).unwrap_or(&self.unknown)
    }

    /// The thread's process, when known.
    pub fn tgid(&self, tid: i32) -> Option<i32> {
        self.by_tid.get(&tid).and_then(|t| t.0)
    }
}

/// Stacks and kernel symbol names of one segment.
#[derive(Default)]
pub struct Stacks {
    frames: HashMap<u32, Vec<u64>>,
    ksyms: HashMap<u64, String>,
}

impl Stacks {
    /// Reads a segment's `stacks` and `kernel_symbols` tables.
    pub fn load(seg: &Segment) -> Result<Stacks> {
        let mut frames = HashMap::new();
        for b in seg.read(Table::Stacks, &["stack_id", "kernel", "frames"])? {
            let id = prim::<UInt32Type>(&b, "stack_id");
            let _kernel = bools(&b, "kernel");
            let lists = b
                .column_by_name("frames")
                .expect("projected")
                .as_any()
                .downcast_ref::<arrow::array::ListArray>()
                .expect("checked list type");
            for i in 0..b.num_rows() {
                let v = lists.value(i);
                let v = v
                    .as_any()
                    .downcast_ref::<arrow::array::UInt64Array>()
                    .expect("list of u64");
                frames.insert(id.value(i), v.values().to_vec());
            }
        }
        let mut ksyms = HashMap::new();
        for b in seg.read(Table::KernelSymbols, &["addr", "symbol"])? {
            let (addr, sym) = (prim::<UInt64Type>(&b, "addr"), strings(&b, "symbol"));
            for i in 0..b.num_rows() {
                ksyms.insert(addr.value(i), sym.value(i).to_string());
            }
        }
        Ok(Stacks { frames, ksyms })
    }

    /// The folded form `comm;user root..leaf;kernel root..leaf`, as offcputime -f and
    /// stackcollapse print it. Unknown user frames print as addresses.
    pub fn fold(&self, comm: &str, kstack: Option<u32>, ustack: Option<u32>) -> String {
        let mut s = String::with_capacity(256);
        s.push_str(comm);
        if let Some(f) = ustack.and_then(|id| self.frames.get(&id)) {
            for addr in f.iter().rev() {
                let _ = write!(s, ";0x{addr:x}");
            }
        }
        if let Some(f) = kstack.and_then(|id| self.frames.get(&id)) {
            for addr in f.iter().rev() {
                match self.ksyms.get(addr) {
                    Some(name) => {
                        s.push(';');
                        s.push_str(name);
                    }
                    None => {
                        let _ = write!(s, ";0x{addr:x}");
                    }
                }
            }
        }
        s
    }
}
