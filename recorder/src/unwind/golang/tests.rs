//! The table of a real Go binary: the `go` command, if installed (CI installs it).
use super::*;

/// `.gopclntab` of the installed `go` command (.ci/run installs golang-go).
fn go_table() -> GoTable {
    table().expect("the go command (golang-go) with a Go 1.18+ .gopclntab: .ci/run installs it")
}

fn table() -> Option<GoTable> {
    use object::{Object, ObjectSection};
    let path = ["/usr/lib/go/bin/go", "/usr/local/go/bin/go"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let data: &'static [u8] = Box::leak(std::fs::read(path).ok()?.into_boxed_slice());
    let obj = object::File::parse(data).ok()?;
    let s = obj.section_by_name(".gopclntab")?;
    GoTable::parse(s.data().ok()?)
}

/// Every function of the table: (name, entry, end).
fn functions(t: &GoTable) -> Vec<(&'static str, u64, u64)> {
    (0..t.nfunc)
        .filter_map(|i| {
            let (start, _) = t.functab(i)?;
            let (f, range) = t.func(t.text_start + u64::from(start))?;
            Some((t.name_of(f)?, range.start, range.end))
        })
        .collect()
}

#[test]
fn a_go_binarys_table_gives_each_function_its_name_and_frame() {
    let t = go_table();
    let funcs = functions(&t);
    assert!(funcs.len() > 1000, "{} functions", funcs.len());
    let by_name = |n: &str| funcs.iter().find(|f| f.0 == n).copied();
    // The outermost frames of goroutines and of threads' system stacks.
    for top in ["runtime.goexit", "runtime.mstart", "runtime.rt0_go"] {
        let (_, entry, _) = by_name(top).unwrap_or_else(|| panic!("{top} in the table"));
        assert_eq!(t.rule(entry), Some(GoRule::Top), "{top}");
    }
    // The runtime's switches to the system stack.
    for switch in ["runtime.systemstack", "runtime.mcall", "runtime.morestack"] {
        let (_, entry, _) = by_name(switch).unwrap();
        assert_eq!(t.rule(entry), Some(GoRule::StackSwitch), "{switch}");
    }
    // main.main: at its entry only the return address is on the stack; once its prologue has
    // run, its frame (the same size wherever it calls from).
    let (_, entry, end) = by_name("main.main").unwrap();
    assert_eq!(
        t.rule(entry),
        Some(GoRule::Frame {
            cfa: 8,
            exact_return: false
        })
    );
    assert_eq!(t.function(entry + 1), Some(("main.main", entry)));
    let sizes: std::collections::BTreeSet<i64> = (entry..end)
        .filter_map(|a| match t.rule(a) {
            Some(GoRule::Frame { cfa, .. }) => Some(cfa),
            _ => None,
        })
        .collect();
    assert!(
        sizes.len() >= 2 && sizes.iter().all(|c| *c >= 8 && c % 8 == 0),
        "{sizes:?}"
    );
    // Nothing past the text.
    let last = funcs.iter().map(|f| f.2).max().unwrap();
    assert_eq!(t.rule(last), None);
    assert_eq!(t.rule(t.text_start - 1), None);
}

#[test]
fn a_damaged_table_is_refused_or_answers_nothing() {
    assert!(GoTable::parse(&[]).is_none());
    assert!(GoTable::parse(&[0xf0, 0xff, 0xff, 0xff, 0, 0, 1, 8]).is_none());
    let t = go_table();
    // The header with its tables cut off: offsets past the end are refused.
    let cut: &'static [u8] = Box::leak(t.data[..128].to_vec().into_boxed_slice());
    assert!(GoTable::parse(cut).is_none());
}

#[test]
fn varints_and_zigzag_values_decode_as_the_runtime_does() {
    assert_eq!(varint(&[0x05]), Some((5, 1)));
    assert_eq!(varint(&[0x80, 0x01]), Some((128, 2)));
    assert_eq!(varint(&[0x80, 0x80]), None);
    assert_eq!(varint(&[0xff; 6]), None);
}
