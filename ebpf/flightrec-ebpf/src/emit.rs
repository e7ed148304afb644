//! Plumbing every program shares: the config global, the per-CPU scratch buffer, stack walks, and
//! writing a record into the ring buffer with batched wake-ups and counted losses.
use core::ffi::c_void;

use aya_ebpf::{
    bindings::{BPF_F_USER_STACK, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns,
        generated::{
            bpf_get_current_task_btf, bpf_get_stack, bpf_probe_read_kernel,
            bpf_probe_read_kernel_str, bpf_probe_read_user, bpf_task_pt_regs,
        },
    },
    macros::map,
    maps::{Array, HashMap, PerCpuArray, RingBuf},
    programs::TracePointContext,
    EbpfContext,
};
use flightrec_common::{
    counter_index, Config, Counter, EventHeader, EventKind, Source, UserRegs, COMM_LEN,
    COUNTER_ENTRIES, DATA_LOC_FLAG, MAX_STACK_BYTES, MAX_WINDOW, RAW_RECORD_MAX, REGS_VALID,
    SCRATCH_SIZE, SCRATCH_SLOTS, STACK_TOPS_ENTRIES, STACK_TOP_GO,
};

const BPF_RB_AVAIL_DATA: u64 = 0;

/// Overwritten by the recorder before loading (tracepoint offsets, filters, wake-up threshold).
#[no_mangle]
pub(crate) static CONFIG: Config = unsafe { core::mem::zeroed() };

/// Reads a field of [`CONFIG`] without letting the compiler fold the zero initializer into the code.
macro_rules! conf {
    ($($field:tt)+) => {
        {
            #[allow(unused_unsafe)]
            let value = unsafe {
                core::ptr::read_volatile(core::ptr::addr_of!($crate::emit::CONFIG.$($field)+))
            };
            value
        }
    };
}
pub(crate) use conf;

/// Sized by the recorder at load time (`--ringbuf-size`).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 22, 0);

#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_ENTRIES, 0);

/// The top of each thread's user stack (its outermost frame), learned by the recorder: a stack copy
/// from `sp` to there holds every frame, so the recorder can unwind it whole.
#[map]
static STACK_TOPS: HashMap<u32, u64> = HashMap::with_max_entries(STACK_TOPS_ENTRIES, 0);

/// [`SCRATCH_SLOTS`] entries per CPU, by `cpu * SCRATCH_SLOTS + slot`: slot 0 for tracepoints,
/// slot 1 for perf_event programs (which run in NMI context). Sized by the recorder at load.
#[map]
static SCRATCH: Array<[u8; SCRATCH_SIZE]> = Array::with_max_entries(SCRATCH_SLOTS, 0);

/// Scratch slot for tracepoint programs.
pub const SLOT_TRACEPOINT: u32 = 0;
/// Scratch slot for perf_event programs.
pub const SLOT_PERF: u32 = 1;

/// The per-CPU buffer a record is assembled in.
#[inline(always)]
pub fn scratch(slot: u32) -> Option<*mut u8> {
    let cpu = unsafe { bpf_get_smp_processor_id() };
    SCRATCH
        .get_ptr_mut(cpu * SCRATCH_SLOTS + slot)
        .map(|p| p.cast::<u8>())
}

/// The current task as (tid, tgid).
#[inline(always)]
pub fn current() -> (u32, u32) {
    let id = bpf_get_current_pid_tgid();
    (id as u32, (id >> 32) as u32)
}

/// True when the current task belongs to the recorder itself.
#[inline(always)]
pub fn is_own(tgid: u32) -> bool {
    tgid != 0 && tgid == conf!(own_tgid)
}

/// Header for a record about the current task.
#[inline(always)]
pub fn header(tid: u32, tgid: u32, kind: EventKind) -> EventHeader {
    EventHeader {
        ts: unsafe { bpf_ktime_get_ns() },
        tid,
        tgid,
        cpu: unsafe { bpf_get_smp_processor_id() },
        kind: kind as u32,
    }
}

/// Where in the tracepoint scratch slot a record is copied by [`Raw::copy`]: past the largest
/// event with two full stacks.
const RAW_AT: usize = SCRATCH_SIZE - 2 * RAW_RECORD_MAX;

/// A tracepoint record copied into scratch with one helper call; fields are then plain loads at
/// offsets masked to the copy, which the verifier can bound.
pub struct Raw(*const u8);

impl Raw {
    /// Copies `len` bytes (the record's length from its format file) of the record.
    #[inline(always)]
    pub fn copy(ctx: &TracePointContext, buf: *mut u8, len: u32) -> Raw {
        let dst = unsafe { buf.add(RAW_AT) };
        let len = len & (RAW_RECORD_MAX as u32 - 1);
        unsafe { bpf_probe_read_kernel(dst.cast(), len, ctx.as_ptr().cast()) };
        Raw(dst)
    }

