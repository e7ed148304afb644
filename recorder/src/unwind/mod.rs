//! User stacks made whole on the recording host, where the modules are held open.
//!
//! Each stack event carries the kernel's frame-pointer walk, the task's user registers and a copy
//! of its user stack from `sp` up. [`Unwinder::unwind`] steps over the frames with the modules'
//! CFI ([`cfi`]) on that copy and splices the frame-pointer walk on where it can be confirmed
//! ([`walk`]). The interface is narrow (registers, stack bytes and the process's modules in;
//! frames and how they were obtained out), so the walk is tested without a kernel.
//!
//! The copy is as long as the thread's stack when its top is known: when the first stack of a
//! thread comes out cut short by the copy, the top of its stack (from /proc) goes into the
//! kernel's `STACK_TOPS` map, and its later events copy the whole stack (up to 32 KiB). Frames
//! always come from the event's own copy.
pub mod cfi;
pub mod golang;
mod memo;
pub mod walk;

use std::collections::HashSet;

use aya::maps::{HashMap as BpfHashMap, MapData};
use flightrec_common::{UserRegs, REGS_VALID, STACK_TOP_GO};
use flightrec_schemas::unwind::{named_at, Truncation};
use gimli::UnwindContext;

pub use self::cfi::{Arch, ModuleCfi};
use self::{
    cfi::{Expr, Lookup},
    memo::Memo,
    walk::{walk, Input, Regs, Rules, Step, Walk},
};
use crate::{decode::UserStack, procmaps::UserMaps};

/// Counters of the unwinder's work, for the status line and the benchmarks.
#[derive(Clone, Copy, Debug, Default)]
pub struct UnwindStats {
    /// Stacks unwound.
    pub stacks: u64,
    /// Of those, answered from the cache of identical inputs.
    pub cached: u64,
    /// Threads whose stack top was learned.
    pub tops_learned: u64,
}

/// Unwinds the user stacks of events (on the drain thread).
pub struct Unwinder {
    ctx: Box<UnwindContext<usize>>,
    /// Rules by (module id, module address).
    rules: Memo<(u64, u64), Step>,
    /// Results by a hash of everything the walk reads: the walk is a function of its inputs.
    walks: Memo<u128, Walk>,
    tops: Option<BpfHashMap<MapData, u32, u64>>,
    /// Threads whose top was looked for (found or not).
    tried: HashSet<i32>,
    /// Processes found running Go code, marked in the kernel's map by their main thread's id.
    go: HashSet<i32>,
    /// Events carry stack copies (`--stack-copy` is not 0): an empty one is unreadable memory.
    copies: bool,
    /// What it did.
    pub stats: UnwindStats,
}

/// Entries of a generation of the walk cache (at most two are held): a walk is about 150 bytes,
/// so about 5 MiB at most.
const WALKS_GENERATION: usize = 1 << 14;
/// Entries of a generation of the rule cache: about 40 bytes each.
const RULES_GENERATION: usize = 1 << 15;

impl Unwinder {
    /// An unwinder; `tops` is the kernel's map of stack tops (none in tests); `copies` whether
    /// events carry stack copies (frame pointers only without).
    pub fn new(tops: Option<BpfHashMap<MapData, u32, u64>>, copies: bool) -> Unwinder {
        Unwinder {
            copies,
            ctx: Box::new(UnwindContext::new()),
            rules: Memo::new(RULES_GENERATION),
            walks: Memo::new(WALKS_GENERATION),
            tops,
            tried: HashSet::new(),
            go: HashSet::new(),
            stats: UnwindStats::default(),
        }
    }

