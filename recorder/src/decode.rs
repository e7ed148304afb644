//! Ring-buffer records → typed views. No allocation: stacks stay borrowed byte slices.
use flightrec_common::{
    BlockEvent, EventHeader, EventKind, ExecEvent, ExitEvent, FaultEvent, ForkEvent, IrqEvent,
    LockEvent, OomEvent, ReclaimEvent, SampleEvent, SignalEvent, Source, SwitchEvent, SyscallEvent,
    TcpEvent, UserRegs, WakeupEvent, WakingEvent,
};

/// A stack as the kernel walked it: leaf first, or the errno of a failed walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack<'a> {
    /// Raw native-endian u64 frames.
    Frames(&'a [u8]),
    /// The walk failed with this errno.
    Error(i32),
}

impl<'a> Stack<'a> {
    /// Frame addresses.
    pub fn frames(&self) -> impl Iterator<Item = u64> + 'a {
        let bytes: &'a [u8] = match self {
            Stack::Frames(b) => b,
            Stack::Error(_) => &[],
        };
        bytes
            .chunks_exact(8)
            .map(|c| u64::from_ne_bytes(c.try_into().expect("chunk of 8")))
    }
}

/// What a record holds about a user stack: the frame-pointer walk, the registers and the copy of
/// the stack from `regs.sp` up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserStack<'a> {
    /// The kernel's frame-pointer walk.
    pub frames: Stack<'a>,
    /// The user registers (`flags` says whether they are valid).
    pub regs: UserRegs,
    /// The stack copy.
    pub window: &'a [u8],
}