    /// The `T` at `offset`.
    #[inline(always)]
    pub fn get<T: Copy>(&self, offset: u32) -> T {
        let at = offset as usize & (RAW_RECORD_MAX - 1);
        unsafe { core::ptr::read_unaligned(self.0.add(at).cast::<T>()) }
    }
}

/// Reads a `T` at a tracepoint field offset, or zero when the read fails.
#[inline(always)]
pub fn field<T: Default>(ctx: &TracePointContext, offset: u32) -> T {
    unsafe { ctx.read_at::<T>(offset as usize) }.unwrap_or_default()
}

/// Copies `N` bytes at a tracepoint field offset into `dst` (left as is when the read fails).
#[inline(always)]
pub fn field_bytes<const N: usize>(ctx: &TracePointContext, offset: u32, dst: &mut [u8; N]) {
    unsafe {
        bpf_probe_read_kernel(
            dst.as_mut_ptr().cast(),
            N as u32,
            ctx.as_ptr().cast::<u8>().add(offset as usize).cast(),
        );
    }
}

/// Copies a NUL-terminated string field into `dst`; `spec` is a plain offset, or a `__data_loc`
/// field's offset with [`DATA_LOC_FLAG`] set. Returns the helper's result (bytes with NUL, or -errno).
#[inline(always)]
pub fn field_str(ctx: &TracePointContext, spec: u32, dst: &mut [u8]) -> i64 {
    let mut offset = spec & !DATA_LOC_FLAG;
    if spec & DATA_LOC_FLAG != 0 {
        let loc: u32 = field(ctx, offset);
        offset = loc & 0xffff;
    }
    unsafe {
        bpf_probe_read_kernel_str(
            dst.as_mut_ptr().cast(),
            dst.len() as u32,
            ctx.as_ptr().cast::<u8>().add(offset as usize).cast(),
        )
    }
}

/// Reads a comm field (inline `char[16]` or `__data_loc`) into `dst`.
#[inline(always)]
pub fn field_comm(ctx: &TracePointContext, spec: u32, dst: &mut [u8; COMM_LEN]) {
    if spec & DATA_LOC_FLAG != 0 {
        field_str(ctx, spec, dst);
    } else {
        field_bytes(ctx, spec, dst);
    }
}

/// Walks the kernel stack of the current task into `buf` at `offset`, reads its user registers,
/// walks its user stack with frame pointers unless the copy will hold all of it, and copies its user
/// stack from `sp` up (to the thread's known stack top, else `window` bytes) after the frames. The
/// idle task (tid 0) has no user context. Returns (kernel bytes or -errno, user bytes or -errno,
/// the registers, total record length).
#[inline(always)]
pub fn walk_stacks<C: EbpfContext>(
    ctx: &C,
    tid: u32,
    tgid: u32,
    buf: *mut u8,
    offset: usize,
    window: u32,
) -> (i32, i32, UserRegs, usize) {
    let (k, at) = walk_kernel_stack(ctx, buf, offset);
    if tid == 0 {
        return (k, 0, UserRegs::default(), at);
    }
    let (u, regs, len) = walk_user_stack(ctx, tid, tgid, buf, at, window);
    (k, u, regs, len)
}

/// Walks the current kernel stack into `buf` at `offset`. Returns (bytes or -errno, the offset
/// after it).
#[inline(always)]
pub fn walk_kernel_stack<C: EbpfContext>(ctx: &C, buf: *mut u8, offset: usize) -> (i32, usize) {
    let k = unsafe {
        bpf_get_stack(
            ctx.as_ptr(),
            buf.add(offset).cast::<c_void>(),
            MAX_STACK_BYTES as u32,
            0,
        )
    };
    // The mask is a no-op for valid lengths (at most MAX_STACK_BYTES < 1024); it lets the
    // verifier prove every access stays inside the scratch buffer.
    let kb = if k > 0 { (k as usize) & 0x3ff } else { 0 };
    (k as i32, offset + kb)
}

