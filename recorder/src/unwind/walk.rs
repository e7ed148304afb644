//! The unwinding itself, free of the kernel and of files: registers, a copy of the stack and the
//! kernel's frame-pointer walk in; frames and how far the evidence went out.
//!
//! Frames are stepped over with CFI, reading return addresses and saved frame pointers from the
//! stack copy. Where the copy ends, the kernel's frame-pointer walk takes over, but only from a
//! frame whose CFI says its caller is found through the frame pointer the walk started from, and
//! only as far as CFI confirms each of its links. Nothing is ever guessed: where no rule applies,
//! the stack is cut there and the reason kept.
use flightrec_schemas::unwind::{Method, Truncation};

use super::cfi::{Cfa, Expr, Recover, Rule};

/// What is known of one code address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A CFI rule.
    Rule(Rule),
    /// Not in any mapping of the process, or in one that is not a file (JIT code, `[vdso]`
    /// without unwind info).
    NoModule,
    /// In a module whose CFI does not cover it, or that has none.
    NoCfi,
    /// Covered by a rule this unwinder does not run.
    Unsupported,
    /// Code that moved to another stack: its callers are not on this one.
    StackSwitch,
}

/// The rules of a process's code, and expression rules evaluated on demand.
pub trait Rules {
    /// The rule for `pc`; `first` for the interrupted instruction itself, else a return address
    /// (looked up one byte back: the call may be the function's last instruction).
    fn step(&mut self, pc: u64, first: bool) -> Step;
    /// Evaluates expression `e` of the rule at `pc` (as `step` looked it up) for stack pointer
    /// `sp`, with `initial` pushed first; `mem` reads the stack.
    fn eval(
        &mut self,
        pc: u64,
        first: bool,
        e: Expr,
        sp: u64,
        initial: Option<u64>,
        mem: &mut dyn FnMut(u64) -> Option<u64>,
    ) -> Option<u64>;
}

/// The registers of the interrupted user context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Regs {
    /// Instruction pointer.
    pub ip: u64,
    /// Stack pointer.
    pub sp: u64,
    /// Frame pointer.
    pub fp: u64,
    /// The auxiliary register: rbx on x86_64.
    pub aux: u64,
    /// The argument register: rdi on x86_64 (the innermost frame's only).
    pub arg: u64,
}

/// Everything an event says about its user stack.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// Registers, when the event had a user context.
    pub regs: Option<Regs>,
    /// The stack from `regs.sp` up.
    pub window: &'a [u8],
    /// The kernel's frame-pointer walk, leaf first (`[ip, return addresses...]`).
    pub fp_chain: &'a [u64],
    /// A stack copy was asked for (not turned off with `--stack-copy 0`): an empty `window` is
    /// memory that could not be read.
    pub copied: bool,
}

/// The unwound stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walk {
    /// Leaf first: the instruction pointer, then return addresses.
    pub frames: Vec<u64>,
    /// How the frames were obtained.
    pub method: Method,
    /// Why the stack stops short of its outermost frame; `None` when it is whole.
    pub truncated: Option<Truncation>,
}

/// Deepest stack kept, in frames (as the kernel's walk).
pub const MAX_FRAMES: usize = 127;

