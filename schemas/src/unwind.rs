//! How a user stack in a capture was obtained, and why it stops short when it does: the
//! `method` and `truncated` columns of the `stacks` table.
use std::fmt;

/// The address a frame is looked up by, for its unwind rule and its name: a stack's first frame
/// is where the thread was, as it is; every other frame is a return address, looked up by the call
/// before it (`addr - 1`), as perf, gdb and the kernel's own backtraces (`%pB`) do. A call the
/// callee never returns from (`exit`, `abort`) can be a function's last instruction, and its
/// return address is then already past the end.
pub fn named_at(addr: u64, return_address: bool) -> u64 {
    if return_address {
        addr.saturating_sub(1)
    } else {
        addr
    }
}

/// How the frames of a user stack were found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// The kernel's frame-pointer walk, every link confirmed by the modules' CFI.
    FramePointers,
    /// The leading frames (frameless code: a libc wrapper, a leaf) stepped over with CFI on the
    /// copied stack, then the frame-pointer walk, every link confirmed.
    CfiThenFramePointers,
    /// Every frame stepped over with CFI on the copied stack.
    Cfi,
}

/// Why a stack stops before its outermost frame. The frames it has are right; the ones after
/// the cut are unknown, never guessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Truncation {
    /// The task's user registers could not be read.
    NoRegisters,
    /// The unwinding needed stack beyond the copy taken with the event.
    StackCopy,
    /// A frame in code without unwind information (JIT code, a module without CFI).
    NoCfi,
    /// The frame-pointer walk went through a function that does not keep a frame pointer: its
    /// next entry would skip a frame or be garbage.
    NoFramePointer,
    /// The kernel's frame-pointer walk ended where CFI says the stack goes on.
    FramePointerEnd,
    /// A rule this unwinder does not run (a CFA in another register, an expression).
    Unsupported,
    /// Deeper than 127 frames.
    TooDeep,
    /// The process exec'd before its mappings could be read, or while they were (its instruction
    /// pointer is in none of them): no frame of this stack can be placed (such stacks have no
    /// frames; they are counted in the segment's `stack_errors`).
    Exec,
    /// Nothing of the stack could be read at all: a task past releasing its memory as it exits
    /// (its last switch-outs, closing files), or a stack page not resident.
    StackUnreadable,
    /// Code that moved the stack pointer to another stack (Go's runtime switching to a thread's
    /// system stack): the frames that called it are on a stack the walk has no pointer into.
    StackSwitch,
}

impl Method {
    /// All methods.
    pub const ALL: [Method; 3] = [
        Method::FramePointers,
        Method::CfiThenFramePointers,
        Method::Cfi,
    ];

    /// The name stored in captures.
    pub const fn name(self) -> &'static str {
        match self {
            Method::FramePointers => "fp",
            Method::CfiThenFramePointers => "cfi+fp",
            Method::Cfi => "cfi",
        }
    }

    /// The method of a stored name.
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl Truncation {
    /// All reasons.
    pub const ALL: [Truncation; 10] = [
        Truncation::NoRegisters,
        Truncation::StackCopy,
        Truncation::NoCfi,
        Truncation::NoFramePointer,
        Truncation::FramePointerEnd,
        Truncation::Unsupported,
        Truncation::TooDeep,
        Truncation::Exec,
        Truncation::StackUnreadable,
        Truncation::StackSwitch,
    ];

    /// The name stored in captures.
    pub const fn name(self) -> &'static str {
        match self {
            Truncation::NoRegisters => "no_registers",
            Truncation::StackCopy => "stack_copy",
            Truncation::NoCfi => "no_cfi",
            Truncation::NoFramePointer => "no_frame_pointer",
            Truncation::FramePointerEnd => "frame_pointer_end",
            Truncation::Unsupported => "unsupported",
            Truncation::TooDeep => "too_deep",
            Truncation::Exec => "exec",
            Truncation::StackUnreadable => "stack_unreadable",
            Truncation::StackSwitch => "stack_switch",
        }
    }

    /// The reason of a stored name.
    pub fn from_name(name: &str) -> Option<Truncation> {
        Truncation::ALL.into_iter().find(|t| t.name() == name)
    }

    /// In words, for reports.
    pub const fn describe(self) -> &'static str {
        match self {
            Truncation::NoRegisters => "user registers unreadable",
            Truncation::StackCopy => "stack deeper than the copy taken",
            Truncation::NoCfi => "code without unwind information",
            Truncation::NoFramePointer => "frame pointers through code that keeps none",
            Truncation::FramePointerEnd => "frame-pointer chain ended early",
            Truncation::Unsupported => "unwind rule not supported",
            Truncation::TooDeep => "deeper than 127 frames",
            Truncation::Exec => "the process exec'd before its mappings were read",
            Truncation::StackUnreadable => {
                "user stack unreadable (an exiting task's memory is gone)"
            }
            Truncation::StackSwitch => "the code switched stacks (Go's runtime)",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Truncation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in Method::ALL {
            assert_eq!(Method::from_name(m.name()), Some(m));
        }
        for t in Truncation::ALL {
            assert_eq!(Truncation::from_name(t.name()), Some(t));
        }
    }
}
