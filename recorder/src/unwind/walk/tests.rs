//! The walk on made-up stacks: each case is a process image written by hand (code ranges with
//! their rules, a stack copy, the kernel's frame-pointer walk), so the expected frames are known.
use super::*;

/// Code ranges with their rules.
struct Table(Vec<(u64, u64, Step)>);

impl Rules for Table {
    fn step(&mut self, pc: u64, first: bool) -> Step {
        let at = flightrec_schemas::unwind::named_at(pc, !first);
        self.0
            .iter()
            .find(|(a, b, _)| (*a..*b).contains(&at))
            .map_or(Step::NoModule, |r| r.2)
    }
    /// A made-up expression language: `sp + offset`, dereferenced when `len` is 1.
    fn eval(
        &mut self,
        _pc: u64,
        _first: bool,
        e: Expr,
        sp: u64,
        _initial: Option<u64>,
        mem: &mut dyn FnMut(u64) -> Option<u64>,
    ) -> Option<u64> {
        let at = sp + e.offset as u64;
        if e.len == 1 {
            mem(at)
        } else {
            Some(at)
        }
    }
}

const fn fp_frame() -> Step {
    Step::Rule(Rule::Frame {
        cfa: Cfa::Fp(16),
        ra: Recover::At(-8),
        fp: Recover::At(-16),
        aux: Recover::Same,
        signal: false,
        clone_gap: false,
    })
}

const fn sp_frame(size: i64) -> Step {
    Step::Rule(Rule::Frame {
        cfa: Cfa::Sp(size),
        ra: Recover::At(-8),
        fp: Recover::Same,
        aux: Recover::Same,
        signal: false,
        clone_gap: false,
    })
}

