//! Per-segment stack table: identical stacks are stored once and referenced by id.
use rustc_hash::FxHashMap as HashMap;

use arrow::{
    array::{
        ArrayRef, BooleanBuilder, Int32Builder, ListBuilder, StringDictionaryBuilder,
        UInt32Builder, UInt64Builder,
    },
    datatypes::UInt16Type,
    record_batch::RecordBatch,
};
use flightrec_schemas::{
    unwind::{Method, Truncation},
    Table,
};

use crate::{decode::Stack, unwind::walk::Walk};

/// Key tag of kernel stacks; user stacks are tagged with their tgid (addresses are per process).
const KERNEL_TAG: u64 = u64::MAX;

/// Deduplicating stack table of one segment.
#[derive(Default)]
pub struct StackTable {
    /// Key = [tag, how obtained, frames...] → id. Ids are dense, so `entries[id]` is the stack.
    ids: HashMap<Box<[u64]>, u32>,
    entries: Vec<Box<[u64]>>,
    key: Vec<u64>,
    /// User stacks added since [`StackTable::take_fresh_user`] was last called.
    fresh_user: Vec<u32>,
}

/// Words of a key before the frames.
const HEAD: usize = 2;

/// How a user stack was obtained, as one key word: method and truncation, each as its index + 1.
fn status_word(method: Method, truncated: Option<Truncation>) -> u64 {
    let m = Method::ALL.iter().position(|x| *x == method).unwrap_or(0) as u64 + 1;
    let t = truncated.map_or(0, |t| {
        Truncation::ALL.iter().position(|x| *x == t).unwrap_or(0) as u64 + 1
    });
    m | t << 8
}

fn status_of(word: u64) -> (Option<Method>, Option<Truncation>) {
    let m = (word & 0xff) as usize;
    let t = (word >> 8) as usize;
    (
        m.checked_sub(1).and_then(|i| Method::ALL.get(i).copied()),
        t.checked_sub(1)
            .and_then(|i| Truncation::ALL.get(i).copied()),
    )
}

/// `v` sorted and made distinct by `key`, a frame that is a caller anywhere marked a caller.
fn distinct<T: Ord, K: PartialEq>(
    mut v: Vec<T>,
    key: impl Fn(&T) -> K,
    caller: impl Fn(&mut T) -> &mut bool,
) -> Vec<T> {
    v.sort_unstable();
    v.dedup_by(|next, kept| {
        let same = key(next) == key(kept);
        if same && *caller(next) {
            *caller(kept) = true;
        }
        same
    });
    v
}

impl StackTable {
    fn intern_key(&mut self, user: bool) -> u32 {
        if let Some(&id) = self.ids.get(self.key.as_slice()) {
            return id;
        }
        let id = self.entries.len() as u32;
        if user {
            self.fresh_user.push(id);
        }
        let key: Box<[u64]> = self.key.as_slice().into();
        self.entries.push(key.clone());
        self.ids.insert(key, id);
        id
    }

    /// Id of a kernel stack, adding it on first sight. `None` for a failed or empty walk.
    pub fn intern_kernel(&mut self, stack: &Stack<'_>) -> Option<u32> {
        let Stack::Frames(b) = stack else {
            return None;
        };
        if b.is_empty() {
            return None;
        }
        self.key.clear();
        self.key.extend([KERNEL_TAG, 0]);
        self.key.extend(stack.frames());
        Some(self.intern_key(false))
    }

    /// Id of an unwound user stack of process `tgid`; `None` when it has no frame.
    pub fn intern_user(&mut self, tgid: u32, walk: &Walk) -> Option<u32> {
        if walk.frames.is_empty() {
            return None;
        }
        self.key.clear();
        self.key
            .extend([tgid as u64, status_word(walk.method, walk.truncated)]);
        self.key.extend_from_slice(&walk.frames);
        Some(self.intern_key(true))
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
        // Called after every record: most add no user stack.
        if self.fresh_user.is_empty() {
            return Vec::new();
        }
        let fresh = std::mem::take(&mut self.fresh_user);
        fresh
            .into_iter()
            .map(|id| {
                let e = &self.entries[id as usize];
                (e[0] as i32, &e[HEAD..])
            })
            .collect()
    }

