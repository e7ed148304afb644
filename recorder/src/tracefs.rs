//! Tracepoint field offsets, read from tracefs `format` files at load time so the same eBPF object
//! works on kernels whose tracepoint layouts differ.
use std::{
    collections::HashMap,
    ffi::CString,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use flightrec_common::{
    BlockOffsets, ProcessOffsets, SwitchOffsets, SyscallOffsets, TcpOffsets, WakeupOffsets,
    DATA_LOC_FLAG,
};
use flightrec_schemas::task_state;

/// One field of a tracepoint record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldInfo {
    /// Byte offset from the record start.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
    /// True for a `__data_loc` (variable-length) field.
    pub data_loc: bool,
}

/// Parsed `format` file: field name → info.
#[derive(Clone, Debug, Default)]
pub struct Format {
    event: String,
    fields: HashMap<String, FieldInfo>,
    /// The `print fmt:` line, after the colon.
    print_fmt: String,
}

impl Format {
    /// Parses the text of a tracefs `format` file.
    pub fn parse(event: &str, text: &str) -> Result<Format> {
        let mut fields = HashMap::new();
        let mut print_fmt = String::new();
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("print fmt:") {
                print_fmt = rest.trim().to_string();
            }
            let Some(rest) = line.strip_prefix("field:") else {
                continue;
            };
            let mut decl = None;
            let (mut offset, mut size) = (None, None);
            for part in rest.split(';').map(str::trim) {
                if let Some(v) = part.strip_prefix("offset:") {
                    offset = v.parse::<u32>().ok();
                } else if let Some(v) = part.strip_prefix("size:") {
                    size = v.parse::<u32>().ok();
                } else if decl.is_none() && !part.is_empty() {
                    decl = Some(part);
                }
            }
            let (Some(decl), Some(offset), Some(size)) = (decl, offset, size) else {
                bail!("{event}: cannot parse format line {line:?}");
            };
            let name = decl
                .rsplit(|c: char| c.is_whitespace() || c == '*')
                .next()
                .unwrap_or(decl);
            let name = name.split('[').next().unwrap_or(name).to_string();
            let data_loc = decl.starts_with("__data_loc");
            fields.insert(
                name,
                FieldInfo {
                    offset,
                    size,
                    data_loc,
                },
            );
        }
        if fields.is_empty() {
            bail!("{event}: format file lists no fields");
        }
        Ok(Format {
            event: event.to_string(),
            fields,
            print_fmt,
        })
    }

    /// A field that must exist with one of the given sizes.
    pub fn field(&self, name: &str, sizes: &[u32]) -> Result<&FieldInfo> {
        let f = self.fields.get(name).with_context(|| {
            format!(
                "tracepoint {} has no field {name}: this kernel's layout is not supported",
                self.event
            )
        })?;
        if !f.data_loc && !sizes.contains(&f.size) {
            bail!(
                "tracepoint {} field {name} has size {}, expected {sizes:?}: this kernel's layout is not supported",
                self.event,
                f.size
            );
        }
        Ok(f)
    }

    /// Offset of a field that must exist with one of the given sizes.
    pub fn offset(&self, name: &str, sizes: &[u32]) -> Result<u32> {
        Ok(self.field(name, sizes)?.offset)
    }

    /// Offset of a string field, with [`DATA_LOC_FLAG`] set when it is a `__data_loc` string.
    pub fn string(&self, name: &str) -> Result<u32> {
        let f = self.field(name, &[16])?;
        Ok(if f.data_loc {
            f.offset | DATA_LOC_FLAG
        } else {
            f.offset
        })
    }

    /// Length of the record: the end of its last field. Refused when the programs' copy would not
    /// hold every field.
    pub fn record_len(&self) -> Result<u32> {
        let len = self
            .fields
            .values()
            .map(|f| f.offset + f.size)
            .max()
            .unwrap_or(0);
        if len as usize > flightrec_common::RAW_RECORD_MAX - 1 {
            bail!(
                "tracepoint {} record is {len} bytes: this kernel's layout is not supported",
                self.event
            );
        }
        Ok(len)
    }

    /// True when the field exists.
    pub fn has(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }
}

