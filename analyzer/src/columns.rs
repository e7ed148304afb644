//! Typed access to the columns of a batch whose schema [`Segment::read`](crate::capture::Segment::read)
//! has already checked.
use arrow::{
    array::{Array, AsArray, BooleanArray, PrimitiveArray, StringArray},
    datatypes::{ArrowPrimitiveType, DataType},
    record_batch::RecordBatch,
};

/// A primitive column.
pub fn prim<'a, T: ArrowPrimitiveType>(b: &'a RecordBatch, name: &str) -> &'a PrimitiveArray<T> {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("column {name} was projected"))
        .as_primitive::<T>()
}

/// A boolean column.
pub fn bools<'a>(b: &'a RecordBatch, name: &str) -> &'a BooleanArray {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("column {name} was projected"))
        .as_boolean()
}

/// A string column, plain or dictionary encoded, as plain strings.
pub fn strings(b: &RecordBatch, name: &str) -> StringArray {
    let a = b
        .column_by_name(name)
        .unwrap_or_else(|| panic!("column {name} was projected"));
    let plain = match a.data_type() {
        DataType::Utf8 => a.clone(),
        _ => arrow::compute::cast(a, &DataType::Utf8).expect("dictionary of utf8 casts to utf8"),
    };
    plain.as_string::<i32>().clone()
}

/// Value or None of a nullable primitive at `i`.
#[inline]
pub fn opt<T: ArrowPrimitiveType>(a: &PrimitiveArray<T>, i: usize) -> Option<T::Native> {
    a.is_valid(i).then(|| a.value(i))
}
