//! The committed eBPF object matches its sources and holds every program. Needs no root and no
//! eBPF toolchain: when this fails, run `ebpf/build.sh` and commit the result.
use std::{
    fs,
    path::{Path, PathBuf},
};

use object::{Object, ObjectSection, ObjectSymbol};
use sha2::{Digest, Sha256};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn collect(dir: &Path, root: &Path, out: &mut Vec<String>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
        if p.is_dir() {
            if e.file_name() != "target" {
                collect(&p, root, out);
            }
            continue;
        }
        let name = e.file_name().to_string_lossy().to_string();
        if name.ends_with(".rs")
            || name.ends_with(".sh")
            || ["Cargo.toml", "Cargo.lock", "config.toml"].contains(&name.as_str())
        {
            out.push(rel);
        }
    }
}

/// Same as ebpf/source-hash.sh.
fn source_hash() -> String {
    let root = root();
    let mut files = Vec::new();
    collect(&root.join("ebpf"), &root, &mut files);
    files.sort();
    let mut listing = String::new();
    for f in files {
        let digest = Sha256::digest(fs::read(root.join(&f)).unwrap());
        listing.push_str(&format!("{f}\n{digest:x}\n"));
    }
    format!("{:x}", Sha256::digest(listing.as_bytes()))
}

#[test]
fn object_was_rebuilt_after_the_last_source_change() {
    let recorded =
        fs::read_to_string(root().join("recorder/bpf/flightrec.bpf.o.source-hash")).unwrap();
    assert_eq!(
        recorded.trim(),
        source_hash(),
        "the eBPF sources changed since recorder/bpf/flightrec.bpf.o was built: run ebpf/build.sh and commit"
    );
}

#[test]
fn the_embedded_object_carries_the_hash_of_the_sources_it_was_built_from() {
    // Not the hash file: the bytes of the object the recorder embeds. An object copied in from
    // another build, or a hash file edited by hand, fails here.
    let obj = object::File::parse(flightrec_recorder::probes::OBJECT).expect("ELF object");
    let sym = obj
        .symbols()
        .find(|s| s.name() == Ok("FLIGHTREC_SOURCE_HASH"))
        .expect("FLIGHTREC_SOURCE_HASH in the object: run ebpf/build.sh");
    let section = obj
        .section_by_index(sym.section_index().expect("in a section"))
        .unwrap();
    let data = section.data().unwrap();
    let at = (sym.address() - section.address()) as usize;
    let embedded = std::str::from_utf8(&data[at..at + sym.size() as usize]).unwrap();
    assert_eq!(
        embedded,
        source_hash(),
        "recorder/bpf/flightrec.bpf.o was built from other sources: run ebpf/build.sh and commit"
    );
}

#[test]
fn object_holds_every_program_and_map() {
    let obj = object::File::parse(flightrec_recorder::probes::OBJECT).expect("ELF object");
    assert_eq!(obj.architecture(), object::Architecture::Bpf);
    let funcs: Vec<String> = obj
        .symbols()
        .filter(|s| s.kind() == object::SymbolKind::Text)
        .filter_map(|s| s.name().ok().map(String::from))
        .collect();
    for p in flightrec_recorder::probes::program_names() {
        assert!(
            funcs.iter().any(|f| f == p),
            "program {p} missing; have {funcs:?}"
        );
    }
    let symbols: Vec<String> = obj
        .symbols()
        .filter_map(|s| s.name().ok().map(String::from))
        .collect();
    for name in ["EVENTS", "COUNTERS", "SCRATCH", "CONFIG"] {
        assert!(symbols.iter().any(|s| s == name), "{name} missing");
    }
    let license = obj.section_by_name("license").expect("license section");
    assert_eq!(license.data().unwrap(), b"Dual MIT/GPL\0");
}
