//! Property-based fuzzing (proptest, stable Rust) of everything that reads untrusted bytes: the
//! manifest parser, the bundle importer and the capture reader. Each case must end in a value or
//! an error: no panic, and nothing written outside the importer's directory.
use std::fs;

use flightrec_analyzer::{bundle, capture::Capture, filter::Filter, offcpu, profile};
use flightrec_schemas::Manifest;
use proptest::prelude::*;

use super::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn manifest_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8)) {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("manifest.json");
        fs::write(&p, &bytes).unwrap();
        let _ = Manifest::read(&p);
        // Also damage a real manifest in a few places.
        let mut real = fs::read(fixture("basic").dir.join("manifest.json")).unwrap();
        for (at, x) in flips {
            let n = real.len();
            real[at % n] ^= x;
        }
        fs::write(&p, &real).unwrap();
        let _ = Manifest::read(&p);
    }

    #[test]
    fn bundle_importer_never_panics_or_escapes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let tmp = tempfile::tempdir().unwrap();
        let tar = tmp.path().join("x.tar");
        fs::write(&tar, &bytes).unwrap();
        let dest = tmp.path().join("out");
        fs::create_dir(&dest).unwrap();
        let _ = bundle::unpack(&tar, &dest);
        let names: Vec<_> = fs::read_dir(tmp.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        prop_assert_eq!(names.len(), 2, "only x.tar and out/ exist: {:?}", names);
    }

    #[test]
    fn corrupted_tables_are_errors_not_panics(table in 0usize..4, flips in proptest::collection::vec((any::<usize>(), 1u8..), 1..16)) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cap");
        copy_dir(&fixture("basic").dir, &dir);
        let name = ["sched_switch", "stacks", "tasks", "profile"][table];
        let mut segs: Vec<_> = fs::read_dir(dir.join("segments")).unwrap().flatten().map(|e| e.path()).collect();
        segs.sort();
        let p = segs[1].join(format!("{name}.parquet"));
        let mut bytes = fs::read(&p).unwrap();
        for (at, x) in flips {
            let n = bytes.len();
            bytes[at % n] ^= x;
        }
        fs::write(&p, &bytes).unwrap();
        if let Ok(cap) = Capture::open(&dir) {
            let f = Filter::default();
            let _ = offcpu::offcpu(&cap, &f, &offcpu::Options::default());
            let _ = profile::profile(&cap, &f);
        }
    }
}