/// The tracefs mount point, mounting it when the system has not (as perf does).
pub fn tracefs_root() -> Result<PathBuf> {
    for p in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        if Path::new(p).join("events").is_dir() {
            return Ok(PathBuf::from(p));
        }
    }
    let target = "/sys/kernel/tracing";
    let (src, dst, ty) = (
        CString::new("nodev")?,
        CString::new(target)?,
        CString::new("tracefs")?,
    );
    // SAFETY: valid NUL-terminated strings; no mount data.
    let rc = unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), ty.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        bail!(
            "tracefs is not mounted and mounting it at {target} failed: {} (run as root, or mount -t tracefs nodev {target})",
            std::io::Error::last_os_error()
        );
    }
    Ok(PathBuf::from(target))
}

/// Reads the format of `group/event`.
pub fn read_format(root: &Path, group: &str, event: &str) -> Result<Format> {
    let path = root.join("events").join(group).join(event).join("format");
    let text = fs::read_to_string(&path).with_context(|| {
        format!(
            "tracepoint {group}:{event} is not available ({})",
            path.display()
        )
    })?;
    Format::parse(&format!("{group}:{event}"), &text)
}

/// Offsets of `sched:sched_switch`. Also checks that the kernel reports a preempted task's state as
/// [`task_state::PREEMPTED`], the value captures document and analyses rely on.
pub fn switch_offsets(f: &Format) -> Result<SwitchOffsets> {
    match preempt_marker(&f.print_fmt) {
        Some(task_state::PREEMPTED) => {}
        Some(other) => bail!(
            "sched_switch reports a preempted task as prev_state {other:#x}, not {:#x}: this kernel is not supported",
            task_state::PREEMPTED
        ),
        None => bail!(
            "sched_switch's print format does not say how it reports preemption (`prev_state & X ? \"+\"`): this kernel is not supported"
        ),
    }
    Ok(SwitchOffsets {
        record_len: f.record_len()?,
        prev_comm: f.offset("prev_comm", &[16])?,
        prev_pid: f.offset("prev_pid", &[4])?,
        prev_prio: f.offset("prev_prio", &[4])?,
        prev_state: f.offset("prev_state", &[8])?,
        next_comm: f.offset("next_comm", &[16])?,
        next_pid: f.offset("next_pid", &[4])?,
        next_prio: f.offset("next_prio", &[4])?,
    })
}

/// The bit `sched_switch` sets in `prev_state` for a preempted task: the `X` of the print format's
/// `REC->prev_state & X ? "+" : ""` (ftrace prints such a state as `R+`).
fn preempt_marker(print_fmt: &str) -> Option<i64> {
    let end = print_fmt.find("? \"+\"")?;
    let start = print_fmt[..end].rfind("REC->prev_state &")? + "REC->prev_state &".len();
    const_expr(&print_fmt[start..end])
}

/// Value of a constant C expression of integers, parentheses, `+ - << |` (the kernel's state masks).
fn const_expr(text: &str) -> Option<i64> {
    fn parse(tokens: &[String], pos: &mut usize, min_prec: u8) -> Option<i64> {
        let tok = tokens.get(*pos)?.clone();
        *pos += 1;
        let mut lhs = if tok == "(" {
            let v = parse(tokens, pos, 0)?;
            (tokens.get(*pos)? == ")").then_some(())?;
            *pos += 1;
            v
        } else if let Some(hex) = tok.strip_prefix("0x") {
            i64::from_str_radix(hex, 16).ok()?
        } else {
            tok.parse().ok()?
        };
        while let Some(op) = tokens.get(*pos) {
            let prec = match op.as_str() {
                "|" => 1,
                "<<" => 2,
                "+" | "-" => 3,
                _ => break,
            };
            if prec < min_prec {
                break;
            }
            let op = op.clone();
            *pos += 1;
            let rhs = parse(tokens, pos, prec + 1)?;
            lhs = match op.as_str() {
                "|" => lhs | rhs,
                "<<" => lhs.checked_shl(rhs.try_into().ok()?)?,
                "+" => lhs.checked_add(rhs)?,
                _ => lhs.checked_sub(rhs)?,
            };
        }
        Some(lhs)
    }
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {}
            '(' | ')' | '|' | '+' | '-' => tokens.push(c.to_string()),
            '<' if chars.next_if_eq(&'<').is_some() => tokens.push("<<".into()),
            c if c.is_ascii_alphanumeric() => {
                let mut t = c.to_string();
                while let Some(d) = chars.next_if(|d| d.is_ascii_alphanumeric()) {
                    t.push(d);
                }
                tokens.push(t);
            }
            _ => return None,
        }
    }
    let mut pos = 0;
    let v = parse(&tokens, &mut pos, 0)?;
    (pos == tokens.len()).then_some(v)
}