/// One decoded record.
#[derive(Clone, Debug)]
pub enum Record<'a> {
    /// A context switch and the stacks of the task leaving the CPU.
    Switch(SwitchEvent, Stack<'a>, UserStack<'a>),
    /// A wake-up (`new` for a freshly forked task).
    Wakeup(WakeupEvent, bool),
    /// An exec and the start of its argument area (empty when not copied). Boxed: the rare
    /// record with a path inside would make every record the size of a path.
    Exec(Box<ExecEvent>, &'a [u8]),
    /// A fork.
    Fork(ForkEvent),
    /// An exit.
    Exit(ExitEvent),
    /// A profile sample and its stacks.
    Sample(SampleEvent, Stack<'a>, UserStack<'a>),
    /// A waking and the waker's stacks (`--waker-stacks`).
    Waking(WakingEvent, Stack<'a>, UserStack<'a>),
    /// A block request issue (`complete` false) or completion.
    Block(BlockEvent, bool),
    /// A syscall enter (`exit` false) or exit.
    Syscall(SyscallEvent, bool),
    /// A TCP state change, retransmit or reset.
    Tcp(TcpEvent, EventKind),
    /// A signal generated.
    Signal(SignalEvent),
    /// An OOM-killer victim.
    Oom(OomEvent),
    /// An IRQ handler or softirq entry or exit.
    Irq(IrqEvent, EventKind),
    /// A direct or memcg reclaim begin or end.
    Reclaim(ReclaimEvent, EventKind),
    /// A lock contention begin (`end` false, with the waiter's kernel stack) or end.
    Lock(LockEvent, Stack<'a>, bool),
    /// A user page fault and the faulting task's user stack.
    Fault(FaultEvent, UserStack<'a>),
}

impl<'a> Record<'a> {
    /// The user stack a record carries (switch-out, sample, waking, page fault) and the header of
    /// the task it belongs to.
    pub fn user_stack(&self) -> Option<(&EventHeader, &UserStack<'a>)> {
        match self {
            Record::Switch(e, _, u) => Some((&e.hdr, u)),
            Record::Sample(e, _, u) => Some((&e.hdr, u)),
            Record::Waking(e, _, u) => Some((&e.hdr, u)),
            Record::Fault(e, u) => Some((&e.hdr, u)),
            _ => None,
        }
    }

    /// The source the record belongs to.
    pub fn source(&self) -> Source {
        match self {
            Record::Switch(..) | Record::Wakeup(..) | Record::Waking(..) => Source::Sched,
            Record::Exec(..) | Record::Fork(_) | Record::Exit(_) => Source::Process,
            Record::Sample(..) => Source::Profile,
            Record::Block(..) => Source::Block,
            Record::Syscall(..) => Source::Syscall,
            Record::Tcp(..) => Source::Tcp,
            Record::Signal(_) => Source::Signal,
            Record::Oom(_) => Source::Oom,
            Record::Irq(..) => Source::Irq,
            Record::Reclaim(..) => Source::Reclaim,
            Record::Lock(..) => Source::Lock,
            Record::Fault(..) => Source::Fault,
        }
    }
}

/// Why a record could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than its kind's struct.
    #[error("record of {0} bytes is too short")]
    Short(usize),
    /// Unknown kind.
    #[error("unknown record kind {0}")]
    Kind(u32),
    /// Stack lengths point past the record.
    #[error("stack lengths exceed the record")]
    StackBounds,
}

fn read<T: Copy>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() < size_of::<T>() {
        return Err(DecodeError::Short(bytes.len()));
    }
    // SAFETY: length checked; T is a #[repr(C)] plain-data ABI type valid for any bit pattern.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

fn stacks(
    bytes: &[u8],
    offset: usize,
    k: i32,
    u: i32,
    regs: UserRegs,
) -> Result<(Stack<'_>, UserStack<'_>), DecodeError> {
    let rest = bytes.get(offset..).ok_or(DecodeError::StackBounds)?;
    let kb = k.max(0) as usize;
    let ub = u.max(0) as usize;
    let wb = regs.window_len as usize;
    if kb + ub + wb > rest.len() || !kb.is_multiple_of(8) || !ub.is_multiple_of(8) {
        return Err(DecodeError::StackBounds);
    }
    let ks = if k < 0 {
        Stack::Error(-k)
    } else {
        Stack::Frames(&rest[..kb])
    };
    let us = if u < 0 {
        Stack::Error(-u)
    } else {
        Stack::Frames(&rest[kb..kb + ub])
    };
    let user = UserStack {
        frames: us,
        regs,
        window: &rest[kb + ub..kb + ub + wb],
    };
    Ok((ks, user))
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<Record<'_>, DecodeError> {
    let hdr: EventHeader = read(bytes)?;
    let kind = EventKind::from_u32(hdr.kind).ok_or(DecodeError::Kind(hdr.kind))?;
    Ok(match kind {
        EventKind::Switch => {
            let ev: SwitchEvent = read(bytes)?;
            let (k, u) = stacks(
                bytes,
                size_of::<SwitchEvent>(),
                ev.kstack_len,
                ev.ustack_len,
                ev.regs,
            )?;
            Record::Switch(ev, k, u)
        }
        EventKind::Wakeup => Record::Wakeup(read(bytes)?, false),
        EventKind::WakeupNew => Record::Wakeup(read(bytes)?, true),
        EventKind::Exec => {
            let ev: ExecEvent = read(bytes)?;
            let n = ev.args_len.max(0) as usize;
            let args = bytes
                .get(size_of::<ExecEvent>()..size_of::<ExecEvent>() + n)
                .ok_or(DecodeError::Short(bytes.len()))?;
            Record::Exec(Box::new(ev), args)
        }
        EventKind::Fork => Record::Fork(read(bytes)?),
        EventKind::Exit => Record::Exit(read(bytes)?),
        EventKind::Sample => {
            let ev: SampleEvent = read(bytes)?;
            let (k, u) = stacks(
                bytes,
                size_of::<SampleEvent>(),
                ev.kstack_len,
                ev.ustack_len,
                ev.regs,
            )?;
            Record::Sample(ev, k, u)
        }
        EventKind::BlockIssue => Record::Block(read(bytes)?, false),
        EventKind::BlockComplete => Record::Block(read(bytes)?, true),
        EventKind::SysEnter => Record::Syscall(read(bytes)?, false),
        EventKind::SysExit => Record::Syscall(read(bytes)?, true),
        k @ (EventKind::TcpState
        | EventKind::TcpRetransmit
        | EventKind::TcpSendReset
        | EventKind::TcpReceiveReset) => Record::Tcp(read(bytes)?, k),
        EventKind::Signal => Record::Signal(read(bytes)?),
        EventKind::OomVictim => Record::Oom(read(bytes)?),
        k @ (EventKind::IrqEntry
        | EventKind::IrqExit
        | EventKind::SoftirqEntry
        | EventKind::SoftirqExit) => Record::Irq(read(bytes)?, k),
        k @ (EventKind::DirectReclaimBegin
        | EventKind::DirectReclaimEnd
        | EventKind::MemcgReclaimBegin
        | EventKind::MemcgReclaimEnd) => Record::Reclaim(read(bytes)?, k),
        EventKind::Waking => {
            let ev: WakingEvent = read(bytes)?;
            let (k, u) = stacks(
                bytes,
                size_of::<WakingEvent>(),
                ev.kstack_len,
                ev.ustack_len,
                ev.regs,
            )?;
            Record::Waking(ev, k, u)
        }
        EventKind::LockBegin => {
            let ev: LockEvent = read(bytes)?;
            let (k, _) = stacks(
                bytes,
                size_of::<LockEvent>(),
                ev.kstack_len,
                0,
                UserRegs::default(),
            )?;
            Record::Lock(ev, k, false)
        }
        EventKind::LockEnd => Record::Lock(read(bytes)?, Stack::Frames(&[]), true),
        EventKind::PageFault => {
            let ev: FaultEvent = read(bytes)?;
            let (_, u) = stacks(bytes, size_of::<FaultEvent>(), 0, ev.ustack_len, ev.regs)?;
            Record::Fault(ev, u)
        }
    })
}

/// The text of a NUL-padded C string field.
pub fn c_str(bytes: &[u8]) -> &str {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    match std::str::from_utf8(&bytes[..end]) {
        Ok(s) => s,
        // Keep the valid prefix rather than dropping the name.
        Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Bytes of a plain ABI struct, for building records in tests.
    pub fn bytes_of<T: Copy>(v: &T) -> Vec<u8> {
        // SAFETY: T is plain data; we copy exactly its bytes.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    pub fn switch_record(
        prev: i32,
        next: i32,
        state: i64,
        kframes: &[u64],
        ustack: i32,
    ) -> Vec<u8> {
        let mut ev: SwitchEvent = unsafe { std::mem::zeroed() };
        ev.hdr.kind = EventKind::Switch as u32;
        ev.hdr.tid = prev as u32;
        ev.hdr.tgid = prev as u32;
        ev.prev_pid = prev;
        ev.next_pid = next;
        ev.prev_state = state;
        ev.kstack_len = (kframes.len() * 8) as i32;
        ev.ustack_len = ustack;
        let mut b = bytes_of(&ev);
        for f in kframes {
            b.extend_from_slice(&f.to_ne_bytes());
        }
        b
    }

    #[test]
    fn switch_with_kernel_stack_and_failed_user_stack() {
        let b = switch_record(10, 20, 1, &[0xffff_1000, 0xffff_2000], -14);
        let Record::Switch(ev, k, u) = decode(&b).unwrap() else {
            panic!("not a switch")
        };
        assert_eq!((ev.prev_pid, ev.next_pid, ev.prev_state), (10, 20, 1));
        assert_eq!(
            k.frames().collect::<Vec<_>>(),
            vec![0xffff_1000, 0xffff_2000]
        );
        assert_eq!(u.frames, Stack::Error(14));
        assert!(u.window.is_empty());
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        assert_eq!(decode(&[1, 2, 3]).unwrap_err(), DecodeError::Short(3));
        let mut b = switch_record(1, 2, 0, &[1], 0);
        b[20..24].copy_from_slice(&99u32.to_ne_bytes());
        assert_eq!(decode(&b).unwrap_err(), DecodeError::Kind(99));
        let mut b = switch_record(1, 2, 0, &[1], 0);
        b.truncate(b.len() - 4);
        assert_eq!(decode(&b).unwrap_err(), DecodeError::StackBounds);
        let b = switch_record(1, 2, 0, &[], 0);
        assert!(decode(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn c_str_stops_at_nul_and_survives_bad_utf8() {
        assert_eq!(c_str(b"bash\0\0\0"), "bash");
        assert_eq!(c_str(b"abc\xffdef"), "abc");
        assert_eq!(c_str(b"full"), "full");
    }
}
