//! The table of a real Go binary: the installed `go` command (.ci/run installs golang-go).
use std::sync::OnceLock;

use super::*;

/// `.gopclntab` of the installed `go` command, read once for all tests.
fn go_table() -> GoTable<'static> {
    static SECTION: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    let section = SECTION.get_or_init(|| {
        use object::{Object, ObjectSection};
        let path = ["/usr/lib/go/bin/go", "/usr/local/go/bin/go"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        let data = std::fs::read(path).ok()?;
        let obj = object::File::parse(&*data).ok()?;
        Some(obj.section_by_name(".gopclntab")?.data().ok()?.to_vec())
    });
    section
        .as_deref()
        .and_then(GoTable::parse)
        .expect("the go command (golang-go) with a Go 1.18+ .gopclntab: .ci/run installs it")
}

/// Every function of the table: (name, entry, end).
fn functions<'a>(t: &GoTable<'a>) -> Vec<(&'a str, u64, u64)> {
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
    // cmd/go's main.main is in cmd/go/main.go, its first line a few lines into the file.
    let (file, line) = t.line(entry).expect("main.main's own code has a line");
    assert!(
        file.ends_with("cmd/go/main.go") && line > 1,
        "{file}:{line}"
    );
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
    assert!(GoTable::parse(&t.data[..128]).is_none());
}

#[test]
fn varints_and_zigzag_values_decode_as_the_runtime_does() {
    assert_eq!(varint(&[0x05]), Some((5, 1)));
    assert_eq!(varint(&[0x80, 0x01]), Some((128, 2)));
    assert_eq!(varint(&[0x80, 0x80]), None);
    assert_eq!(varint(&[0xff; 6]), None);
}

#[test]
fn a_table_with_bytes_overwritten_anywhere_never_panics() {
    // The recorder reads the tables of whatever binaries run, as root: damage must cost answers,
    // never the process. Deterministic xorshift, so a failure reproduces.
    let t = go_table();
    let funcs = functions(&t);
    let (lo, hi) = (funcs[0].1, funcs.iter().map(|f| f.2).max().unwrap());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..200 {
        let mut data = t.data.to_vec();
        for _ in 0..64 {
            // Mostly the header and function table, where offsets live.
            let span = if next() % 2 == 0 { 4096 } else { data.len() };
            let at = (next() as usize) % span.min(data.len());
            data[at] = next() as u8;
        }
        let Some(damaged) = GoTable::parse(&data) else {
            continue;
        };
        for _ in 0..200 {
            let addr = lo + next() % (hi - lo + 64);
            let _ = damaged.rule(addr);
            let _ = damaged.function(addr);
        }
    }
}
