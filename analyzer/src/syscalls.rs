//! Syscall names for the capture's architecture (the `syscalls` crate's tables).
/// Name of syscall `id` on `arch`, or `syscall_<id>`.
pub fn name(arch: &str, id: i32) -> String {
    let known = usize::try_from(id).ok().and_then(|id| match arch {
        "x86_64" => syscalls::x86_64::Sysno::new(id).map(|s| s.name()),
        "aarch64" => syscalls::aarch64::Sysno::new(id).map(|s| s.name()),
        _ => None,
    });
    known.map_or_else(|| format!("syscall_{id}"), str::to_string)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_per_arch() {
        assert_eq!(super::name("x86_64", 0), "read");
        assert_eq!(super::name("x86_64", 1), "write");
        assert_eq!(super::name("aarch64", 63), "read");
        assert_eq!(super::name("x86_64", -1), "syscall_-1");
        assert_eq!(super::name("sparc", 3), "syscall_3");
    }
}
