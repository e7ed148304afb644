//! The data the page's script draws from, in a compact form: one table of frames and stacks shared
//! by every flame graph and heat map (a folded stack is stored once, as its frames' indices), values
//! as columns, and the whole JSON gzip-compressed and base64-encoded in the page (the browser's own
//! `DecompressionStream` opens it; nothing is fetched). A 10-minute capture of a busy machine has
//! hundreds of thousands of heat-map cells and thousands of stacks over a few thousand distinct
//! frames: stored plainly they made reports of about 9 MB.
use std::collections::HashMap;
use std::io::Write;

use anyhow::Result;
use base64::Engine;
use flate2::{write::GzEncoder, Compression};
use serde::Serialize;

use crate::stackagg::StackReport;

/// Frames and stacks shared by every graph of the page. A stack is its frames' indices, root
/// first, the process name first (as in folded stacks).
#[derive(Default, Serialize)]
pub struct StackTable {
    pub frames: Vec<String>,
    pub stacks: Vec<Vec<u32>>,
    #[serde(skip)]
    frame_index: HashMap<String, u32>,
    #[serde(skip)]
    stack_index: HashMap<String, u32>,
}

impl StackTable {
    /// The index of a folded stack (`comm;root;...;leaf`), added when new.
    pub fn intern(&mut self, folded: &str) -> u32 {
        if let Some(&i) = self.stack_index.get(folded) {
            return i;
        }
        let frames = folded
            .split(';')
            .map(|f| match self.frame_index.get(f) {
                Some(&i) => i,
                None => {
                    let i = self.frames.len() as u32;
                    self.frames.push(f.to_string());
                    self.frame_index.insert(f.to_string(), i);
                    i
                }
            })
            .collect();
        let i = self.stacks.len() as u32;
        self.stacks.push(frames);
        self.stack_index.insert(folded.to_string(), i);
        i
    }

    /// A flame graph's stacks and values, interned.
    pub fn weighted(&mut self, r: &StackReport) -> Weighted {
        let (stack, value) = r
            .stacks
            .iter()
            .map(|s| (self.intern(&s.folded), s.value))
            .unzip();
        Weighted {
            unit: r.unit,
            stack,
            value,
        }
    }
}

/// Values by stack, as two columns.
#[derive(Serialize)]
pub struct Weighted {
    pub unit: &'static str,
    pub stack: Vec<u32>,
    pub value: Vec<u64>,
}

/// Heat-map cells as columns, in time order: column (second), row (slice of the second), stack
/// index and value (samples or ns).
#[derive(Debug, Default, Serialize)]
pub struct Cells {
    pub col: Vec<u32>,
    pub row: Vec<u32>,
    pub stack: Vec<u32>,
    pub value: Vec<u64>,
}

impl Cells {
    pub fn from_map(map: HashMap<(u32, u32, u32), u64>) -> Cells {
        let mut cells: Vec<_> = map.into_iter().collect();
        cells.sort_unstable();
        let mut out = Cells::default();
        for ((c, r, s), v) in cells {
            out.col.push(c);
            out.row.push(r);
            out.stack.push(s);
            out.value.push(v);
        }
        out
    }
}

/// The JSON of `data`, gzip-compressed, base64-encoded: safe inside a `<script>` element as it is.
pub fn encode(data: &impl Serialize) -> Result<String> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    serde_json::to_writer(&mut gz, data)?;
    gz.flush()?;
    Ok(base64::engine::general_purpose::STANDARD.encode(gz.finish()?))
}
