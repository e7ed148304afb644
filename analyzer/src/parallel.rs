//! Runs a per-segment analysis on every selected segment in parallel (rayon), in segment order,
//! with a progress bar on a terminal once the work has taken more than a second.
use std::{
    io::IsTerminal,
    sync::Mutex,
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;

use crate::{
    capture::{Capture, Result, Segment},
    filter::Filter,
};

/// The segments of `cap` that may hold events of the filter's range.
pub fn selected<'a>(cap: &'a Capture, filter: &Filter) -> Vec<&'a Segment> {
    cap.segments
        .iter()
        .filter(|s| {
            s.meta.first_event_ns.is_none()
                || filter.overlaps(s.meta.first_event_ns, s.meta.last_event_ns)
        })
        .collect()
}

/// Applies `f` to each segment in parallel; results come back in segment order.
pub fn map_segments<T: Send>(
    segments: &[&Segment],
    what: &str,
    f: impl Fn(&Segment) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let bar =
        ProgressBar::with_draw_target(Some(segments.len() as u64), ProgressDrawTarget::hidden());
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} segments, {eta} left")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    let started = Instant::now();
    let shown = Mutex::new(false);
    let tty = std::io::stderr().is_terminal();
    let out = segments
        .par_iter()
        .map(|s| {
            let r = f(s);
            bar.inc(1);
            if tty && started.elapsed() > Duration::from_secs(1) {
                let mut shown = shown.lock().expect("progress lock");
                if !*shown {
                    bar.set_draw_target(ProgressDrawTarget::stderr());
                    *shown = true;
                }
            }
            r
        })
        .collect::<Result<Vec<T>>>();
    bar.finish_and_clear();
    out
}
