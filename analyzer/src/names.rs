//! Per-segment lookups: task names (`tasks`), stacks (`stacks`) and kernel symbols
//! (`kernel_symbols`). Ids and names are only meaningful inside their own segment.
use std::{collections::HashMap, fmt::Write, path::Path, sync::Arc};

use arrow::{
    array::Array,
    datatypes::{Int32Type, UInt32Type, UInt64Type},
};
use flightrec_schemas::{unwind::Truncation, Table};

use crate::{
    capture::{Result, Segment},
    columns::{opt, prim, strings},
};

/// Task names of one segment.
#[derive(Default)]
pub struct Tasks {
    by_tid: rustc_hash::FxHashMap<i32, (Option<i32>, Arc<str>)>,
    /// The cgroup of each task's process, where recorded.
    cgroups: rustc_hash::FxHashMap<i32, Arc<str>>,
    unknown: Arc<str>,
}

impl Tasks {
    /// Reads a segment's `tasks` table.
    pub fn load(seg: &Segment) -> Result<Tasks> {
        let mut by_tid = rustc_hash::FxHashMap::default();
        let mut cgroups = rustc_hash::FxHashMap::default();
        let with_cgroup = seg.has_column(Table::Tasks, "cgroup");
        let cols: &[&str] = if with_cgroup {
            &["tid", "tgid", "comm", "cgroup"]
        } else {
            &["tid", "tgid", "comm"]
        };
        for b in seg.read(Table::Tasks, cols)? {
            let (tid, tgid, comm) = (
                prim::<Int32Type>(&b, "tid"),
                prim::<Int32Type>(&b, "tgid"),
                strings(&b, "comm"),
            );
            let cgroup = with_cgroup.then(|| strings(&b, "cgroup"));
            for i in 0..b.num_rows() {
                by_tid.insert(tid.value(i), (opt(tgid, i), Arc::from(comm.value(i))));
                if let Some(c) = cgroup.as_ref().filter(|c| c.is_valid(i)) {
                    cgroups.insert(tid.value(i), Arc::from(c.value(i)));
                }
            }
        }
        Ok(Tasks {
            by_tid,
            cgroups,
            unknown: Arc::from("[unknown]"),
        })
    }

