//! Plumbing every program shares: the config global, the per-CPU scratch buffer, stack walks, and
//! writing a record into the ring buffer with batched wake-ups and counted losses.
use core::ffi::c_void;

use aya_ebpf::{
    bindings::{BPF_F_USER_STACK, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns,
        generated::{bpf_get_stack, bpf_probe_read_kernel, bpf_probe_read_kernel_str},
    },
    macros::map,
    maps::{PerCpuArray, RingBuf},
    programs::TracePointContext,
    EbpfContext,
};
use flightrec_common::{
    counter_index, Config, Counter, EventHeader, EventKind, Source, COMM_LEN, COUNTER_ENTRIES,
    DATA_LOC_FLAG, MAX_STACK_BYTES, RAW_RECORD_MAX, SCRATCH_SIZE,
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

/// Slot 0 for tracepoints, slot 1 for perf_event programs (which run in NMI context).
#[map]
static SCRATCH: PerCpuArray<[u8; SCRATCH_SIZE]> = PerCpuArray::with_max_entries(2, 0);

/// Scratch slot for tracepoint programs.
pub const SLOT_TRACEPOINT: u32 = 0;
/// Scratch slot for perf_event programs.
pub const SLOT_PERF: u32 = 1;

/// The per-CPU buffer a record is assembled in.
#[inline(always)]
pub fn scratch(slot: u32) -> Option<*mut u8> {
    SCRATCH.get_ptr_mut(slot).map(|p| p.cast::<u8>())
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

/// Walks the kernel and then the user stack of the current task into `buf` at `offset`; the idle
/// task (tid 0) has no user stack to walk. Returns (kernel bytes or -errno, user bytes or -errno,
/// total record length).
#[inline(always)]
pub fn walk_stacks<C: EbpfContext>(
    ctx: &C,
    tid: u32,
    buf: *mut u8,
    offset: usize,
) -> (i32, i32, usize) {
    let k = unsafe {
        bpf_get_stack(
            ctx.as_ptr(),
            buf.add(offset).cast::<c_void>(),
            MAX_STACK_BYTES as u32,
            0,
        )
    };
    // The masks are no-ops for valid lengths (at most MAX_STACK_BYTES < 1024); they let the
    // verifier prove every access stays inside the scratch buffer.
    let kb = if k > 0 { (k as usize) & 0x3ff } else { 0 };
    if tid == 0 {
        return (k as i32, 0, offset + kb);
    }
    let u = unsafe {
        bpf_get_stack(
            ctx.as_ptr(),
            buf.add(offset + kb).cast::<c_void>(),
            MAX_STACK_BYTES as u32,
            BPF_F_USER_STACK as u64,
        )
    };
    let ub = if u > 0 { (u as usize) & 0x3ff } else { 0 };
    (k as i32, u as i32, offset + kb + ub)
}

/// Writes `len` bytes of `buf` as one record. Wakes user space only once enough data is queued, so
/// the recorder's own wake-ups do not flood the scheduler it is tracing; losses are counted.
#[inline(always)]
pub fn emit(source: Source, buf: *const u8, len: usize) {
    let len = len & (SCRATCH_SIZE - 1);
    let data = unsafe { core::slice::from_raw_parts(buf, len) };
    let queued = EVENTS.query(BPF_RB_AVAIL_DATA);
    let flags = if queued + len as u64 >= conf!(wakeup_bytes) {
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
