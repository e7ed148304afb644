//! Ground truth for user stacks of a Rust release build without frame pointers: blocks N times in
//! one way through std, always under main -> flightrec_rs_level1 -> flightrec_rs_level2 ->
//! flightrec_rs_block_MODE, and prints how long it was blocked.
//!
//!   stacks-rs MODE [N] [MS]    MODE: sleep mutex channel
use std::{
    hint::black_box,
    sync::{mpsc, Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

/// What the blocking functions use.
pub struct Ctx {
    ms: u64,
    lock: Arc<Mutex<u64>>,
    rx: Option<mpsc::Receiver<u64>>,
    /// Mutex mode: a signal that the holder has the lock, waited for before each (measured) lock.
    gate: Option<mpsc::Receiver<()>>,
}

#[inline(never)]
#[no_mangle]
pub fn flightrec_rs_block_sleep(c: &Ctx) {
    thread::sleep(Duration::from_millis(c.ms));
    black_box(c);
}

#[inline(never)]
#[no_mangle]
pub fn flightrec_rs_block_mutex(c: &Ctx) {
    *c.lock.lock().unwrap() += 1;
    black_box(c);
}

#[inline(never)]
#[no_mangle]
pub fn flightrec_rs_block_channel(c: &Ctx) {
    black_box(c.rx.as_ref().unwrap().recv().unwrap());
}

#[inline(never)]
#[no_mangle]
pub fn flightrec_rs_level2(c: &Ctx, n: u32, block: fn(&Ctx)) -> Duration {
    let mut blocked = Duration::ZERO;
    for _ in 0..n {
        if let Some(g) = &c.gate {
            g.recv().unwrap();
        }
        let t0 = Instant::now();
        block(c);
        blocked += t0.elapsed();
    }
    black_box(blocked)
}

#[inline(never)]
#[no_mangle]
pub fn flightrec_rs_level1(c: &Ctx, n: u32, block: fn(&Ctx)) -> Duration {
    black_box(flightrec_rs_level2(c, n, block))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("");
    let n: u32 = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(10);
    let ms: u64 = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(30);
    let mut c = Ctx {
        ms,
        lock: Arc::new(Mutex::new(0)),
        rx: None,
        gate: None,
    };
    let helper;
    let block: fn(&Ctx) = match mode {
        "sleep" => {
            helper = None;
            flightrec_rs_block_sleep
        }
        "mutex" => {
            // Takes the lock, says so, holds it for ms; n times.
            let lock = c.lock.clone();
            let (tx, gate) = mpsc::channel();
            c.gate = Some(gate);
            helper = Some(thread::spawn(move || {
                for _ in 0..n {
                    let g = lock.lock().unwrap();
                    tx.send(()).unwrap();
                    thread::sleep(Duration::from_millis(ms));
                    drop(g);
                    thread::sleep(Duration::from_millis(1));
                }
            }));
            flightrec_rs_block_mutex
        }
        "channel" => {
            let (tx, rx) = mpsc::channel();
            c.rx = Some(rx);
            helper = Some(thread::spawn(move || {
                for i in 0..n {
                    thread::sleep(Duration::from_millis(ms));
                    tx.send(u64::from(i)).unwrap();
                }
            }));
            flightrec_rs_block_channel
        }
        _ => {
            eprintln!("usage: stacks-rs sleep|mutex|channel [N] [MS]");
            std::process::exit(2);
        }
    };
    let blocked = flightrec_rs_level1(&c, n, block);
    if let Some(h) = helper {
        h.join().unwrap();
    }
    println!("blocked_ns {}", blocked.as_nanos());
}
