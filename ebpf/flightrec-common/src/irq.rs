//! Hard and soft interrupts: `irq:irq_handler_entry`/`_exit`, `irq:softirq_entry`/`_exit`.
use crate::EventHeader;

/// Bytes of an IRQ handler's name kept, with the NUL.
pub const IRQ_NAME_LEN: usize = 32;

/// One IRQ handler or softirq entry or exit ([`crate::EventKind`] says which). Current is whatever
/// the interrupt came upon.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IrqEvent {
    /// Common prefix.
    pub hdr: EventHeader,
    /// IRQ number, or softirq vector.
    pub irq: i32,
    /// Handler exit: 1 handled, 0 not; else 0.
    pub ret: i32,
    /// Handler entry: the handler's name, NUL terminated; else empty.
    pub name: [u8; IRQ_NAME_LEN],
}

/// Tracepoint field offsets of the IRQ events (`name` is a `__data_loc` string: `DATA_LOC_FLAG`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IrqOffsets {
    pub entry_irq: u32,
    pub entry_name: u32,
    pub exit_irq: u32,
    pub exit_ret: u32,
    pub softirq_vec: u32,
}