/// The user half of [`walk_stacks`]: the registers, the frame-pointer walk where the copy may not
/// reach the outermost frame, and the stack copy, written from `offset` (below 2 KiB). Returns
/// (user bytes or -errno, the registers, total record length).
#[inline(always)]
pub fn walk_user_stack<C: EbpfContext>(
    ctx: &C,
    tid: u32,
    tgid: u32,
    buf: *mut u8,
    offset: usize,
    window: u32,
) -> (i32, UserRegs, usize) {
    let offset = offset & 0x7ff;
    let mut regs = UserRegs::default();
    let pt = user_regs(&mut regs);
    let has_regs = !pt.is_null();
    // How much stack to copy: to the thread's stack top when known (then the copy holds every
    // frame), else `window` bytes. A window of 0 turns copies off (frame pointers only). A thread
    // of a process whose main thread runs Go runs Go too, from its first event.
    let top = if !has_regs || window == 0 {
        0
    } else {
        match unsafe { STACK_TOPS.get(&tid) } {
            Some(&STACK_TOP_GO) => go_stack_top(pt),
            Some(&top) => top,
            None if tid == tgid => main_stack_top(),
            None => match unsafe { STACK_TOPS.get(&tgid) } {
                Some(&STACK_TOP_GO) => go_stack_top(pt),
                _ => 0,
            },
        }
    };
    let whole = top > regs.sp && top - regs.sp <= MAX_WINDOW as u64;
    // The kernel's frame-pointer walk is only needed where the copy may not reach the outermost
    // frame: it costs a fault-tolerant read per frame, and through code without frame pointers it
    // follows garbage.
    let u = if whole {
        0
    } else {
        unsafe {
            bpf_get_stack(
                ctx.as_ptr(),
                buf.add(offset).cast::<c_void>(),
                MAX_STACK_BYTES as u32,
                BPF_F_USER_STACK as u64,
            )
        }
    };
    let ub = if u > 0 { (u as usize) & 0x3ff } else { 0 };
    let at = offset + ub;
    if has_regs && window > 0 {
        let want = if whole {
            (top - regs.sp) as u32
        } else {
            window
        };
        regs.window_len = copy_window(buf, at, regs.sp, want);
    }
    (u as i32, regs, at + regs.window_len as usize)
}

/// The top of the current goroutine's stack (`g.stack.hi`, the second word of the `g` Go keeps
/// in a register, read from the saved user registers at `pt`), and [`GO_STACK_SLACK`] bytes past
/// it: the stack a Go thread is on belongs to
/// the goroutine it runs, not to the thread. 0 when unknown; a register that holds no `g` (C code
/// called through cgo) gives a value the copy's bound and the unwinder's rules make harmless.
#[inline(always)]
fn go_stack_top(pt: *const u8) -> u64 {
    let off = conf!(regs.g);
    if off == u32::MAX {
        return 0;
    }
    let g = kernel_u64(unsafe { pt.add(off as usize & 0x1ff) });
    let mut hi: u64 = 0;
    let at = (g + 8) as *const c_void;
    if g == 0 || unsafe { bpf_probe_read_user((&mut hi as *mut u64).cast(), 8, at) } != 0 || hi == 0
    {
        return 0;
    }
    hi + GO_STACK_SLACK
}

/// The u64 of kernel memory at `p`; 0 when it cannot be read.
#[inline(always)]
fn kernel_u64(p: *const u8) -> u64 {
    let mut v: u64 = 0;
    unsafe { bpf_probe_read_kernel((&mut v as *mut u64).cast(), 8, p.cast()) };
    v
}

/// Bytes copied past a goroutine stack's `hi`: on a thread's system stack that the OS gave (the
/// main thread's, cgo's threads'), `hi` is an address in `runtime.mstart0`'s frame, and the frames
/// that started the thread lie just above it.
const GO_STACK_SLACK: u64 = 1024;

/// Where the current process's initial stack began (`mm->start_stack`): its main thread's frames
/// all lie below. 0 when unknown.
#[inline(always)]
fn main_stack_top() -> u64 {
    let (mm_off, start_off) = (conf!(task_mm), conf!(mm_start_stack));
    if mm_off == 0 || start_off == 0 {
        return 0;
    }
    let task = unsafe { bpf_get_current_task_btf() } as *const u8;
    let mm = kernel_u64(unsafe { task.add(mm_off as usize & 0xffff) });
    if mm == 0 {
        return 0;
    }
    kernel_u64(unsafe { (mm as *const u8).add(start_off as usize & 0xffff) })
}

/// Reads the current task's user-mode registers (saved where it entered the kernel); returns
/// where they are saved, null for a task without a user context (a kernel thread).
#[inline(always)]
fn user_regs(regs: &mut UserRegs) -> *const u8 {
    let pt = unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) } as *const u8;
    if pt.is_null() {
        return pt;
    }
    let read = |off: u32| -> u64 { kernel_u64(unsafe { pt.add(off as usize & 0x1ff) }) };
    if read(conf!(regs.mode)) & conf!(regs.mode_mask) as u64 != conf!(regs.mode_user) as u64 {
        return core::ptr::null();
    }
    regs.ip = read(conf!(regs.ip));
    regs.sp = read(conf!(regs.sp));
    regs.fp = read(conf!(regs.fp));
    let aux = conf!(regs.aux);
    if aux != u32::MAX {
        regs.aux = read(aux);
    }
    let arg = conf!(regs.arg);
    if arg != u32::MAX {
        regs.arg = read(arg);
    }
    regs.flags = REGS_VALID;
    pt
}