/// Offsets of `sched:sched_wakeup`; `sched_wakeup_new` and `sched_waking` (the waker is taken
/// there: it runs in the waker's context) must have the same layout.
pub fn wakeup_offsets(
    wakeup: &Format,
    wakeup_new: &Format,
    waking: &Format,
) -> Result<WakeupOffsets> {
    let get = |f: &Format| -> Result<WakeupOffsets> {
        Ok(WakeupOffsets {
            record_len: f.record_len()?,
            comm: f.offset("comm", &[16])?,
            pid: f.offset("pid", &[4])?,
            prio: f.offset("prio", &[4])?,
            target_cpu: f.offset("target_cpu", &[4])?,
        })
    };
    let (a, b, c) = (get(wakeup)?, get(wakeup_new)?, get(waking)?);
    let layout = |o: &WakeupOffsets| (o.comm, o.pid, o.prio, o.target_cpu);
    if layout(&a) != layout(&b) || layout(&a) != layout(&c) {
        bail!("sched_wakeup, sched_wakeup_new and sched_waking differ in layout on this kernel: not supported");
    }
    Ok(a)
}

/// Offsets of exec, fork and exit.
pub fn process_offsets(exec: &Format, fork: &Format, exit: &Format) -> Result<ProcessOffsets> {
    let filename = exec.field("filename", &[])?;
    if !filename.data_loc {
        bail!(
            "sched_process_exec filename is not a __data_loc string on this kernel: not supported"
        );
    }
    Ok(ProcessOffsets {
        exec_filename: filename.offset,
        exec_pid: exec.offset("pid", &[4])?,
        exec_old_pid: exec.offset("old_pid", &[4])?,
        fork_parent_pid: fork.offset("parent_pid", &[4])?,
        fork_child_pid: fork.offset("child_pid", &[4])?,
        fork_child_comm: fork.string("child_comm")?,
        exit_comm: exit.string("comm")?,
        exit_pid: exit.offset("pid", &[4])?,
        exit_prio: exit.offset("prio", &[4])?,
        exit_group_dead: exit.offset("group_dead", &[1])?,
        // Not a tracepoint field: filled in from the kernel's BTF by the loader.
        task_exit_code: 0,
    })
}

/// Offsets of `block_rq_issue` (`complete` false) or `block_rq_complete`.
pub fn block_offsets(f: &Format, complete: bool) -> Result<BlockOffsets> {
    Ok(BlockOffsets {
        dev: f.offset("dev", &[4])?,
        sector: f.offset("sector", &[8])?,
        nr_sector: f.offset("nr_sector", &[4])?,
        bytes_or_error: if complete {
            f.offset("error", &[4])?
        } else {
            f.offset("bytes", &[4])?
        },
        rwbs: f.field("rwbs", &[8, 10, 16])?.offset,
    })
}

/// Offsets of `raw_syscalls:sys_enter` and `sys_exit`.
pub fn syscall_offsets(enter: &Format, exit: &Format) -> Result<SyscallOffsets> {
    Ok(SyscallOffsets {
        enter_id: enter.offset("id", &[8])?,
        exit_id: exit.offset("id", &[8])?,
        exit_ret: exit.offset("ret", &[8])?,
    })
}

