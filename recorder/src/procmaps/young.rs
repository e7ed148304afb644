//! Mappings of young processes, read while they live. The drain runs behind the events, so a
//! process that execs and exits within a drain period would otherwise be gone before its mappings
//! are read, and none of its user stacks could be unwound. This thread is told of every exec as
//! it is drained (exec records wake the drain at once) and reads the new program's mappings every
//! few milliseconds, opening the files, until they stop changing (the dynamic loader has mapped
//! the libraries) or the process exits; the drain thread installs what it read.
use std::{
    collections::HashMap,
    sync::mpsc::{self, Receiver, RecvTimeoutError, Sender},
    thread,
    time::{Duration, Instant},
};

use super::{read_raw, RawMapping};
use crate::host;

/// A read of a young process's mappings.
pub struct Read {
    /// The process.
    pub tgid: i32,
    /// Its exec that made it young (monotonic ns).
    pub exec_ns: u64,
    /// When the mappings were read (monotonic ns).
    pub read_at: u64,
    /// What was read.
    pub maps: Vec<RawMapping>,
}

/// Between reads of one process.
const EVERY: Duration = Duration::from_millis(3);
/// Reads in a row that found nothing new before a process is left alone.
const STABLE: u32 = 3;
/// A process is watched at most this long.
const AT_MOST: Duration = Duration::from_secs(1);
/// Processes watched at once; an exec beyond them is not watched (its mappings are read when its
/// stacks are drained, as for any process).
const AT_ONCE: usize = 64;

struct Watched {
    exec_ns: u64,
    since: Instant,
    last: Option<String>,
    stable: u32,
}

/// The watcher's two ends, as the drain thread holds them.
pub struct Young {
    execs: Sender<(i32, u64)>,
    reads: Receiver<Read>,
}

impl Young {
    /// Starts the watcher thread.
    pub fn start() -> std::io::Result<Young> {
        let (execs, rx) = mpsc::channel();
        let (tx, reads) = mpsc::channel();
        thread::Builder::new()
            .name("flightrec-young".into())
            .spawn(move || watch(rx, tx))?;
        Ok(Young { execs, reads })
    }

    /// Process `tgid` exec'd at `exec_ns`.
    pub fn exec(&self, tgid: i32, exec_ns: u64) {
        let _ = self.execs.send((tgid, exec_ns));
    }

    /// The reads made since the last call.
    pub fn reads(&self) -> impl Iterator<Item = Read> + '_ {
        self.reads.try_iter()
    }
}

fn watch(execs: Receiver<(i32, u64)>, reads: Sender<Read>) {
    let mut watched: HashMap<i32, Watched> = HashMap::new();
    loop {
        let wait = if watched.is_empty() {
            Duration::from_secs(3600)
        } else {
            EVERY
        };
        // A new exec is read at once (the process may live a few milliseconds), the others
        // every EVERY.
        match execs.recv_timeout(wait) {
            Ok((tgid, exec_ns)) => {
                if watched.len() < AT_ONCE {
                    watched.insert(
                        tgid,
                        Watched {
                            exec_ns,
                            since: Instant::now(),
                            last: None,
                            stable: 0,
                        },
                    );
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        watched.retain(|&tgid, w| {
            // The text first: most reads find nothing new, and then nothing is opened.
            let Ok(text) = std::fs::read_to_string(format!("/proc/{tgid}/maps")) else {
                return false;
            };
            if w.last.as_deref() == Some(text.as_str()) {
                w.stable += 1;
            } else {
                let read_at = host::monotonic_ns();
                let Some(maps) = read_raw(tgid, true) else {
                    return false;
                };
                w.last = Some(text);
                w.stable = 0;
                let read = Read {
                    tgid,
                    exec_ns: w.exec_ns,
                    read_at,
                    maps,
                };
                if reads.send(read).is_err() {
                    return false;
                }
            }
            w.stable < STABLE && w.since.elapsed() < AT_MOST
        });
    }
}