    /// The user stack of an event at `ts` of thread `tid` of process `tgid`; `None` when the task
    /// has no user context (a kernel thread).
    pub fn unwind(
        &mut self,
        maps: &mut UserMaps,
        tgid: i32,
        tid: i32,
        ts: u64,
        user: &UserStack<'_>,
    ) -> Option<Walk> {
        let chain: Vec<u64> = user.frames.frames().collect();
        let regs = (user.regs.flags & REGS_VALID != 0).then_some(Regs {
            ip: user.regs.ip,
            sp: user.regs.sp,
            fp: user.regs.fp,
            aux: user.regs.aux,
            arg: user.regs.arg,
        });
        if regs.is_none() && chain.is_empty() {
            return None;
        }
        self.stats.stacks += 1;
        // The same inputs under the same mappings walk the same way: most stacks repeat.
        let key = |maps: &UserMaps| {
            input_key(tgid, maps.generation(tgid), &user.regs, user.window, &chain)
        };
        if let Some(w) = self.walks.get(&key(maps)) {
            if maps.describes(tgid, ts) {
                self.stats.cached += 1;
                return Some(w.clone());
            }
        }
        if let Some(r) = regs {
            maps.cover(tgid, &[r.ip]);
        }
        let key = key(maps);
        let input = Input {
            regs,
            window: user.window,
            fp_chain: &chain,
            copied: self.copies,
        };
        let result = walk(&input, &mut self.rules_of(maps, tgid));
        // Mappings read after the process exec'd (the drain runs behind the events) describe its
        // new program, not this event's: nothing of the stack can be placed. So also when the
        // task's own instruction pointer is in none of its mappings (read again for it): they were
        // read while it exec'd, after the kernel switched its memory and before it reported the
        // exec (a vfork child's event in its parent's code, placed in the new program's maps).
        let leaf_unmapped = result.truncated == Some(Truncation::NoCfi)
            && result.frames.len() == 1
            && maps.find(tgid, result.frames[0]).is_none();
        if !maps.describes(tgid, ts) || leaf_unmapped {
            return Some(Walk {
                frames: Vec::new(),
                method: result.method,
                truncated: Some(Truncation::Exec),
            });
        }
        self.walks.insert(key, result.clone());
        // A Go process's threads copy their goroutine's stack from here on, all of it: known by
        // its leaf, or by any frame once a copy fell short (the leaf may be C code, through cgo).
        let short = result.truncated == Some(Truncation::StackCopy);
        if !self.go.contains(&tgid) {
            let frames = if short {
                &result.frames[..]
            } else {
                result.frames.get(..1).unwrap_or_default()
            };
            if runs_go(maps, tgid, frames) {
                self.mark_go(tgid, tid);
            }
        }
        if short && !self.go.contains(&tgid) {
            if let Some(r) = regs {
                self.learn_top(maps, tgid, tid, r.sp);
            }
        }
        Some(result)
    }

    fn rules_of<'a>(&'a mut self, maps: &'a mut UserMaps, tgid: i32) -> ProcessRules<'a> {
        ProcessRules {
            maps,
            tgid,
            rules: &mut self.rules,
            ctx: &mut self.ctx,
            rescanned: false,
        }
    }

    /// Records where thread `tid`'s stack ends in the kernel's map, so later events copy all of it:
    /// for the main thread the stack's start at exec (`startstack` in /proc/<pid>/stat: every
    /// frame lies below it), for another thread the end of the mapping its stack pointer is in
    /// (its stack block, whose top also holds its thread descriptor and TLS). Once per thread.
    fn learn_top(&mut self, maps: &UserMaps, tgid: i32, tid: i32, sp: u64) {
        if self.tops.is_none() || !self.tried.insert(tid) {
            return;
        }
        let top = if tid == tgid {
            procfs::process::Process::new(tgid)
                .and_then(|p| p.stat())
                .ok()
                .map(|s| s.startstack)
        } else {
            maps.find(tgid, sp).map(|m| m.end)
        };
        let Some(top) = top.filter(|t| *t > sp) else {
            return;
        };
        if let Some(map) = self.tops.as_mut() {
            if map.insert(tid as u32, top, 0).is_ok() {
                self.stats.tops_learned += 1;
            }
        }
    }

