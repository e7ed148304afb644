//! Per-segment stack table: identical stacks are stored once and referenced by id.
use std::collections::HashMap;

use arrow::{
    array::{ArrayRef, BooleanBuilder, Int32Builder, ListBuilder, UInt32Builder, UInt64Builder},
    record_batch::RecordBatch,
};
use flightrec_schemas::Table;

use crate::decode::Stack;

/// Key tag of kernel stacks; user stacks are tagged with their tgid (addresses are per process).
const KERNEL_TAG: u64 = u64::MAX;

/// Deduplicating stack table of one segment.
#[derive(Default)]
pub struct StackTable {
    /// Key = [tag, frames...] → id. Ids are dense, so `entries[id]` is the stack.
    ids: HashMap<Box<[u64]>, u32>,
    entries: Vec<Box<[u64]>>,
    key: Vec<u64>,
    /// User stacks added since [`StackTable::take_fresh_user`] was last called.
    fresh_user: Vec<u32>,
}

impl StackTable {
    /// Id of a stack, adding it on first sight. `None` for a failed or empty walk.
    pub fn intern(&mut self, stack: &Stack<'_>, kernel: bool, tgid: u32) -> Option<u32> {
        let Stack::Frames(b) = stack else {
            return None;
        };
        if b.is_empty() {
            return None;
        }
        self.key.clear();
        self.key.push(if kernel { KERNEL_TAG } else { tgid as u64 });
        self.key.extend(stack.frames());
        if let Some(&id) = self.ids.get(self.key.as_slice()) {
            return Some(id);
        }
        let id = self.entries.len() as u32;
        if !kernel {
            self.fresh_user.push(id);
        }
        let key: Box<[u64]> = self.key.as_slice().into();
        self.entries.push(key.clone());
        self.ids.insert(key, id);
        Some(id)
    }

    /// Number of distinct stacks.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// User stacks first seen since the last call, as (tgid, frames).
    pub fn take_fresh_user(&mut self) -> Vec<(i32, &[u64])> {
        let fresh = std::mem::take(&mut self.fresh_user);
        fresh
            .into_iter()
            .map(|id| {
                let e = &self.entries[id as usize];
                (e[0] as i32, &e[1..])
            })
            .collect()
    }

    /// Every distinct (tgid, address) of the user stacks with ids from `first` on.
    pub fn user_addresses(&self, first: usize) -> Vec<(i32, u64)> {
        let mut v: Vec<(i32, u64)> = self.entries[first..]
            .iter()
            .filter(|e| e[0] != KERNEL_TAG)
            .flat_map(|e| e[1..].iter().map(move |a| (e[0] as i32, *a)))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Every distinct kernel frame address of the stacks with ids from `first` on.
    pub fn kernel_addresses(&self, first: usize) -> Vec<u64> {
        let mut v: Vec<u64> = self.entries[first..]
            .iter()
            .filter(|e| e[0] == KERNEL_TAG)
            .flat_map(|e| e[1..].iter().copied())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The `stacks` table of the stacks with ids from `first` on (0: all of them).
    pub fn finish(&self, first: usize) -> RecordBatch {
        let n = self.entries.len() - first;
        let mut id = UInt32Builder::with_capacity(n);
        let mut tgid = Int32Builder::with_capacity(n);
        let mut kernel = BooleanBuilder::with_capacity(n);
        let mut frames = ListBuilder::new(UInt64Builder::new()).with_field(
            Table::Stacks
                .schema()
                .field(3)
                .data_type()
                .clone()
                .list_field(),
        );
        for (i, e) in self.entries.iter().enumerate().skip(first) {
            id.append_value(i as u32);
            let is_kernel = e[0] == KERNEL_TAG;
            kernel.append_value(is_kernel);
            tgid.append_value(if is_kernel { 0 } else { e[0] as i32 });
            frames.values().append_slice(&e[1..]);
            frames.append(true);
        }
        let cols: Vec<ArrayRef> = vec![
            std::sync::Arc::new(id.finish()),
            std::sync::Arc::new(tgid.finish()),
            std::sync::Arc::new(kernel.finish()),
            std::sync::Arc::new(frames.finish()),
        ];
        RecordBatch::try_new(Table::Stacks.schema(), cols).expect("stacks schema")
    }
}

trait ListField {
    fn list_field(self) -> std::sync::Arc<arrow::datatypes::Field>;
}

impl ListField for arrow::datatypes::DataType {
    fn list_field(self) -> std::sync::Arc<arrow::datatypes::Field> {
        match self {
            arrow::datatypes::DataType::List(f) => f,
            other => panic!("stacks.frames must be a list, is {other}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(frames: &[u64]) -> Vec<u8> {
        frames.iter().flat_map(|f| f.to_ne_bytes()).collect()
    }

    #[test]
    fn identical_stacks_share_an_id_per_process() {
        let mut t = StackTable::default();
        let a = raw(&[1, 2, 3]);
        let b = raw(&[1, 2, 4]);
        let ka = t.intern(&Stack::Frames(&a), true, 7).unwrap();
        assert_eq!(
            t.intern(&Stack::Frames(&a), true, 8),
            Some(ka),
            "kernel stacks ignore tgid"
        );
        let ua = t.intern(&Stack::Frames(&a), false, 7).unwrap();
        let ub = t.intern(&Stack::Frames(&a), false, 8).unwrap();
        assert_ne!(ua, ub, "user stacks are per process");
        assert_ne!(t.intern(&Stack::Frames(&b), true, 0).unwrap(), ka);
        assert_eq!(t.intern(&Stack::Error(14), true, 0), None);
        assert_eq!(t.intern(&Stack::Frames(&[]), false, 1), None);
        assert_eq!(t.len(), 4);
        assert_eq!(t.kernel_addresses(0), vec![1, 2, 3, 4]);
        assert_eq!(
            t.kernel_addresses(3),
            vec![1, 2, 4],
            "the stacks from id 3 on"
        );
        assert_eq!(
            t.user_addresses(3),
            vec![],
            "ids 1 and 2 are the user stacks"
        );
        assert_eq!(
            t.finish(2).num_rows(),
            2,
            "a journal checkpoint's new stacks"
        );
        let batch = t.finish(0);
        assert_eq!(batch.num_rows(), 4);
    }
}
