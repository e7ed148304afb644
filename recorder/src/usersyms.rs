//! User frames named on the writer thread: [`Symbolizer`] names the frames normalized by
//! [`crate::procmaps`] with blazesym (ELF symbols and DWARF where present; a stripped Go binary's
//! from its `.gopclntab`) into the segment's `user_frames` table.
use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Weak},
};

use arrow::{
    array::{ArrayRef, Int32Builder, StringBuilder, UInt32Builder, UInt64Builder},
    record_batch::RecordBatch,
};
use blazesym::symbolize::{self, evict, source::Source, Input, Symbolized};
use flightrec_schemas::Table;

pub use crate::procmaps::{Frame, Module, UserMaps, DWARF_MAX_BYTES};
use flightrec_schemas::unwind::named_at;

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
    cache: HashMap<(u64, u64), Named>,
    /// The modules blazesym was asked about, with the path it knows each by. blazesym keeps a
    /// file mapped and its parsed symbols until told to evict them (also when the path, a
    /// `/proc/self/fd/N`, comes to name another file): a module is evicted once nothing else holds
    /// it, or a recorder beside a build kept every binary that ever ran (hundreds of MB).
    held: HashMap<u64, (Weak<Module>, String)>,
    redact: bool,
}

impl Default for Symbolizer {
    fn default() -> Self {
        Symbolizer::new(false)
    }
}

/// The file offset a frame of `m` at `off` is named by: a return address by the call before it
/// ([`named_at`]), except the signal trampoline's (`__restore_rt`, where a handler returns to):
/// its CFI begins one byte early so that unwinders find it, but the byte before it is no code of
/// it, and the name is the trampoline's own.
fn lookup_offset(m: &Module, off: u64, caller: bool) -> u64 {
    let at = named_at(off, caller);
    let trampoline = || {
        m.cfi()
            .zip(m.virt_offset(at))
            .is_some_and(|(cfi, v)| cfi.signal_trampoline(v))
    };
    if at != off && trampoline() {
        off
    } else {
        at
    }
}