    /// Marks process `tgid` as running Go in the kernel's map ([`STACK_TOP_GO`]: a thread running
    /// Go is on its goroutine's stack, wherever that is), under its main thread's id (which the
    /// kernel's programs look up for threads without an entry of their own) and the thread `tid`
    /// that showed it.
    fn mark_go(&mut self, tgid: i32, tid: i32) {
        let Some(map) = self.tops.as_mut() else {
            return;
        };
        self.go.insert(tgid);
        for t in [tgid, tid] {
            if map.insert(t as u32, STACK_TOP_GO, 0).is_ok() && self.tried.insert(t) {
                self.stats.tops_learned += 1;
            }
        }
    }

    /// The thread exited, or exec'd (a new stack): its stack top goes, and its id may be reused.
    pub fn forget_thread(&mut self, tid: i32) {
        self.go.remove(&tid);
        if self.tried.remove(&tid) {
            if let Some(map) = self.tops.as_mut() {
                let _ = map.remove(&(tid as u32));
            }
        }
    }
}

/// True when a frame of the stack is in Go code (a module with Go's own table).
fn runs_go(maps: &UserMaps, tgid: i32, frames: &[u64]) -> bool {
    frames.iter().any(|f| {
        maps.find(tgid, *f)
            .and_then(|m| m.module.as_ref())
            .and_then(|m| m.cfi())
            .is_some_and(|c| c.is_go())
    })
}

/// A 128-bit hash of everything a walk reads.
fn input_key(tgid: i32, generation: u64, regs: &UserRegs, window: &[u8], chain: &[u64]) -> u128 {
    let mut h = twox_hash::XxHash3_128::new();
    for v in [
        tgid as u64,
        generation,
        regs.ip,
        regs.sp,
        regs.fp,
        regs.aux,
        regs.arg,
        regs.flags as u64,
        window.len() as u64,
    ] {
        h.write(&v.to_le_bytes());
    }
    h.write(window);
    for f in chain {
        h.write(&f.to_le_bytes());
    }
    h.finish_128()
}

/// The rules of one process's code: from its mappings to its modules' CFI, cached per module
/// address.
struct ProcessRules<'a> {
    maps: &'a mut UserMaps,
    tgid: i32,
    rules: &'a mut Memo<(u64, u64), Step>,
    ctx: &'a mut UnwindContext<usize>,
    /// The mappings were re-read for an address outside them (once per walk at most).
    rescanned: bool,
}

impl ProcessRules<'_> {
    /// The module holding `addr` and `addr` as the module knows it.
    fn locate(&mut self, addr: u64) -> Option<(std::sync::Arc<crate::procmaps::Module>, u64)> {
        if self.maps.find(self.tgid, addr).is_none() && !self.rescanned {
            self.rescanned = true;
            self.maps.cover(self.tgid, &[addr]);
        }
        let m = self.maps.find(self.tgid, addr)?;
        let module = m.module.clone()?;
        let svma = module.virt_offset(addr - m.start + m.offset)?;
        Some((module, svma))
    }
}

impl Rules for ProcessRules<'_> {
    fn step(&mut self, pc: u64, first: bool) -> Step {
        let addr = named_at(pc, !first);
        let Some((module, svma)) = self.locate(addr) else {
            return Step::NoModule;
        };
        let key = (module.id, svma);
        if let Some(s) = self.rules.get(&key) {
            return *s;
        }
        let step = match module.cfi() {
            None => Step::NoCfi,
            Some(cfi) => match cfi.lookup(svma, self.ctx) {
                Lookup::Rule(r) => Step::Rule(r),
                Lookup::NotCovered => Step::NoCfi,
                Lookup::Unsupported => Step::Unsupported,
                Lookup::StackSwitch => Step::StackSwitch,
            },
        };
        self.rules.insert(key, step);
        step
    }

    fn eval(
        &mut self,
        pc: u64,
        first: bool,
        e: Expr,
        sp: u64,
        initial: Option<u64>,
        mem: &mut dyn FnMut(u64) -> Option<u64>,
    ) -> Option<u64> {
        let addr = named_at(pc, !first);
        let (module, _) = self.locate(addr)?;
        module.cfi()?.eval(e, sp, pc, initial, mem)
    }
}