/// A stack copy: words from `sp` up.
fn window(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

const SP: u64 = 0x7ffd_0000_1000;
// Functions: W (frameless libc wrapper), F and G (keep frame pointers), L (libc start code,
// frameless), S (_start, the end).
const W: u64 = 0x1000;
const F: u64 = 0x2000;
const G: u64 = 0x3000;
const L: u64 = 0x4000;
const S: u64 = 0x5000;

fn process() -> Table {
    Table(vec![
        (W, W + 0x100, sp_frame(8)),
        (F, F + 0x100, fp_frame()),
        (G, G + 0x100, fp_frame()),
        (L, L + 0x100, sp_frame(32)),
        (S, S + 0x100, Step::Rule(Rule::End)),
    ])
}

/// The stack of W (called from F, called from G, called from L, called from S): W's return
/// address at sp; F's frame (saved fp, return address) at sp+8; G's at F's saved fp.
fn stack() -> (Regs, Vec<u64>) {
    let f_fp = SP + 8; // F pushed rbp at sp+8 and set rbp there
    let g_fp = SP + 0x40;
    let words = vec![
        F + 0x10, // [sp] W's return address into F
        g_fp,     // [sp+8] F's saved rbp = G's frame
        G + 0x20, // [sp+16] F's return address into G
        0,
        0,
        0,
        0,
        0,
        0,        // [sp+0x40] G's saved rbp: L keeps none, so garbage
        L + 0x30, // [sp+0x48] G's return address into L
        0,
        0,
        0,
        S + 0x8, // [sp+0x68] L's return address (L's CFA = sp+0x50 + 32 = sp+0x70)
    ];
    (
        Regs {
            ip: W + 0x5,
            sp: SP,
            fp: f_fp,
            aux: 0,
            arg: 0,
        },
        words,
    )
}

#[test]
fn a_whole_copy_unwinds_through_frameless_and_frame_pointer_code_to_start() {
    let (regs, words) = stack();
    let w = window(&words);
    let got = walk(
        &Input {
            regs: Some(regs),
            window: &w,
            fp_chain: &[],
            copied: true,
        },
        &mut process(),
    );
    assert_eq!(
        got.frames,
        vec![W + 0x5, F + 0x10, G + 0x20, L + 0x30, S + 0x8]
    );
    assert_eq!((got.method, got.truncated), (Method::Cfi, None));
}

#[test]
fn a_frameless_wrapper_is_stepped_over_and_the_frame_pointer_walk_spliced_on() {
    // Only W's return address was copied; the kernel's walk from F's frame pointer gives G's
    // return address (skipping F, the caller of W: what a frame-pointer walk alone shows).
    let (regs, words) = stack();
    let w = window(&words[..1]);
    let chain = [regs.ip, G + 0x20, L + 0x30];
    let got = walk(
        &Input {
            regs: Some(regs),
            window: &w,
            fp_chain: &chain,
            copied: true,
        },
        &mut process(),
    );
    // F is back; the chain is confirmed through G (it keeps a frame pointer), not past L.
    assert_eq!(got.frames, vec![W + 0x5, F + 0x10, G + 0x20, L + 0x30]);
    assert_eq!(got.method, Method::CfiThenFramePointers);
    assert_eq!(got.truncated, Some(Truncation::NoFramePointer));
}

#[test]
fn frameless_code_past_the_copy_is_cut_not_guessed() {
    // A leaf in L (no frame pointer, a 32-byte frame), its return address 24 bytes up, but only 8
    // bytes copied. rbp is whatever L put there; the kernel's walk from it is garbage.
    let regs = Regs {
        ip: L + 0x10,
        sp: SP,
        fp: 0x1234,
        aux: 0,
        arg: 0,
    };
    let w = window(&[0]);
    let chain = [regs.ip, 0xdead_beef, 0x1111];
    let got = walk(
        &Input {
            regs: Some(regs),
            window: &w,
            fp_chain: &chain,
            copied: true,
        },
        &mut process(),
    );
    assert_eq!(got.frames, vec![L + 0x10]);
    assert_eq!(got.truncated, Some(Truncation::StackCopy));
}

#[test]
fn a_stack_of_which_nothing_was_copied_is_unreadable_not_deep() {
    // An exiting task's last switch-outs: its registers are there, its memory is not (the copy
    // is empty, and the kernel's frame-pointer walk has the leaf at most), and its mappings may
    // be gone (a leaf in no known module): unreadable either way, not a CFI failure.
    let (regs, _) = stack();
    for (ip, chain) in [(regs.ip, vec![]), (0x9000, vec![0x9000])] {
        let regs = Regs { ip, ..regs };
        let got = walk(
            &Input {
                regs: Some(regs),
                window: &[],
                fp_chain: &chain,
                copied: true,
            },
            &mut process(),
        );
        assert_eq!(got.frames, vec![ip], "the leaf, from the registers");
        assert_eq!(got.truncated, Some(Truncation::StackUnreadable));
    }
    // With copies turned off (frame pointers only), an empty copy is no news about the memory.
    let got = walk(
        &Input {
            regs: Some(regs),
            window: &[],
            fp_chain: &[],
            copied: false,
        },
        &mut process(),
    );
    assert_eq!(got.truncated, Some(Truncation::StackCopy));
}

#[test]
fn code_without_unwind_information_keeps_only_the_leaf() {
    let (regs, words) = stack();
    let w = window(&words);
    let chain = [0x9000, 0x1111, 0x2222];
    let got = walk(
        &Input {
            regs: Some(Regs { ip: 0x9000, ..regs }),
            window: &w,
            fp_chain: &chain,
            copied: true,
        },
        &mut process(),
    );
    assert_eq!(got.frames, vec![0x9000]);
    assert_eq!(got.truncated, Some(Truncation::NoCfi));
}

#[test]
fn a_frame_pointer_chain_is_followed_only_while_cfi_confirms_it() {
    // The leaf is in F (keeps a frame pointer) and nothing was copied: the chain is all there is.
    let regs = Regs {
        ip: F + 0x30,
        sp: SP,
        fp: SP + 0x10,
        aux: 0,
        arg: 0,
    };
    let chain = [F + 0x30, G + 0x20, L + 0x30, 0x4242];
    let got = walk(
        &Input {
            regs: Some(regs),
            window: &[],
            fp_chain: &chain,
            copied: true,
        },
        &mut process(),
    );
    assert_eq!(got.frames, vec![F + 0x30, G + 0x20, L + 0x30]);
    assert_eq!(got.method, Method::FramePointers);
    assert_eq!(
        got.truncated,
        Some(Truncation::NoFramePointer),
        "0x4242 is dropped"
    );
}

#[test]
fn no_registers_no_frames() {
    let got = walk(
        &Input {
            regs: None,
            window: &[],
            fp_chain: &[1, 2, 3],
            copied: true,
        },
        &mut process(),
    );
    assert!(got.frames.is_empty());
    assert_eq!(got.truncated, Some(Truncation::NoRegisters));
}

#[test]
fn a_frame_that_does_not_move_up_the_stack_ends_the_walk() {
    // A rule that leaves the CFA at sp would loop forever.
    let mut t = Table(vec![(W, W + 0x100, sp_frame(0))]);
    let w = window(&[F]);
    let got = walk(
        &Input {
            regs: Some(Regs {
                ip: W,
                sp: SP,
                fp: 0,
                aux: 0,
                arg: 0,
            }),
            window: &w,
            fp_chain: &[],
            copied: true,
        },
        &mut t,
    );
    assert_eq!(got.frames, vec![W]);
    assert_eq!(got.truncated, Some(Truncation::Unsupported));
}

#[test]
fn a_signal_frame_leads_to_the_interrupted_instruction_looked_up_as_it_is() {
    // Handler H returns into the trampoline T, whose CFI (as glibc's) begins a byte before it
    // and finds the interrupted registers in the frame the kernel pushed. The signal came at
    // F's very first instruction: looked up one byte back, as a return address would be, that is
    // no code at all.
    const H: u64 = 0x7000;
    const T: u64 = 0x6001;
    let expr = |offset: usize, len: usize| Expr {
        debug_frame: false,
        offset,
        len,
    };
    let mut rules = Table(vec![
        (H, H + 0x100, sp_frame(8)),
        (
            T - 1,
            T + 0x10,
            Step::Rule(Rule::Frame {
                cfa: Cfa::Expr(expr(0x20, 1)),
                ra: Recover::AtExpr(expr(0x28, 0)),
                fp: Recover::AtExpr(expr(0x18, 0)),
                aux: Recover::Same,
                signal: true,
                clone_gap: false,
            }),
        ),
        (F, F + 0x100, fp_frame()),
        (S, S + 0x100, Step::Rule(Rule::End)),
    ]);
    let f_fp = SP + 0x40;
    let words = [
        T,         // [sp] the handler's return address: the trampoline
        0,         // [sp+8] the trampoline's sp: the saved registers from here
        0,         //
        0,         //
        f_fp,      // [sp+0x20] saved rbp
        SP + 0x40, // [sp+0x28] saved rsp
        F,         // [sp+0x30] saved rip: F's first instruction
        0,         //
        0,         // [sp+0x40] F's saved rbp
        S + 8,     // [sp+0x48] F's return address
    ];
    let w = window(&words);
    let got = walk(
        &Input {
            regs: Some(Regs {
                ip: H + 5,
                sp: SP,
                fp: 0,
                aux: 0,
                arg: 0,
            }),
            window: &w,
            fp_chain: &[],
            copied: true,
        },
        &mut rules,
    );
    assert_eq!(got.frames, vec![H + 5, T, F, S + 8]);
    assert_eq!((got.method, got.truncated), (Method::Cfi, None));
}

#[test]
fn back_from_clone_the_parent_unwinds_to_its_caller_and_the_new_thread_ends_there() {
    // C: clone3's code after the syscall, whose CFI ended before it: the rule from before the
    // syscall (a leaf: return address at sp), marked as the clone gap.
    const C: u64 = 0x6000;
    let gap = Step::Rule(Rule::Frame {
        cfa: Cfa::Sp(8),
        ra: Recover::At(-8),
        fp: Recover::Same,
        aux: Recover::Same,
        signal: false,
        clone_gap: true,
    });
    let regs = Regs {
        ip: C + 7,
        sp: SP,
        fp: 0,
        aux: 0,
        arg: 0,
    };
    let walk_with = |w: &[u8]| {
        let mut rules = Table(vec![(C, C + 0x10, gap)]);
        rules.0.extend(process().0);
        walk(
            &Input {
                regs: Some(regs),
                window: w,
                fp_chain: &[],
                copied: true,
            },
            &mut rules,
        )
    };
    // [sp]: the parent's return address (into S, the end), or what a new thread's fresh stack
    // holds there (its descriptor's self-pointer, or zero).
    let parent = walk_with(&window(&[S + 0x10, 0]));
    assert_eq!(parent.frames, vec![C + 7, S + 0x10]);
    assert_eq!(parent.truncated, None);
    for top in [SP + 0x800, 0] {
        let child = walk_with(&window(&[top, 0]));
        assert_eq!(child.frames, vec![C + 7], "nothing called the new thread");
        assert_eq!(child.truncated, None, "its outermost frame");
    }
    // A stack of its own whose top is where it starts (posix_spawn's child): [sp] is past the
    // copy, where a parent's return address always is in it.
    let child = walk_with(&[0; 4]);
    assert_eq!((child.frames, child.truncated), (vec![C + 7], None));
}

#[test]
fn a_frame_whose_cfa_is_in_rbx_is_stepped_over() {
    // R realigns its stack as ld.so's lazy-binding trampoline does: it pushes rbx, keeps its CFA
    // in rbx (CFA = rbx + 16), rounds rsp down and calls W. W (frameless) is the leaf.
    const R: u64 = 0x7000;
    let realign = Step::Rule(Rule::Frame {
        cfa: Cfa::Aux(16),
        ra: Recover::At(-8),
        fp: Recover::Same,
        aux: Recover::At(-16),
        signal: false,
        clone_gap: false,
    });
    let mut rules = Table(vec![(R, R + 0x100, realign)]);
    rules.0.extend(process().0);
    let rbx = SP + 0x40;
    let mut words = vec![0u64; 10];
    words[0] = R + 0x10; // [sp] W's return address into R
    words[8] = 0x1234; // [rbx] the caller's rbx, saved by R
    words[9] = S + 0x10; // [rbx + 8] R's return address into S
    let w = window(&words);
    let got = walk(
        &Input {
            regs: Some(Regs {
                ip: W + 0x10,
                sp: SP,
                fp: 0,
                aux: rbx,
                arg: 0,
            }),
            window: &w,
            fp_chain: &[],
            copied: true,
        },
        &mut rules,
    );
    assert_eq!(got.frames, vec![W + 0x10, R + 0x10, S + 0x10]);
    assert_eq!(got.truncated, None);
}

#[test]
fn vfork_waiting_with_its_return_address_in_rdi_is_whole() {
    // glibc's vfork pops its return address into rdi before the syscall: while the parent waits
    // there, CFA = rsp (a frame of no size) and the return address is in rdi.
    const V: u64 = 0x8000;
    let waiting = Step::Rule(Rule::Frame {
        cfa: Cfa::Sp(0),
        ra: Recover::InArg,
        fp: Recover::Same,
        aux: Recover::Same,
        signal: false,
        clone_gap: false,
    });
    let mut rules = Table(vec![(V, V + 0x20, waiting)]);
    rules.0.extend(process().0);
    let w = window(&[0, 0]);
    let regs = |arg| Regs {
        ip: V + 8,
        sp: SP,
        fp: 0,
        aux: 0,
        arg,
    };
    let input = |arg| Input {
        regs: Some(regs(arg)),
        window: &w,
        fp_chain: &[],
        copied: true,
    };
    let got = walk(&input(S + 0x10), &mut rules);
    assert_eq!(got.frames, vec![V + 8, S + 0x10]);
    assert_eq!(got.truncated, None);
    // Without the register (not read), the stack stops at the leaf, marked.
    let got = walk(&input(0), &mut rules);
    assert_eq!(got.frames, vec![V + 8]);
    assert_eq!(got.truncated, Some(Truncation::Unsupported));
}
