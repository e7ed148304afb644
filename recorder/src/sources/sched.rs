//! `sched`: context switches (with the stacks of the task leaving) and wake-ups (with their
//! waker, from `sched_waking`).
use anyhow::{bail, Result};
use flightrec_common::{Config, SwitchOffsets, TaskOffsets, WakeupOffsets};
use flightrec_schemas::task_state;

use super::{Kernel, Tracepoint};
use crate::tracefs::Format;

pub const TRACEPOINTS: &[Tracepoint] = &[
    ("sched_switch", "sched", "sched_switch"),
    ("sched_waking", "sched", "sched_waking"),
    ("sched_wakeup", "sched", "sched_wakeup"),
    ("sched_wakeup_new", "sched", "sched_wakeup_new"),
];

/// The scheduler's programs as BTF raw tracepoints, by the tracepoint program each stands in for
/// (the tracepoint has the same name). Attached instead where [`Config::task`] is known.
const BTF_PROGRAMS: &[(&str, &str)] = &[
    ("sched_switch", "sched_switch_btf"),
    ("sched_waking", "sched_waking_btf"),
    ("sched_wakeup", "sched_wakeup_btf"),
    ("sched_wakeup_new", "sched_wakeup_new_btf"),
];

/// The oldest kernel whose task states [`flightrec_common::switch_state`] encodes as its
/// `sched_switch` tracepoint does (`TASK_FROZEN`, 6.1).
pub const RAW_STATES_SINCE: (u32, u32) = (6, 1);

/// The raw program to attach for tracepoint program `program` under config `c`, if any: none
/// without the task offsets, and none for `sched_waking` with the waker's stacks (telling an
/// interrupt's waking needs the registers a tracepoint program gets).
pub fn raw_program(program: &str, c: &Config) -> Option<&'static str> {
    btf_program(program)
        .filter(|_| c.task.known() && !(program == "sched_waking" && c.waker_stacks != 0))
}

/// The BTF raw tracepoint program that stands in for tracepoint program `program`, if any.
pub fn btf_program(program: &str) -> Option<&'static str> {
    BTF_PROGRAMS
        .iter()
        .find(|(tp, _)| *tp == program)
        .map(|(_, btf)| *btf)
}

pub fn configure(c: &mut Config, k: &Kernel) -> Result<()> {
    let version = crate::host::release_version(&crate::host::kernel_release());
    if k.raw_tracepoints && version >= RAW_STATES_SINCE {
        c.task = task_offsets(k.btf_offset);
    }
    c.switch = switch_offsets(&(k.format)("sched", "sched_switch")?)?;
    c.wakeup = wakeup_offsets(
        &(k.format)("sched", "sched_wakeup")?,
        &(k.format)("sched", "sched_wakeup_new")?,
        &(k.format)("sched", "sched_waking")?,
    )?;
    Ok(())
}

/// The task fields the BTF raw tracepoint programs read (all 0 unless every one is in the BTF).
fn task_offsets(btf_offset: &dyn Fn(&str, &str) -> u32) -> TaskOffsets {
    let info = btf_offset("task_struct", "thread_info");
    let cpu = btf_offset("thread_info", "cpu");
    let t = TaskOffsets {
        pid: btf_offset("task_struct", "pid"),
        prio: btf_offset("task_struct", "prio"),
        comm: btf_offset("task_struct", "comm"),
        exit_state: btf_offset("task_struct", "exit_state"),
        cpu: if cpu == 0 { 0 } else { info + cpu },
    };
    if t.known() {
        t
    } else {
        TaskOffsets::default()
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracefs::{read_format, tracefs_root};

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
    fn raw_programs_report_preemption_as_the_captures_document() {
        assert_eq!(flightrec_common::STATE_PREEMPTED, task_state::PREEMPTED);
        assert_eq!(
            flightrec_common::switch_state(true, 0, 0),
            task_state::PREEMPTED
        );
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
    fn this_kernel_sched_formats_parse() {
        let Ok(root) = tracefs_root() else {
            flightrec_tests::skip("tracefs is not available (needs root)");
            return;
        };
        let sw = read_format(&root, "sched", "sched_switch").unwrap();
        switch_offsets(&sw).unwrap();
        let wakeup = |e| read_format(&root, "sched", e).unwrap();
        wakeup_offsets(
            &wakeup("sched_wakeup"),
            &wakeup("sched_wakeup_new"),
            &wakeup("sched_waking"),
        )
        .unwrap();
    }
}
