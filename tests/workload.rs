//! A workload with known behaviour, for recording tests:
//!   flightrec-workload [--wait] [--sleeps N] [--sleep-ms MS] [--writes N --dir DIR] [--burn-ms MS]
//!                      [--pingpong N [--pin]] [--tcp N [--tcp-to ADDR]] [--tcp-retransmit]
//! With --wait it first reads one line from stdin (so tracers can attach to its pid). Then it sleeps
//! N times for MS each (off-CPU, interruptible), does N 4 KiB O_DIRECT writes each followed by fsync
//! (block I/O), burns CPU in `flightrec_workload_burn` (on-CPU samples), bounces a byte N times
//! between two threads over pipes (wake-ups and run-queue latency; with --pin the threads are pinned
//! to CPUs 0 and 1, so each wakes the other on another, idle CPU), and opens N TCP connections to
//! itself on 127.0.0.1 (TCP state changes); with --tcp-to, to ADDR instead (a listener of another
//! process, which must echo one byte per connection). With --tcp-retransmit it connects twice to a listener
//! that never accepts and has no room for a second connection: the kernel drops the second SYN and
//! the client retransmits it (`tcp_retransmit_skb`); it prints `retransmit PORT` (the listener's).
use std::{
    alloc::{alloc_zeroed, dealloc, Layout},
    fs::OpenOptions,
    hint::black_box,
    io::Write,
    os::unix::fs::{FileExt, OpenOptionsExt},
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

#[derive(Default)]
struct Args {
    sleeps: u32,
    sleep_ms: u64,
    writes: u32,
    dir: Option<PathBuf>,
    burn_ms: u64,
    wait: bool,
    pingpong: u32,
    pin: bool,
    tcp: u32,
    tcp_to: Option<std::net::SocketAddr>,
    tcp_retransmit: bool,
    syscall_rate: u64,
    syscall_secs: u64,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        sleep_ms: 25,
        ..Default::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--sleeps" => a.sleeps = value()?.parse().map_err(|e| format!("--sleeps: {e}"))?,
            "--sleep-ms" => {
                a.sleep_ms = value()?.parse().map_err(|e| format!("--sleep-ms: {e}"))?
            }
            "--writes" => a.writes = value()?.parse().map_err(|e| format!("--writes: {e}"))?,
            "--dir" => a.dir = Some(PathBuf::from(value()?)),
            "--burn-ms" => a.burn_ms = value()?.parse().map_err(|e| format!("--burn-ms: {e}"))?,
            "--pingpong" => {
                a.pingpong = value()?.parse().map_err(|e| format!("--pingpong: {e}"))?
            }
            "--tcp" => a.tcp = value()?.parse().map_err(|e| format!("--tcp: {e}"))?,
            "--tcp-to" => a.tcp_to = Some(value()?.parse().map_err(|e| format!("--tcp-to: {e}"))?),
            "--wait" => a.wait = true,
            "--pin" => a.pin = true,
            "--tcp-retransmit" => a.tcp_retransmit = true,
            "--syscall-rate" => {
                a.syscall_rate = value()?
                    .parse()
                    .map_err(|e| format!("--syscall-rate: {e}"))?
            }
            "--syscall-secs" => {
                a.syscall_secs = value()?
                    .parse()
                    .map_err(|e| format!("--syscall-secs: {e}"))?
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.writes > 0 && a.dir.is_none() {
        return Err("--writes needs --dir".into());
    }
    Ok(a)
}

#[inline(never)]
#[no_mangle]
pub fn flightrec_workload_sleep(n: u32, ms: u64) {
    for _ in 0..n {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// CPU time this thread has used, in ns.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Burns `ms` of CPU time (not wall time: on a busy machine it takes longer, same samples).
#[inline(never)]
#[no_mangle]
pub fn flightrec_workload_burn(ms: u64) -> u64 {
    let end = thread_cpu_ns() + ms * 1_000_000;
    let mut x = 0u64;
    while thread_cpu_ns() < end {
        for i in 0..10_000u64 {
            x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
    }
    x
}

fn direct_writes(dir: &std::path::Path, n: u32) -> std::io::Result<()> {
    let path = dir.join("flightrec-workload.dat");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)?;
    let layout = Layout::from_size_align(4096, 4096).expect("layout");
    // SAFETY: non-zero size; freed below with the same layout.
    let buf = unsafe { alloc_zeroed(layout) };
    // SAFETY: buf is a live 4096-byte allocation.
    let slice = unsafe { std::slice::from_raw_parts_mut(buf, 4096) };
    slice.fill(0xa5);
    let mut result = Ok(());
    for i in 0..n {
        result = f
            .write_all_at(slice, i as u64 * 4096)
            .and_then(|_| f.sync_all());
        if result.is_err() {
            break;
        }
    }
    // SAFETY: allocated above with this layout.
    unsafe { dealloc(buf, layout) };
    let _ = std::fs::remove_file(&path);
    result
}

/// Bounces one byte `n` times between this thread and a second one over two pipes.
#[inline(never)]
#[no_mangle]
pub fn flightrec_workload_pingpong(n: u32, pin: bool) -> std::io::Result<()> {
    use std::io::Read;
    if pin {
        pin_to(0)?;
    }
    let (mut a_read, mut a_write) = std::io::pipe()?;
    let (mut b_read, mut b_write) = std::io::pipe()?;
    let pong =
        std::thread::Builder::new()
            .name("pong".into())
            .spawn(move || -> std::io::Result<()> {
                if pin {
                    pin_to(1)?;
                }
                let mut byte = [0u8];
                for _ in 0..n {
                    a_read.read_exact(&mut byte)?;
                    b_write.write_all(&byte)?;
                }
                Ok(())
            })?;
    let mut byte = [7u8];
    for _ in 0..n {
        a_write.write_all(&byte)?;
        b_read.read_exact(&mut byte)?;
    }
    pong.join().expect("pong thread")?;
    Ok(())
}

/// Pins the calling thread to one CPU.
fn pin_to(cpu: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Opens `n` TCP connections to a listener of its own on 127.0.0.1 and echoes a byte on each.
#[inline(never)]
#[no_mangle]
pub fn flightrec_workload_tcp(n: u32, to: Option<std::net::SocketAddr>) -> std::io::Result<()> {
    use std::io::Read;
    if n == 0 {
        return Ok(());
    }
    let (addr, server) = match to {
        Some(addr) => (addr, None),
        None => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            let server = std::thread::spawn(move || -> std::io::Result<()> {
                for _ in 0..n {
                    let (mut s, _) = listener.accept()?;
                    let mut b = [0u8];
                    s.read_exact(&mut b)?;
                    s.write_all(&b)?;
                }
                Ok(())
            });
            (addr, Some(server))
        }
    };
    for _ in 0..n {
        let mut c = std::net::TcpStream::connect(addr)?;
        c.write_all(b"x")?;
        let mut b = [0u8];
        c.read_exact(&mut b)?;
    }
    if let Some(server) = server {
        server.join().expect("server thread")?;
    }
    Ok(())
}

/// A SYN the peer drops, retransmitted: the listener's accept queue holds one connection
/// (backlog 0) and nobody accepts, so a second connection's SYN is dropped and retransmitted after
/// the initial RTO (1 s); the attempt is abandoned after 2.5 s. Returns the listener's port.
#[inline(never)]
#[no_mangle]
pub fn flightrec_workload_tcp_retransmit() -> std::io::Result<u16> {
    use std::os::fd::AsRawFd;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    // SAFETY: a listening socket we own; listen again only lowers its backlog.
    if unsafe { libc::listen(listener.as_raw_fd(), 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let addr = listener.local_addr()?;
    let first = std::net::TcpStream::connect(addr)?;
    let second = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(2500));
    drop((first, second));
    Ok(addr.port())
}

/// Makes `rate` getppid() calls per second (0: as fast as it can) for `secs` seconds; prints how
/// many it made. Each call is two syscall events (enter and exit): a load of known rate.
#[inline(never)]
#[no_mangle]
pub fn flightrec_workload_syscalls(rate: u64, secs: u64) -> u64 {
    let start = std::time::Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut calls = 0u64;
    loop {
        let now = std::time::Instant::now();
        if now >= end {
            break;
        }
        // Pace in batches of 1000 calls.
        if rate > 0 && calls * 1_000_000_000 > rate * (now - start).as_nanos() as u64 {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        for _ in 0..1000 {
            // SAFETY: getppid has no preconditions.
            black_box(unsafe { libc::getppid() });
        }
        calls += 1000;
    }
    calls
}

fn main() -> ExitCode {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("flightrec-workload: {e}");
            return ExitCode::from(2);
        }
    };
    if a.wait {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
    flightrec_workload_sleep(a.sleeps, a.sleep_ms);
    if let Some(dir) = &a.dir {
        if let Err(e) = direct_writes(dir, a.writes) {
            eprintln!(
                "flightrec-workload: O_DIRECT writes in {}: {e}",
                dir.display()
            );
            return ExitCode::FAILURE;
        }
    }
    let x = flightrec_workload_burn(a.burn_ms);
    if let Err(e) = flightrec_workload_pingpong(a.pingpong, a.pin) {
        eprintln!("flightrec-workload: ping-pong: {e}");
        return ExitCode::FAILURE;
    }
    if a.syscall_secs > 0 {
        let calls = flightrec_workload_syscalls(a.syscall_rate, a.syscall_secs);
        let _ = writeln!(std::io::stdout(), "syscalls {calls}");
    }
    if let Err(e) = flightrec_workload_tcp(a.tcp, a.tcp_to) {
        eprintln!("flightrec-workload: tcp: {e}");
        return ExitCode::FAILURE;
    }
    if a.tcp_retransmit {
        match flightrec_workload_tcp_retransmit() {
            Ok(port) => {
                let _ = writeln!(std::io::stdout(), "retransmit {port}");
            }
            Err(e) => {
                eprintln!("flightrec-workload: tcp retransmit: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let _ = writeln!(std::io::stdout(), "{}", x & 1);
    ExitCode::SUCCESS
}
