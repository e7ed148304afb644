//! Column types of the lake: what every engine reads well. Unsigned integers become signed
//! (64-bit addresses bit-cast, so kernel addresses are negative; narrower ones widened),
//! dictionaries plain strings.
use std::sync::Arc;

use arrow::{
    array::{Array, ArrayRef, AsArray, ListArray},
    datatypes::{DataType, Field, Int64Type, UInt64Type},
};

/// The lake type of a capture column type.
pub fn lake_type(t: &DataType) -> DataType {
    match t {
        DataType::UInt64 => DataType::Int64,
        DataType::UInt32 => DataType::Int64,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt8 => DataType::Int16,
        DataType::Dictionary(_, v) => lake_type(v),
        DataType::List(item) => DataType::List(Arc::new(Field::new(
            item.name(),
            lake_type(item.data_type()),
            item.is_nullable(),
        ))),
        other => other.clone(),
    }
}

/// Converts a capture column to its lake type.
pub fn to_lake(col: &ArrayRef) -> Result<ArrayRef, arrow::error::ArrowError> {
    let want = lake_type(col.data_type());
    match col.data_type() {
        // Bit-cast, not a checked cast: addresses above i64::MAX are the common case.
        DataType::UInt64 => Ok(Arc::new(
            col.as_primitive::<UInt64Type>()
                .unary::<_, Int64Type>(|v| v as i64),
        )),
        DataType::List(_) => {
            let list = col.as_list::<i32>();
            let DataType::List(item) = want else {
                unreachable!("lake_type keeps lists")
            };
            Ok(Arc::new(ListArray::try_new(
                item,
                list.offsets().clone(),
                to_lake(list.values())?,
                list.nulls().cloned(),
            )?))
        }
        t if *t == want => Ok(col.clone()),
        _ => arrow::compute::cast(col, &want),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{DictionaryArray, UInt64Array};
    use arrow::datatypes::UInt16Type;

    #[test]
    fn addresses_keep_their_bits_and_dictionaries_become_strings() {
        let a: ArrayRef = Arc::new(UInt64Array::from(vec![0xffff_ffff_8100_0010u64, 7]));
        let l = to_lake(&a).unwrap();
        let l = l.as_primitive::<Int64Type>();
        assert_eq!(l.value(0) as u64, 0xffff_ffff_8100_0010);
        assert!(l.value(0) < 0);
        assert_eq!(l.value(1), 7);
        let d: DictionaryArray<UInt16Type> =
            vec!["issue", "complete", "issue"].into_iter().collect();
        let d: ArrayRef = Arc::new(d);
        let s = to_lake(&d).unwrap();
        assert_eq!(s.data_type(), &DataType::Utf8);
        assert_eq!(s.as_string::<i32>().value(1), "complete");
    }
}