/// Reads a u64 of the stack copy.
fn read(window: &[u8], base: u64, addr: u64) -> Option<u64> {
    let off = usize::try_from(addr.checked_sub(base)?).ok()?;
    let b = window.get(off..off.checked_add(8)?)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

/// Unwinds one user stack.
pub fn walk<R: Rules>(input: &Input<'_>, rules: &mut R) -> Walk {
    let Some(regs) = input.regs else {
        // No registers (a failed read): the frame-pointer walk alone cannot be checked.
        return Walk {
            frames: Vec::new(),
            method: Method::Cfi,
            truncated: Some(Truncation::NoRegisters),
        };
    };
    let mut frames = vec![regs.ip];
    // No byte of the stack and no frame-pointer link past the leaf: the memory was unreadable (a
    // task past releasing it as it exits, whose mappings may be gone too): only the leaf is known,
    // whatever its code's CFI says.
    if input.copied && input.window.is_empty() && input.fp_chain.len() <= 1 {
        return Walk {
            frames,
            method: Method::Cfi,
            truncated: Some(Truncation::StackUnreadable),
        };
    }
    let (mut pc, mut sp, mut fp) = (regs.ip, regs.sp, Some(regs.fp));
    let mut aux = Some(regs.aux);
    let mut first = true;
    let done = |frames: Vec<u64>, method, truncated| Walk {
        frames,
        method,
        truncated,
    };
    loop {
        if frames.len() >= MAX_FRAMES {
            return done(frames, Method::Cfi, Some(Truncation::TooDeep));
        }
        let rule = match rules.step(pc, first) {
            Step::Rule(Rule::End) => return done(frames, Method::Cfi, None),
            Step::Rule(Rule::Frame {
                cfa,
                ra,
                fp: fp_rule,
                aux: aux_rule,
                signal,
                clone_gap,
            }) => (cfa, ra, fp_rule, aux_rule, signal, clone_gap),
            Step::NoModule | Step::NoCfi => {
                return done(frames, Method::Cfi, Some(Truncation::NoCfi))
            }
            Step::Unsupported => return done(frames, Method::Cfi, Some(Truncation::Unsupported)),
            Step::StackSwitch => return done(frames, Method::Cfi, Some(Truncation::StackSwitch)),
        };
        let (cfa_rule, ra_rule, fp_rule, aux_rule, signal, clone_gap) = rule;
        let mut mem = |a: u64| read(input.window, regs.sp, a);
        let cfa = match cfa_rule {
            Cfa::Sp(off) => sp.checked_add_signed(off),
            Cfa::Fp(off) => fp.and_then(|f| f.checked_add_signed(off)),
            Cfa::Aux(off) => aux.and_then(|a| a.checked_add_signed(off)),
            Cfa::Expr(e) => rules.eval(pc, first, e, sp, None, &mut mem),
        };
        // The innermost frame's registers are the event's own: the argument register holds what
        // its rule says only there.
        let leaf = frames.len() == 1;
        // A frame that does not move up the stack is not a frame (and would loop forever), but
        // for an innermost one whose return address is in a register (vfork's, having popped
        // it): the next frame's pc comes from that register, not from this stack.
        let in_register = leaf && ra_rule == Recover::InArg;
        let Some(cfa) = cfa.filter(|c| *c > sp || in_register && *c == sp) else {
            return done(frames, Method::Cfi, Some(Truncation::Unsupported));
        };
        let mut value = |r: Recover, current: Option<u64>| -> Result<Option<u64>, ()> {
            let at = match r {
                Recover::Same => return Ok(current),
                Recover::Val(off) => return Ok(cfa.checked_add_signed(off)),
                Recover::Unknown => return Ok(None),
                Recover::InArg => return Ok(leaf.then_some(regs.arg)),
                Recover::At(off) => cfa.checked_add_signed(off),
                Recover::AtExpr(e) => rules.eval(pc, first, e, sp, Some(cfa), &mut mem),
            };
            at.and_then(|a| read(input.window, regs.sp, a))
                .map(Some)
                .ok_or(())
        };
        let ra = match value(ra_rule, None) {
            Ok(Some(ra)) => ra,
            Ok(None) => return done(frames, Method::Cfi, Some(Truncation::Unsupported)),
            // A parent's return address is the copy's first word: unreadable, this is a new
            // thread or process on a stack of its own whose top is its copy's end.
            Err(()) if clone_gap => return done(frames, Method::Cfi, None),
            Err(()) => {
                // Past the stack copy: the frame-pointer walk continues from here when this frame
                // keeps the frame pointer the walk started from in the standard way.
                let splice = cfa_rule == Cfa::Fp(16)
                    && ra_rule == Recover::At(-8)
                    && fp_rule == Recover::At(-16)
                    && fp == Some(regs.fp)
                    && input.fp_chain.len() > 1
                    && input.fp_chain[0] == regs.ip;
                if !splice {
                    return done(frames, Method::Cfi, Some(Truncation::StackCopy));
                }
                let method = if first {
                    Method::FramePointers
                } else {
                    Method::CfiThenFramePointers
                };
                return follow_chain(frames, &input.fp_chain[1..], rules, method);
            }
        };
        // A frame pointer saved beyond the copy is unknown from here on.
        let next_fp = value(fp_rule, fp).unwrap_or_default();
        let next_aux = value(aux_rule, aux).unwrap_or_default();
        // Back from clone: a parent's return address leads to code with CFI; the new thread's
        // stack holds none (glibc's pthreads: the thread descriptor's self-pointer; a fresh
        // stack: zero), and nothing called it: the outermost frame.
        if clone_gap && (ra == 0 || matches!(rules.step(ra, false), Step::NoModule | Step::NoCfi)) {
            return done(frames, Method::Cfi, None);
        }
        // A null return address is not a frame.
        if ra == 0 {
            return done(frames, Method::Cfi, Some(Truncation::Unsupported));
        }
        (fp, aux) = (next_fp, next_aux);
        frames.push(ra);
        (pc, sp) = (ra, cfa);
        // Past a signal trampoline, the instruction the signal interrupted: exact.
        first = signal;
    }
}

/// Appends the kernel's frame-pointer walk from the frame CFI reached, each link confirmed: a
/// return address leads to the next one only when its function keeps its caller's frame pointer
/// at the standard place (CFA = fp + 16, saved fp at CFA - 16). Otherwise the next entry skips a
/// frame or is garbage, and the stack is cut.
fn follow_chain(
    mut frames: Vec<u64>,
    chain: &[u64],
    rules: &mut impl Rules,
    method: Method,
) -> Walk {
    for (i, &ra) in chain.iter().enumerate() {
        if frames.len() >= MAX_FRAMES {
            return Walk {
                frames,
                method,
                truncated: Some(Truncation::TooDeep),
            };
        }
        frames.push(ra);
        let truncated = match rules.step(ra, false) {
            Step::Rule(Rule::End) => {
                return Walk {
                    frames,
                    method,
                    truncated: None,
                }
            }
            Step::Rule(Rule::Frame {
                cfa: Cfa::Fp(16),
                fp: Recover::At(-16),
                ra: Recover::At(-8),
                signal: false,
                clone_gap: false,
                ..
            }) => {
                if i + 1 < chain.len() {
                    continue;
                }
                // The kernel's walk stopped (a null or unreadable frame pointer) where CFI says
                // the stack goes on.
                Truncation::FramePointerEnd
            }
            Step::Rule(_) => Truncation::NoFramePointer,
            Step::NoModule | Step::NoCfi => Truncation::NoCfi,
            Step::Unsupported => Truncation::Unsupported,
            Step::StackSwitch => Truncation::StackSwitch,
        };
        return Walk {
            frames,
            method,
            truncated: Some(truncated),
        };
    }
    Walk {
        frames,
        method,
        truncated: Some(Truncation::FramePointerEnd),
    }
}

#[cfg(test)]
mod tests;