    /// The cgroup of the thread's process, where recorded.
    pub fn cgroup(&self, tid: i32) -> Option<&str> {
        self.cgroups
            .get(&tid)
            .or_else(|| self.tgid(tid).and_then(|g| self.cgroups.get(&g)))
            .map(|c| &**c)
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

/// Stacks and the names of their frames in one segment.
#[derive(Default)]
pub struct Stacks {
    /// Frames by stack id, the process a user stack belongs to, and whether it is a kernel stack.
    frames: HashMap<u32, (i32, bool, Vec<u64>)>,
    /// Why a user stack stops short, by stack id (whole stacks are absent).
    truncated: HashMap<u32, Truncation>,
    ksyms: HashMap<u64, String>,
    /// User frames by (tgid, address): a symbol, else `[unknown:module!fun_<start>]` with the
    /// start of its code from the module's CFI, else `[unknown:module+0xoffset]`.
    usyms: HashMap<(i32, u64), String>,
    /// User frames by (tgid, address): the module's path and build ID.
    modules: HashMap<(i32, u64), Module>,
}

/// The file a user frame is in: its path and, when the recorder read one, its build ID.
pub type Module = (Arc<str>, Option<Arc<str>>);

/// Frames to look up in separate debug files: build ID -> ((tgid, address), virtual offset).
type DebugLookups = HashMap<String, Vec<((i32, u64), u64)>>;

/// The separate debug file of a build ID under `dir`, where distributions put them.
fn debug_file(dir: &Path, build_id: &str) -> Option<std::path::PathBuf> {
    if build_id.len() < 3 || !build_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let (head, rest) = build_id.split_at(2);
    [
        dir.join(".build-id")
            .join(head)
            .join(format!("{rest}.debug")),
        dir.join(".build-id").join(head).join(rest),
        dir.join(format!("{build_id}.debug")),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// Names frames from separate debug files, by virtual offset (a debug file has no file contents
/// at the recorded file offsets).
fn resymbolize(dir: &Path, wanted: DebugLookups, usyms: &mut HashMap<(i32, u64), String>) {
    use blazesym::symbolize::{source::Source, Input, Symbolized, Symbolizer};
    let symbolizer = Symbolizer::new();
    for (build_id, frames) in wanted {
        let Some(path) = debug_file(dir, &build_id) else {
            continue;
        };
        let mut elf = blazesym::symbolize::source::Elf::new(path);
        elf.debug_syms = true;
        let offsets: Vec<u64> = frames.iter().map(|f| f.1).collect();
        let Ok(named) =
            symbolizer.symbolize(&Source::Elf(elf), Input::VirtOffset(offsets.as_slice()))
        else {
            continue;
        };
        for ((key, _), sym) in frames.iter().zip(named) {
            if let Symbolized::Sym(s) = sym {
                usyms.insert(*key, s.name.to_string());
            }
        }
    }
}

/// The `truncated` column of a segment's stacks (absent from captures made before it existed).
pub fn stack_truncations(seg: &Segment) -> Result<HashMap<u32, Truncation>> {
    let mut out = HashMap::new();
    if !seg.has_column(Table::Stacks, "truncated") {
        return Ok(out);
    }
    for b in seg.read(Table::Stacks, &["stack_id", "truncated"])? {
        let (id, t) = (prim::<UInt32Type>(&b, "stack_id"), strings(&b, "truncated"));
        for i in 0..b.num_rows() {
            if t.is_valid(i) {
                if let Some(reason) = Truncation::from_name(t.value(i)) {
                    out.insert(id.value(i), reason);
                }
            }
        }
    }
    Ok(out)
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

impl Stacks {
    /// Reads a segment's `stacks`, `kernel_symbols` and `user_frames` tables. With `debuginfo`,
    /// user frames the recording host could not name are looked up by build ID in separate debug
    /// files there (`DIR/.build-id/xx/rest.debug`, as distributions install them).
    pub fn load(seg: &Segment, debuginfo: Option<&Path>) -> Result<Stacks> {
        let mut frames = HashMap::new();
        let truncated = stack_truncations(seg)?;
        for b in seg.read(Table::Stacks, &["stack_id", "tgid", "kernel", "frames"])? {
            let id = prim::<UInt32Type>(&b, "stack_id");
            let tgid = prim::<Int32Type>(&b, "tgid");
            let kernel = crate::columns::bools(&b, "kernel");
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
                frames.insert(
                    id.value(i),
                    (tgid.value(i), kernel.value(i), v.values().to_vec()),
                );
            }
        }
        let mut ksyms = HashMap::new();
        for b in seg.read(Table::KernelSymbols, &["addr", "symbol"])? {
            let (addr, sym) = (prim::<UInt64Type>(&b, "addr"), strings(&b, "symbol"));
            for i in 0..b.num_rows() {
                ksyms.insert(addr.value(i), sym.value(i).to_string());
            }
        }
        let mut usyms = HashMap::new();
        let mut modules = HashMap::new();
        // Captures written before user frames were symbolized have no such table: addresses then.
        if seg.dir.join(Table::UserFrames.file_name()).exists() {
            let mut cols = vec![
                "tgid",
                "addr",
                "module",
                "file_offset",
                "symbol",
                "build_id",
            ];
            if debuginfo.is_some() {
                cols.push("virt_offset");
            }
            let with_start = seg.has_column(Table::UserFrames, "function_start");
            if with_start {
                cols.push("function_start");
            }
            // Frames to look up in separate debug files: build ID -> (frame, virtual offset).
            let mut wanted: DebugLookups = HashMap::new();
            // Return addresses are named by the call before them, as the recorder names them.
            let callers: std::collections::HashSet<(i32, u64)> = match debuginfo {
                Some(_) => frames
                    .values()
                    .filter(|(_, kernel, _)| !kernel)
                    .flat_map(|(tgid, _, f)| f.iter().skip(1).map(|a| (*tgid, *a)))
                    .collect(),
                None => Default::default(),
            };
            for b in seg.read(Table::UserFrames, &cols)? {
                let (tgid, addr) = (
                    prim::<Int32Type>(&b, "tgid"),
                    prim::<UInt64Type>(&b, "addr"),
                );
                let (module, symbol) = (strings(&b, "module"), strings(&b, "symbol"));
                let off = prim::<UInt64Type>(&b, "file_offset");
                let build_id = strings(&b, "build_id");
                let start = with_start.then(|| prim::<UInt64Type>(&b, "function_start"));
                let lookup = debuginfo
                    .is_some()
                    .then(|| (build_id.clone(), prim::<UInt64Type>(&b, "virt_offset")));
                let mut paths: HashMap<&str, Module> = HashMap::new();
                for i in 0..b.num_rows() {
                    let key = (tgid.value(i), addr.value(i));
                    if module.is_valid(i) {
                        let m = paths.entry(module.value(i)).or_insert_with(|| {
                            let bid = build_id.is_valid(i).then(|| build_id.value(i).into());
                            (module.value(i).into(), bid)
                        });
                        modules.insert(key, m.clone());
                    }
                    if let (Some((bid, virt)), false) = (&lookup, symbol.is_valid(i)) {
                        if let (true, Some(v)) = (bid.is_valid(i), opt(virt, i)) {
                            let v = flightrec_schemas::unwind::named_at(v, callers.contains(&key));
                            wanted
                                .entry(bid.value(i).to_string())
                                .or_default()
                                .push((key, v));
                        }
                    }
                    let name = if symbol.is_valid(i) {
                        symbol.value(i).to_string()
                    } else if module.is_valid(i) {
                        let m = base_name(module.value(i));
                        match (start.and_then(|s| opt(s, i)), opt(off, i)) {
                            (Some(f), _) => format!("[unknown:{m}!fun_{f:x}]"),
                            (None, Some(o)) => format!("[unknown:{m}+0x{o:x}]"),
                            (None, None) => format!("[unknown:{}]", module.value(i)),
                        }
                    } else {
                        format!("[unknown:0x{:x}]", addr.value(i))
                    };
                    usyms.insert(key, name);
                }
            }
            if let Some(dir) = debuginfo {
                resymbolize(dir, wanted, &mut usyms);
            }
        }
        Ok(Stacks {
            frames,
            truncated,
            ksyms,
            usyms,
            modules,
        })
    }

    /// Every named user frame of the segment, with the module it is in.
    pub fn user_frame_modules(&self) -> impl Iterator<Item = (&str, &Module)> {
        self.modules
            .iter()
            .filter_map(|(k, m)| Some((self.usyms.get(k)?.as_str(), m)))
    }

    /// Every kernel symbol name of the segment.
    pub fn kernel_names(&self) -> impl Iterator<Item = &str> {
        self.ksyms.values().map(String::as_str)
    }

    /// Why user stack `id` stops short, if it does.
    pub fn truncated(&self, id: u32) -> Option<Truncation> {
        self.truncated.get(&id).copied()
    }

    /// The folded form `comm;user root..leaf;kernel root..leaf`, as offcputime -f and
    /// stackcollapse print it. User frames without a symbol print as `[unknown:module!fun_<start>]`
    /// (the start of the code they are in, from the module's CFI) or `[unknown:module+0xoffset]`.
    pub fn fold(&self, comm: &str, kstack: Option<u32>, ustack: Option<u32>) -> String {
        let mut s = String::with_capacity(256);
        s.push_str(comm);
        for id in [ustack, kstack].into_iter().flatten() {
            self.fold_into(&mut s, id);
        }
        s
    }

    /// One stack alone, root first, frames joined by `;` (a cut user stack starts with its
    /// `[truncated: reason]` marker); `None` for an id with neither frames nor a marker.
    pub fn fold_stack(&self, id: u32) -> Option<String> {
        let mut s = String::with_capacity(256);
        self.fold_into(&mut s, id);
        // fold_into puts a separator before every element.
        (!s.is_empty()).then(|| s[1..].to_string())
    }

    /// Appends `;element` for each element of stack `id`.
    fn fold_into(&self, s: &mut String, id: u32) {
        // A cut stack has no root: a marker takes its place, so flame graphs show it apart.
        if let Some(t) = self.truncated(id) {
            let _ = write!(s, ";[truncated: {}]", t.describe());
        }
        if let Some((tgid, kernel, f)) = self.frames.get(&id) {
            for addr in f.iter().rev() {
                let name = if *kernel {
                    self.ksyms.get(addr)
                } else {
                    self.usyms.get(&(*tgid, *addr))
                };
                match name {
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
    }
}
