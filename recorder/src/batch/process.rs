//! Rows of `process`: forks, execs and exits.
use arrow::array::{ArrayRef, BooleanBuilder, Int32Builder, StringBuilder};
use flightrec_common::{EventHeader, ExecEvent};
use flightrec_schemas::Table;

use super::rows::{arc, Dict, Header, Rows};
use crate::decode::c_str;

/// The values of one process-table row.
pub struct ProcessRow<'a> {
    pub event: &'static str,
    pub tid: i32,
    pub tgid: Option<i32>,
    pub parent: Option<i32>,
    pub comm: &'a [u8; 16],
    pub filename: Option<&'a str>,
    /// An exec's command line and whether it was cut.
    pub args: Option<(String, bool)>,
    pub group_dead: Option<bool>,
    pub exit_code: Option<i32>,
}

#[derive(Default)]
pub struct Processes {
    h: Header,
    event: Dict,
    tid: Int32Builder,
    tgid: Int32Builder,
    parent_tid: Int32Builder,
    comm: StringBuilder,
    filename: StringBuilder,
    args: StringBuilder,
    args_truncated: BooleanBuilder,
    group_dead: BooleanBuilder,
    exit_code: Int32Builder,
}

impl Processes {
    pub fn push(&mut self, h: &EventHeader, r: ProcessRow<'_>) {
        self.h.push(h);
        self.event.append_value(r.event);
        self.tid.append_value(r.tid);
        self.tgid.append_option(r.tgid);
        self.parent_tid.append_option(r.parent);
        self.comm.append_value(c_str(r.comm));
        self.filename.append_option(r.filename);
        let (args, truncated) = r.args.unzip();
        self.args.append_option(args);
        self.args_truncated.append_option(truncated);
        self.group_dead.append_option(r.group_dead);
        self.exit_code.append_option(r.exit_code);
    }
}

impl Rows for Processes {
    const TABLE: Table = Table::Process;
    fn columns(&mut self) -> Vec<ArrayRef> {
        let mut cols = self.h.finish();
        cols.extend([
            arc(self.event.finish()),
            arc(self.tid.finish()),
            arc(self.tgid.finish()),
            arc(self.parent_tid.finish()),
            arc(self.comm.finish()),
            arc(self.filename.finish()),
            arc(self.args.finish()),
            arc(self.args_truncated.finish()),
            arc(self.group_dead.finish()),
            arc(self.exit_code.finish()),
        ]);
        cols
    }
}

/// An exec's command line as execsnoop prints it (the arguments joined by spaces) and whether it was
/// cut short (the argument area was larger than the copy); `None` when the kernel gave none.
pub fn exec_args(e: &ExecEvent, copied: &[u8]) -> Option<(String, bool)> {
    if e.args_total == 0 || copied.is_empty() {
        return None;
    }
    let truncated = e.args_total as usize > copied.len();
    // The area is the arguments, each NUL terminated; a cut one lacks its NUL.
    let mut words: Vec<_> = copied.split(|&b| b == 0).collect();
    if copied.last() == Some(&0) {
        words.pop();
    }
    let line = words
        .iter()
        .map(|w| String::from_utf8_lossy(w))
        .collect::<Vec<_>>()
        .join(" ");
    Some((line, truncated))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec_of(total: u32) -> ExecEvent {
        let mut e: ExecEvent = unsafe { std::mem::zeroed() };
        e.args_total = total;
        e
    }

    #[test]
    fn arguments_are_joined_and_a_cut_is_marked() {
        let whole = b"sleep\0-x\0a b\0";
        assert_eq!(
            exec_args(&exec_of(whole.len() as u32), whole),
            Some(("sleep -x a b".into(), false))
        );
        assert_eq!(
            exec_args(&exec_of(40), b"sleep\0-x\0a"),
            Some(("sleep -x a".into(), true))
        );
        assert_eq!(exec_args(&exec_of(0), b""), None);
        assert_eq!(exec_args(&exec_of(12), b""), None);
    }
}