/// Copies up to `want` bytes of user memory from `sp` into `buf` at `at`, page by page, stopping
/// at the first page that cannot be read (a read is all or nothing, and the stack's last page may
/// end the mapping). Returns the bytes copied.
#[inline(always)]
fn copy_window(buf: *mut u8, at: usize, sp: u64, want: u32) -> u32 {
    let want = if want > MAX_WINDOW as u32 {
        MAX_WINDOW as u32
    } else {
        want
    };
    let mut done: u32 = 0;
    // One more page than the window spans: it need not start page aligned.
    for _ in 0..MAX_WINDOW / 4096 + 1 {
        if done >= want {
            break;
        }
        let addr = sp + done as u64;
        let room = 4096 - (addr & 4095) as u32;
        let chunk = if want - done < room {
            want - done
        } else {
            room
        };
        // Masks the verifier can follow: `at` is below 3 KiB (a header and two stacks), `done`
        // below MAX_WINDOW, `chunk` at most one page, so the copy stays inside the scratch slot.
        let dst = unsafe { buf.add((at & 0xfff) + (done as usize & (MAX_WINDOW - 1))) };
        let rc = unsafe { bpf_probe_read_user(dst.cast(), chunk & 0x1fff, addr as *const c_void) };
        if rc != 0 {
            break;
        }
        done += chunk;
    }
    done
}

/// Set when a program that must not wake user space wanted to: the next scheduler or profile
/// record (on any CPU) wakes it instead. One flag for all CPUs; a race only defers a wake-up to the
/// recorder's periodic drain.
#[map]
static WAKE_PENDING: Array<u32> = Array::with_max_entries(1, 0);

/// Writes `len` bytes of `buf` as one record. Wakes user space only once enough data is queued, so
/// the recorder's own wake-ups do not flood the scheduler it is tracing; losses are counted.
#[inline(always)]
pub fn emit(source: Source, buf: *const u8, len: usize) {
    emit_waking(source, buf, len, false);
}

/// [`emit`], waking user space at once when `now` (a rare record it must act on while the task
/// still exists: an exec).
#[inline(always)]
pub fn emit_waking(source: Source, buf: *const u8, len: usize, now: bool) {
    let len = len & (SCRATCH_SIZE - 1);
    let data = unsafe { core::slice::from_raw_parts(buf, len) };
    let queued = EVENTS.query(BPF_RB_AVAIL_DATA);
    let want = now || queued + len as u64 >= conf!(wakeup_bytes);
    // A wake-up is an irq_work: its interrupt arrives as soon as interrupts are enabled. Programs
    // that run with them enabled (exec, block issue, syscalls, ...) would take it inside
    // themselves, and the kernel would skip the scheduler programs for the recorder's own wake-up
    // as a recursion (a missed switch or wake-up per exec, measured). Scheduler programs run with
    // interrupts disabled and perf_event ones in a hard interrupt: the wake-up waits until they
    // return, so only they wake; the others leave it to them.
    let pending = WAKE_PENDING.get_ptr_mut(0);
    let wake = match source {
        Source::Sched | Source::Profile => {
            // Takes the flag another program left (written only when set: every CPU reads it).
            let asked = match pending {
                Some(p) if unsafe { *p } != 0 => {
                    unsafe { *p = 0 };
                    true
                }
                _ => false,
            };
            want || asked
        }
        _ => {
            if let (true, Some(p)) = (want, pending) {
                unsafe { *p = 1 };
            }
            false
        }
    };
    let flags = if wake {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    let counter = match EVENTS.output::<[u8]>(data, flags as u64) {
        Ok(()) => Counter::Emitted,
        Err(_) => Counter::LostRingbuf,
    };
    count(source, counter);
}

/// Writes a fixed-size record.
#[inline(always)]
pub fn emit_value<T>(source: Source, value: &T) {
    emit(source, (value as *const T).cast(), core::mem::size_of::<T>());
}

#[inline(always)]
fn count(source: Source, counter: Counter) {
    if let Some(p) = COUNTERS.get_ptr_mut(counter_index(source, counter)) {
        // A plain increment is exact: the kernel never nests tracepoint or perf_event programs on
        // one CPU (bpf_prog_active); a run it skips for that is counted in the program's
        // recursion_misses, which the recorder reads.
        unsafe { *p += 1 };
    }
}
