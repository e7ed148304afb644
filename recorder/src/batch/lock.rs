//! Rows of `lock`: kernel lock contention begins (with the waiter's kernel stack) and ends.
use arrow::array::{ArrayRef, BooleanBuilder, Int32Builder, UInt32Builder, UInt64Builder};
use flightrec_common::{EventHeader, LockEvent};
use flightrec_schemas::Table;

use super::rows::{arc, Current, Dict, Header, Rows};

// The kernel's `LCB_F_*` contention flags (include/trace/events/lock.h).
const LCB_F_SPIN: u32 = 1 << 0;
const LCB_F_READ: u32 = 1 << 1;
const LCB_F_WRITE: u32 = 1 << 2;
const LCB_F_RT: u32 = 1 << 3;
const LCB_F_PERCPU: u32 = 1 << 4;
const LCB_F_MUTEX: u32 = 1 << 5;

/// What kind of lock a contention begin's flags say it is.
pub fn lock_kind(flags: u32) -> &'static str {
    let spin = flags & LCB_F_SPIN != 0;
    let (read, write) = (flags & LCB_F_READ != 0, flags & LCB_F_WRITE != 0);
    match () {
        _ if flags & LCB_F_PERCPU != 0 && read => "percpu_rwsem_read",
        _ if flags & LCB_F_PERCPU != 0 => "percpu_rwsem_write",
        _ if flags & LCB_F_RT != 0 => "rt_mutex",
        _ if flags & LCB_F_MUTEX != 0 => "mutex",
        _ if read && spin => "rwlock_read",
        _ if write && spin => "rwlock_write",
        _ if read => "rwsem_read",
        _ if write => "rwsem_write",
        _ if spin => "spinlock",
        _ => "other",
    }
}

#[derive(Default)]
pub struct Locks {
    h: Header,
    cur: Current,
    event: Dict,
    lock_addr: UInt64Builder,
    kind: Dict,
    spin: BooleanBuilder,
    ret: Int32Builder,
    kstack: UInt32Builder,
}

impl Locks {
    pub fn push(&mut self, h: &EventHeader, e: &LockEvent, end: bool, kstack: Option<u32>) {
        self.h.push(h);
        self.cur.push(h);
        self.lock_addr.append_value(e.lock_addr);
        if end {
            self.event.append_value("end");
            self.kind.append_null();
            self.spin.append_null();
            self.ret.append_value(e.ret);
        } else {
            self.event.append_value("begin");
            self.kind.append_value(lock_kind(e.flags));
            self.spin.append_value(e.flags & LCB_F_SPIN != 0);
            self.ret.append_null();
        }
        self.kstack.append_option(kstack);
    }
}

impl Rows for Locks {
    const TABLE: Table = Table::Lock;
    fn columns(&mut self) -> Vec<ArrayRef> {
        let mut cols = self.h.finish();
        cols.extend(self.cur.finish());
        cols.extend([
            arc(self.event.finish()),
            arc(self.lock_addr.finish()),
            arc(self.kind.finish()),
            arc(self.spin.finish()),
            arc(self.ret.finish()),
            arc(self.kstack.finish()),
        ]);
        cols
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_kernels_flags() {
        assert_eq!(lock_kind(LCB_F_MUTEX | LCB_F_SPIN), "mutex");
        assert_eq!(lock_kind(LCB_F_MUTEX), "mutex");
        assert_eq!(lock_kind(LCB_F_SPIN), "spinlock");
        assert_eq!(lock_kind(LCB_F_SPIN | LCB_F_READ), "rwlock_read");
        assert_eq!(lock_kind(LCB_F_WRITE), "rwsem_write");
        assert_eq!(lock_kind(LCB_F_PERCPU | LCB_F_READ), "percpu_rwsem_read");
        assert_eq!(lock_kind(LCB_F_RT), "rt_mutex");
    }
}
