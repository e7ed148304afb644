//! CFI lookups on this test binary's own code, made-up expressions, and a function made as
//! glibc makes clone3.
use super::*;

#[inline(never)]
#[no_mangle]
fn flightrec_cfi_test_marker() -> u64 {
    std::hint::black_box(7)
}

/// The module address of a function of this test binary.
fn own_address(f: u64) -> (std::path::PathBuf, u64) {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for l in maps.lines() {
        let mut parts = l.split_whitespace();
        let range = parts.next().unwrap();
        let _perms = parts.next();
        let off = u64::from_str_radix(parts.next().unwrap(), 16).unwrap();
        let (a, b) = range.split_once('-').unwrap();
        let (a, b) = (
            u64::from_str_radix(a, 16).unwrap(),
            u64::from_str_radix(b, 16).unwrap(),
        );
        if (a..b).contains(&f) {
            let path = l.split_whitespace().nth(5).unwrap();
            let file_off = f - a + off;
            let data = std::fs::read(path).unwrap();
            let obj = object::File::parse(&*data).unwrap();
            use object::{Object, ObjectSegment};
            let seg = obj
                .segments()
                .find(|s| {
                    let (o, n) = s.file_range();
                    (o..o + n).contains(&file_off)
                })
                .unwrap();
            return (path.into(), seg.address() + file_off - seg.file_range().0);
        }
    }
    panic!("not mapped");
}

#[test]
fn expressions_read_the_stack_and_cannot_loop_forever() {
    // glibc's signal trampoline: CFA = *(rsp + 160), the stack pointer the kernel saved.
    let mut mem = |a: u64| (a == 0x10a0).then_some(0x2000);
    let saved_sp = [0x77, 0xa0, 0x01, 0x06]; // DW_OP_breg7 160; DW_OP_deref
    if Arch::HOST == Arch::X86_64 {
        assert_eq!(
            evaluate(&saved_sp, Arch::X86_64, 0x1000, 0, None, &mut mem),
            Some(0x2000)
        );
    }
    // DW_OP_skip -3: a jump to itself.
    let spin = [0x2f, 0xfd, 0xff];
    assert_eq!(evaluate(&spin, Arch::HOST, 0x1000, 0, None, &mut mem), None);
}

#[test]
fn a_function_of_this_binary_has_a_rule() {
    let (path, addr) = own_address(flightrec_cfi_test_marker as *const () as u64);
    let cfi = ModuleCfi::load(&File::open(&path).unwrap(), Arch::HOST).expect("CFI");
    let mut ctx = UnwindContext::new();
    match cfi.lookup(addr, &mut ctx) {
        Lookup::Rule(Rule::Frame { cfa, ra, .. }) => {
            // At a function's first instruction the CFA is sp + 8 on x86_64.
            if Arch::HOST == Arch::X86_64 {
                assert_eq!((cfa, ra), (Cfa::Sp(8), Recover::At(-8)));
            }
        }
        other => panic!("{other:?}"),
    }
    // Anywhere inside it, the code range begins at its entry.
    assert_eq!(cfi.function_start(addr), Some(addr));
    assert_eq!(cfi.function_start(addr + 3), Some(addr));
    if let Ok(spec) = std::env::var("FLIGHTREC_CFI_PROBE") {
        let (p, a) = spec.split_once(':').unwrap();
        let cfi = ModuleCfi::load(&File::open(p).unwrap(), Arch::HOST).expect("CFI");
        let a = u64::from_str_radix(a, 16).unwrap();
        eprintln!("{p} {a:#x}: {:?} {cfi:?}", cfi.lookup(a, &mut ctx));
    }
}

// A function made as glibc makes clone3: its CFI ends at the syscall, so the code after it
// (the new thread's return, and the parent's) has none. Never called.
#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".text",
    ".globl flightrec_clone_gap_test",
    ".type flightrec_clone_gap_test, @function",
    "flightrec_clone_gap_test:",
    ".cfi_startproc",
    "mov $0x1b3, %eax",
    ".cfi_endproc",
    "syscall",
    "ret",
    options(att_syntax)
);

#[cfg(target_arch = "x86_64")]
extern "C" {
    fn flightrec_clone_gap_test();
}

#[cfg(target_arch = "x86_64")]
#[test]
fn the_code_after_a_syscall_that_ends_its_cfi_keeps_the_rule_before_it() {
    let f = flightrec_clone_gap_test as *const () as u64;
    let (path, addr) = own_address(f);
    let cfi = ModuleCfi::load(&File::open(&path).unwrap(), Arch::HOST).expect("CFI");
    let mut ctx = UnwindContext::new();
    // mov (5 bytes), syscall (2): the return from the syscall is at +7.
    let gap = Lookup::Rule(Rule::Frame {
        cfa: Cfa::Sp(8),
        ra: Recover::At(-8),
        fp: Recover::Same,
        aux: Recover::Same,
        signal: false,
        clone_gap: true,
    });
    assert_eq!(cfi.lookup(addr + 7, &mut ctx), gap);
    // The syscall instruction itself (its first and second byte) is not after a syscall.
    // (What follows the ret at +7 depends on the link: the next function may begin there.)
    assert_eq!(cfi.lookup(addr + 5, &mut ctx), Lookup::NotCovered);
    assert_eq!(cfi.lookup(addr + 6, &mut ctx), Lookup::NotCovered);
    // Code with CFI is looked up as ever.
    assert!(matches!(
        cfi.lookup(addr, &mut ctx),
        Lookup::Rule(Rule::Frame {
            clone_gap: false,
            ..
        })
    ));
}
