//! The byte offset of a struct member from the kernel's BTF (`/sys/kernel/btf/vmlinux`).
//!
//! Written here rather than taken from a crate: aya 0.14 keeps BTF member access private, and the
//! BTF parser crate on crates.io is LGPL. Only what a member lookup needs is read: the type
//! section is walked once, kind by kind, to find the struct and descend into anonymous members.
use anyhow::{bail, Context, Result};

const MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;

struct Type {
    name_off: u32,
    kind: u32,
    kflag: bool,
    /// Size in bytes (structs, unions, integers, enums).
    size: u32,
    /// Struct/union members: (name offset, type id, offset field).
    members: Vec<(u32, u32, u32)>,
}

/// Parsed BTF types and strings.
pub struct Btf {
    types: Vec<Type>,
    strings: Vec<u8>,
}

fn u32_at(d: &[u8], at: usize) -> Result<u32> {
    let b = d.get(at..at + 4).context("BTF is truncated")?;
    Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
}

/// Bytes that follow a type's common header, by kind.
fn extra(kind: u32, vlen: usize) -> usize {
    match kind {
        1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
        3 => 12,                      // ARRAY
        4 | 5 | 15 | 19 => vlen * 12, // STRUCT, UNION, DATASEC, ENUM64
        6 | 13 => vlen * 8,           // ENUM, FUNC_PROTO
        _ => 0,
    }
}

impl Btf {
    /// Parses little-endian BTF data.
    pub fn parse(d: &[u8]) -> Result<Btf> {
        if d.len() < 24 || u16::from_le_bytes([d[0], d[1]]) != MAGIC {
            bail!("not BTF data (or not little-endian)");
        }
        let hdr_len = u32_at(d, 4)? as usize;
        let (type_off, type_len) = (u32_at(d, 8)? as usize, u32_at(d, 12)? as usize);
        let (str_off, str_len) = (u32_at(d, 16)? as usize, u32_at(d, 20)? as usize);
        let strings = d
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .context("BTF string section out of bounds")?
            .to_vec();
        let (mut at, end) = (hdr_len + type_off, hdr_len + type_off + type_len);
        // Type ids start at 1; index 0 stands for void.
        let mut types = vec![Type {
            name_off: 0,
            kind: 0,
            kflag: false,
            size: 0,
            members: Vec::new(),
        }];
        while at < end {
            let (name_off, info, size) = (u32_at(d, at)?, u32_at(d, at + 4)?, u32_at(d, at + 8)?);
            let (kind, vlen, kflag) = (
                (info >> 24) & 0x1f,
                (info & 0xffff) as usize,
                info >> 31 == 1,
            );
            at += 12;
            let mut members = Vec::new();
            if kind == KIND_STRUCT || kind == KIND_UNION {
                for m in 0..vlen {
                    let p = at + m * 12;
                    members.push((u32_at(d, p)?, u32_at(d, p + 4)?, u32_at(d, p + 8)?));
                }
            }
            at += extra(kind, vlen);
            types.push(Type {
                name_off,
                kind,
                kflag,
                size,
                members,
            });
        }
        Ok(Btf { types, strings })
    }

    /// Reads the running kernel's BTF.
    pub fn from_kernel() -> Result<Btf> {
        let d =
            std::fs::read("/sys/kernel/btf/vmlinux").context("reading /sys/kernel/btf/vmlinux")?;
        Btf::parse(&d)
    }

    fn name(&self, off: u32) -> &[u8] {
        let s = self.strings.get(off as usize..).unwrap_or_default();
        &s[..s.iter().position(|&b| b == 0).unwrap_or(s.len())]
    }

    /// The struct named `name` (one with members: not a forward declaration).
    fn find_struct(&self, kind: u32, name: &str) -> Option<usize> {
        self.types.iter().position(|t| {
            t.kind == kind && !t.members.is_empty() && self.name(t.name_off) == name.as_bytes()
        })
    }

    /// Size in bytes of `struct name`.
    pub fn struct_size(&self, name: &str) -> Result<u32> {
        let id = self
            .find_struct(KIND_STRUCT, name)
            .with_context(|| format!("struct {name} not in the kernel's BTF"))?;
        Ok(self.types[id].size)
    }

    /// Byte offset of `member` in `struct name`, looking into anonymous struct and union members.
    pub fn member_offset(&self, name: &str, member: &str) -> Result<u32> {
        let id = self
            .find_struct(KIND_STRUCT, name)
            .with_context(|| format!("struct {name} not in the kernel's BTF"))?;
        self.find(id, member, 0)
            .map(|bits| bits / 8)
            .with_context(|| format!("struct {name} has no member {member} in the kernel's BTF"))
    }

    fn find(&self, id: usize, member: &str, base_bits: u32) -> Option<u32> {
        let t = self.types.get(id)?;
        for &(name_off, ty, off) in &t.members {
            let bits = base_bits + if t.kflag { off & 0xff_ffff } else { off };
            let name = self.name(name_off);
            if name == member.as_bytes() {
                return Some(bits);
            }
            if name.is_empty() {
                if let Some(found) = self.find(ty as usize, member, bits) {
                    return Some(found);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_task_struct_members_of_this_kernel() {
        let Ok(btf) = Btf::from_kernel() else {
            flightrec_tests::skip("no kernel BTF here");
            return;
        };
        let exit_code = btf.member_offset("task_struct", "exit_code").unwrap();
        // x86_64's IRQ stack is as large as a task's kernel stack: 16 KiB (32 KiB with KASAN).
        let stack = btf.struct_size("irq_stack").unwrap();
        assert!([16384, 32768].contains(&stack), "{stack}");
        let pid = btf.member_offset("task_struct", "pid").unwrap();
        assert!(
            exit_code > 0 && pid > 0 && exit_code != pid,
            "{exit_code} {pid}"
        );
        assert!(btf.member_offset("task_struct", "no_such_member").is_err());
        assert!(btf.member_offset("no_such_struct", "x").is_err());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Btf::parse(b"not btf at all, just bytes here").is_err());
        assert!(Btf::parse(&[
            0x9f, 0xeb, 1, 0, 24, 0, 0, 0, 0, 0, 0, 0, 255, 255, 0, 0, 0, 0, 0, 0, 9, 9, 9, 9
        ])
        .is_err());
    }
}
