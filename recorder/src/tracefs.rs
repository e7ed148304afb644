//! Tracepoint formats, read from tracefs `format` files at load time so the same eBPF object works
//! on kernels whose tracepoint layouts differ (each source turns them into its offsets: `sources/`).
use std::{
    collections::HashMap,
    ffi::CString,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use flightrec_common::DATA_LOC_FLAG;

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
    pub(crate) print_fmt: String,
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

    /// The names the print format gives the values of `field`
    /// (`__print_symbolic(REC->field, { 0, "NAME" }, ...)`), where they are numbers.
    pub fn symbols(&self, field: &str) -> Vec<(i64, String)> {
        let start = format!("__print_symbolic(REC->{field},");
        let Some(at) = self.print_fmt.find(&start) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut rest = &self.print_fmt[at + start.len()..];
        while let Some(open) = rest.trim_start().strip_prefix('{') {
            let Some((pair, after)) = open.split_once('}') else {
                break;
            };
            if let Some((v, name)) = pair.split_once(',') {
                if let Ok(v) = v.trim().parse::<i64>() {
                    out.push((v, name.trim().trim_matches('"').to_string()));
                }
            }
            rest = after.trim_start().strip_prefix(',').unwrap_or(after);
        }
        out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_loc_and_pointer_fields() {
        let text = "\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n\
\tfield:const void * skaddr;\toffset:16;\tsize:8;\tsigned:0;\n";
        let f = Format::parse("x:y", text).unwrap();
        assert!(f.field("filename", &[]).unwrap().data_loc);
        assert_eq!(f.offset("skaddr", &[8]).unwrap(), 16);
    }

    #[test]
    fn symbolic_values_come_from_the_print_format() {
        let text = "\tfield:int reason;\toffset:8;\tsize:4;\tsigned:0;\n\
print fmt: \"reason=%s\", __print_symbolic(REC->reason, { 0, \"NOT_SPECIFIED\" }, { 1, \"NO_SOCKET\" })\n";
        let f = Format::parse("x:y", text).unwrap();
        assert_eq!(
            f.symbols("reason"),
            [
                (0, "NOT_SPECIFIED".to_string()),
                (1, "NO_SOCKET".to_string())
            ]
        );
        assert!(f.symbols("other").is_empty());
    }
}