/// The name of the Go function at file offset `off` of `m` (and its source line where the code is
/// the function's own), from the Go runtime's table.
fn go_name(m: &Module, off: u64) -> Option<Named> {
    let at = m.virt_offset(off)?;
    let cfi = m.cfi()?;
    let (name, entry) = cfi.go_function(at)?;
    let line = cfi.go_line(at);
    Some(Named {
        symbol: Some(name.to_string()),
        offset: Some(at - entry),
        file: line.map(|(f, _)| f.to_string()),
        line: line.map(|(_, l)| l),
    })
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
            held: HashMap::new(),
            redact,
        }
    }

    fn name(&mut self, module: &Arc<Module>, offsets: &[u64]) {
        let key = module.id;
        let todo: Vec<u64> = offsets
            .iter()
            .copied()
            .filter(|o| !self.cache.contains_key(&(key, *o)))
            .collect();
        if todo.is_empty() {
            return;
        }
        let path = module.fd_path();
        self.held
            .entry(key)
            .or_insert_with(|| (Arc::downgrade(module), path.clone()));
        let mut elf = symbolize::source::Elf::new(path);
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
                // A stripped Go binary: the runtime's own table names its functions.
                _ => go_name(module, *off).unwrap_or_default(),
            };
            self.cache.insert((key, *off), named);
        }
    }

    /// Drops what is cached of modules no process or frame holds any more. Runs before any
    /// naming: a freed module's path may already name another module's file, whose data this
    /// evicts too (it is re-read when asked for).
    fn evict_gone(&mut self) {
        let gone: Vec<(u64, String)> = self
            .held
            .iter()
            .filter(|(_, (m, _))| m.strong_count() == 0)
            .map(|(id, (_, path))| (*id, path.clone()))
            .collect();
        if gone.is_empty() {
            return;
        }
        for (id, path) in &gone {
            let _ = self
                .inner
                .evict(&symbolize::evict::Evict::Elf(evict::Elf::new(path)));
            self.held.remove(id);
        }
        let ids: HashSet<u64> = gone.iter().map(|g| g.0).collect();
        self.cache.retain(|(m, _), _| !ids.contains(m));
    }

    /// Modules whose symbols are held.
    pub fn modules_held(&self) -> usize {
        self.held.len()
    }

    /// The `user_frames` table of a segment's frames.
    pub fn table(&mut self, frames: &[Frame]) -> (RecordBatch, FrameCounts) {
        self.evict_gone();
        // Where each frame is named (a return address's costs a CFI lookup): once per frame.
        let named_at: Vec<Option<u64>> = frames
            .iter()
            .map(|f| {
                let (m, off) = f.module.as_ref()?;
                Some(lookup_offset(m, *off, f.caller))
            })
            .collect();
        let mut by_module: HashMap<u64, (Arc<Module>, Vec<u64>)> = HashMap::new();
        for (f, at) in frames.iter().zip(&named_at) {
            if let (Some((m, _)), Some(at)) = (&f.module, at) {
                by_module
                    .entry(m.id)
                    .or_insert_with(|| (m.clone(), Vec::new()))
                    .1
                    .push(*at);
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
        let mut function_start = UInt64Builder::new();
        let mut counts = FrameCounts::default();
        for (f, at) in frames.iter().zip(named_at) {
            tgid.append_value(f.tgid);
            addr.append_value(f.addr);
            let named = match (&f.module, at) {
                (Some((m, off)), Some(at)) => {
                    if self.redact {
                        module.append_value(m.path.rsplit('/').next().unwrap_or(&m.path));
                    } else {
                        module.append_value(&m.path);
                    }
                    build_id.append_option(m.build_id.as_deref());
                    file_offset.append_value(*off);
                    virt_offset.append_option(m.virt_offset(*off));
                    // Named at the call for a return address; the offset stays the address's.
                    let mut named = self.cache.get(&(m.id, at)).cloned().unwrap_or_default();
                    named.offset = named.offset.map(|o| o + (off - at));
                    // Without a symbol, where its code begins (samples anywhere in one
                    // stripped function then share a name).
                    function_start.append_option(
                        named
                            .symbol
                            .is_none()
                            .then(|| m.cfi()?.function_start(m.virt_offset(at)?))
                            .flatten(),
                    );
                    named
                }
                _ => {
                    module.append_option(f.label.as_deref());
                    build_id.append_null();
                    file_offset.append_null();
                    virt_offset.append_null();
                    function_start.append_null();
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
            Arc::new(function_start.finish()),
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

    /// The symbol of the first row of a `user_frames` batch.
    fn first_symbol(batch: &RecordBatch) -> String {
        batch
            .column_by_name("symbol")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap()
            .value(0)
            .to_string()
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
        let sym = first_symbol(&batch);
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

    #[test]
    fn a_return_address_is_named_by_the_call_before_it() {
        // The first byte of a function as a return address (the caller ended with a call that
        // never returns) belongs to whatever lies before it, never to the function.
        let me = std::process::id() as i32;
        let addr = flightrec_usersyms_test_marker as *const () as u64;
        let mut maps = UserMaps::default();
        maps.cover(me, &[addr]);
        let leaf = maps.frame(me, addr);
        let caller = Frame {
            caller: true,
            ..leaf.clone()
        };
        let mut s = Symbolizer::default();
        let (batch, _) = s.table(&[leaf, caller]);
        use arrow::array::{Array, AsArray};
        let symbols = batch.column_by_name("symbol").unwrap().as_string::<i32>();
        assert!(symbols.value(0).contains("flightrec_usersyms_test_marker"));
        assert!(
            symbols.is_null(1) || !symbols.value(1).contains("flightrec_usersyms_test_marker"),
            "{:?}",
            symbols.value(1)
        );
    }

    #[test]
    fn a_module_nothing_holds_is_evicted_and_named_again_when_it_returns() {
        let me = std::process::id() as i32;
        let addr = flightrec_usersyms_test_marker as *const () as u64;
        let mut s = Symbolizer::default();
        let name = |s: &mut Symbolizer| {
            let mut maps = UserMaps::default();
            maps.cover(me, &[addr]);
            let (batch, _) = s.table(&[maps.frame(me, addr)]);
            assert_eq!(s.modules_held(), 1);
            first_symbol(&batch)
        };
        assert!(name(&mut s).contains("flightrec_usersyms_test_marker"));
        // The mappings and frames that held the module are gone: the next table lets it go.
        s.table(&[]);
        assert_eq!(s.modules_held(), 0);
        assert!(s.cache.is_empty(), "its names went with it");
        assert!(name(&mut s).contains("flightrec_usersyms_test_marker"));
    }
}