/// Offsets of `sock:inet_sock_set_state` (`retransmit` false) or `tcp:tcp_retransmit_skb`.
pub fn tcp_offsets(f: &Format, retransmit: bool) -> Result<TcpOffsets> {
    let (oldstate, newstate) = if retransmit {
        let s = f.offset("state", &[4])?;
        (s, s)
    } else {
        (f.offset("oldstate", &[4])?, f.offset("newstate", &[4])?)
    };
    Ok(TcpOffsets {
        skaddr: f.offset("skaddr", &[8])?,
        oldstate,
        newstate,
        sport: f.offset("sport", &[2])?,
        dport: f.offset("dport", &[2])?,
        family: f.offset("family", &[2])?,
        protocol: if f.has("protocol") {
            f.offset("protocol", &[2])?
        } else {
            u32::MAX
        },
        saddr: f.offset("saddr", &[4])?,
        daddr: f.offset("daddr", &[4])?,
        saddr_v6: f.offset("saddr_v6", &[16])?,
        daddr_v6: f.offset("daddr_v6", &[16])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SWITCH: &str = "name: sched_switch\nID: 316\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\
\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;\n\
\tfield:int prev_prio;\toffset:28;\tsize:4;\tsigned:1;\n\
\tfield:long prev_state;\toffset:32;\tsize:8;\tsigned:1;\n\
\tfield:char next_comm[16];\toffset:40;\tsize:16;\tsigned:0;\n\
\tfield:pid_t next_pid;\toffset:56;\tsize:4;\tsigned:1;\n\
\tfield:int next_prio;\toffset:60;\tsize:4;\tsigned:1;\n\nprint fmt: \"prev_state=%s%s\", (REC->prev_state & ((((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) - 1)) ? __print_flags(REC->prev_state & ((((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) - 1), \"|\", { 0x00000001, \"S\" }) : \"R\", REC->prev_state & (((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) ? \"+\" : \"\", REC->next_comm\n";

    #[test]
    fn parses_switch_format() {
        let f = Format::parse("sched:sched_switch", SWITCH).unwrap();
        let o = switch_offsets(&f).unwrap();
        assert_eq!((o.prev_comm, o.prev_pid, o.prev_state), (8, 24, 32));
        assert_eq!((o.next_comm, o.next_pid, o.next_prio), (40, 56, 60));
        assert_eq!(o.record_len, 64, "end of next_prio");
    }

    #[test]
    fn preemption_marker_is_read_from_the_print_format() {
        let f = Format::parse("sched:sched_switch", SWITCH).unwrap();
        assert_eq!(preempt_marker(&f.print_fmt), Some(0x100));
        // Kernels before 4.14 printed `prev_state & 2048 ? "+"`: refused, not misread.
        let old = SWITCH.replace(
            "REC->prev_state & (((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) ?",
            "REC->prev_state & 2048 ?",
        );
        let f = Format::parse("sched:sched_switch", &old).unwrap();
        assert_eq!(preempt_marker(&f.print_fmt), Some(2048));
        let err = switch_offsets(&f).unwrap_err().to_string();
        assert!(err.contains("0x800"), "{err}");
        assert_eq!(const_expr("((1 | 2) + 1) << 1"), Some(8));
        assert_eq!(const_expr("(1 << 3) - 1"), Some(7));
        assert_eq!(
            const_expr("1 & 2"),
            None,
            "unknown operators are not guessed"
        );
    }

    #[test]
    fn data_loc_and_pointer_fields() {
        let text = "\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n\
\tfield:const void * skaddr;\toffset:16;\tsize:8;\tsigned:0;\n";
        let f = Format::parse("x:y", text).unwrap();
        assert!(f.field("filename", &[]).unwrap().data_loc);
        assert_eq!(f.offset("skaddr", &[8]).unwrap(), 16);
    }

    #[test]
    fn wrong_size_is_a_clear_error() {
        let text = SWITCH.replace(
            "long prev_state;\toffset:32;\tsize:8",
            "int prev_state;\toffset:32;\tsize:4",
        );
        let f = Format::parse("sched:sched_switch", &text).unwrap();
        let err = switch_offsets(&f).unwrap_err().to_string();
        assert!(err.contains("prev_state has size 4"), "{err}");
    }

    #[test]
    fn this_kernel_formats_parse() {
        let Ok(root) = tracefs_root() else {
            flightrec_tests::skip("tracefs is not available (needs root)");
            return;
        };
        let sw = read_format(&root, "sched", "sched_switch").unwrap();
        switch_offsets(&sw).unwrap();
        let exec = read_format(&root, "sched", "sched_process_exec").unwrap();
        let fork = read_format(&root, "sched", "sched_process_fork").unwrap();
        let exit = read_format(&root, "sched", "sched_process_exit").unwrap();
        process_offsets(&exec, &fork, &exit).unwrap();
    }
}