    /// Every distinct (tgid, address, caller) of the user stacks with ids from `first` on.
    /// `caller` is true when the address is a return address somewhere (any frame but a stack's
    /// first): it is named by the call before it, see [`flightrec_schemas::unwind::named_at`].
    pub fn user_addresses(&self, first: usize) -> Vec<(i32, u64, bool)> {
        let v = self.entries[first..]
            .iter()
            .filter(|e| e[0] != KERNEL_TAG)
            .flat_map(|e| {
                let tgid = e[0] as i32;
                e[HEAD..]
                    .iter()
                    .enumerate()
                    .map(move |(i, a)| (tgid, *a, i > 0))
            })
            .collect();
        distinct(v, |f| (f.0, f.1), |f| &mut f.2)
    }

    /// Every distinct (kernel frame address, caller) of the stacks with ids from `first` on.
    pub fn kernel_addresses(&self, first: usize) -> Vec<(u64, bool)> {
        let v = self.entries[first..]
            .iter()
            .filter(|e| e[0] == KERNEL_TAG)
            .flat_map(|e| e[HEAD..].iter().enumerate().map(|(i, a)| (*a, i > 0)))
            .collect();
        distinct(v, |f| f.0, |f| &mut f.1)
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
        let mut method = StringDictionaryBuilder::<UInt16Type>::new();
        let mut truncated = StringDictionaryBuilder::<UInt16Type>::new();
        for (i, e) in self.entries.iter().enumerate().skip(first) {
            id.append_value(i as u32);
            let is_kernel = e[0] == KERNEL_TAG;
            kernel.append_value(is_kernel);
            tgid.append_value(if is_kernel { 0 } else { e[0] as i32 });
            frames.values().append_slice(&e[HEAD..]);
            frames.append(true);
            let (m, t) = status_of(e[1]);
            method.append_option(m.map(Method::name));
            truncated.append_option(t.map(Truncation::name));
        }
        let cols: Vec<ArrayRef> = vec![
            std::sync::Arc::new(id.finish()),
            std::sync::Arc::new(tgid.finish()),
            std::sync::Arc::new(kernel.finish()),
            std::sync::Arc::new(frames.finish()),
            std::sync::Arc::new(method.finish()),
            std::sync::Arc::new(truncated.finish()),
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

    fn user(frames: &[u64], truncated: Option<Truncation>) -> Walk {
        Walk {
            frames: frames.to_vec(),
            method: Method::Cfi,
            truncated,
        }
    }

    #[test]
    fn identical_stacks_share_an_id_per_process_and_status() {
        let mut t = StackTable::default();
        let a = raw(&[1, 2, 3]);
        let b = raw(&[1, 2, 4]);
        let ka = t.intern_kernel(&Stack::Frames(&a)).unwrap();
        assert_eq!(t.intern_kernel(&Stack::Frames(&a)), Some(ka));
        let ua = t.intern_user(7, &user(&[1, 2, 3], None)).unwrap();
        let ub = t.intern_user(8, &user(&[1, 2, 3], None)).unwrap();
        assert_ne!(ua, ub, "user stacks are per process");
        let cut = t
            .intern_user(7, &user(&[1, 2, 3], Some(Truncation::StackCopy)))
            .unwrap();
        assert_ne!(cut, ua, "a truncated stack is not the whole one");
        assert_ne!(t.intern_kernel(&Stack::Frames(&b)).unwrap(), ka);
        assert_eq!(t.intern_kernel(&Stack::Error(14)), None);
        assert_eq!(t.intern_user(1, &user(&[], None)), None);
        assert_eq!(t.len(), 5);
        assert_eq!(
            t.kernel_addresses(0),
            vec![(1, false), (2, true), (3, true), (4, true)]
        );
        assert_eq!(
            t.user_addresses(0),
            vec![
                (7, 1, false),
                (7, 2, true),
                (7, 3, true),
                (8, 1, false),
                (8, 2, true),
                (8, 3, true)
            ]
        );
        let batch = t.finish(0);
        assert_eq!(batch.num_rows(), 5);
        let col = |name: &str| {
            let a = arrow::compute::cast(
                batch.column_by_name(name).unwrap(),
                &arrow::datatypes::DataType::Utf8,
            )
            .unwrap();
            let a = a
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .unwrap()
                .clone();
            (0..arrow::array::Array::len(&a))
                .map(|i| arrow::array::Array::is_valid(&a, i).then(|| a.value(i).to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            col("method")[ka as usize],
            None,
            "kernel stacks have no method"
        );
        assert_eq!(col("method")[ua as usize].as_deref(), Some("cfi"));
        assert_eq!(col("truncated")[ua as usize], None);
        assert_eq!(
            col("truncated")[cut as usize].as_deref(),
            Some("stack_copy")
        );
        assert_eq!(
            t.finish(3).num_rows(),
            2,
            "a journal checkpoint's new stacks"
        );
    }
}
