//! Loads the embedded eBPF object with this kernel's tracepoint offsets, attaches the programs of
//! the selected sources, and reads the kernel-side counters.
use std::os::fd::{AsFd, AsRawFd};

use anyhow::{bail, Context, Result};
use aya::{
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    programs::{
        perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent},
        BtfTracePoint, PerfEvent, TracePoint,
    },
    util::online_cpus,
    Ebpf, EbpfLoader,
};
use flightrec_common::{
    counter_index, Config, Counter, RegsLayout, Source, COUNTER_ENTRIES, GLOBAL_CONFIG,
    MAP_COUNTERS, MAP_EVENTS, MAP_EXECS, MAP_SCRATCH, MAP_STACK_TOPS, MAX_WINDOW, SCRATCH_SLOTS,
    SOURCE_COUNT,
};

use crate::{sources, tracefs};

/// The compiled eBPF programs, built by `ebpf/build.sh`.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!("../bpf/flightrec.bpf.o");

/// Name of the perf_event program.
pub const PROFILE_PROGRAM: &str = "profile_cpu_clock";

/// The source a program belongs to.
fn source_of(program: &str) -> Option<Source> {
    if program == PROFILE_PROGRAM {
        return Some(Source::Profile);
    }
    Source::ALL.into_iter().find(|&s| {
        sources::tracepoints(s)
            .iter()
            .any(|t| t.0 == program || sources::btf_program(t.0) == Some(program))
    })
}

/// Names of every program the object must hold.
pub fn program_names() -> impl Iterator<Item = &'static str> {
    let tracepoints = Source::ALL
        .into_iter()
        .flat_map(sources::tracepoints)
        .map(|t| t.0);
    tracepoints
        .clone()
        .chain(tracepoints.filter_map(sources::btf_program))
        .chain(std::iter::once(PROFILE_PROGRAM))
}

/// How the programs that have a BTF raw tracepoint form (the scheduler's) are attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Attach {
    /// As BTF raw tracepoints where the kernel has BTF (cheaper: no trace record is formatted for
    /// them), else as tracepoints.
    #[default]
    Auto,
    /// As tracepoints.
    Tracepoints,
}

/// What to load.
#[derive(Clone, Debug)]
pub struct ProbeOptions {
    /// Sources to attach.
    pub sources: Vec<Source>,
    /// Profile frequency per CPU.
    pub freq_hz: u64,
    /// Ring buffer size in bytes (power of two, multiple of the page size).
    pub ringbuf_bytes: u32,
    /// Syscall filter on tgid.
    pub syscall_pid: Option<u32>,
    /// Syscall filter on comm.
    pub syscall_comm: Option<String>,
    /// Bytes of user stack copied at a switch-out of a thread whose stack top is not known yet.
    pub switch_window: u32,
    /// Bytes of user stack copied with a sample of a thread whose stack top is not known yet.
    pub sample_window: u32,
    /// Also record the waker's stacks at each `sched_waking`.
    pub waker_stacks: bool,
    /// How the scheduler's programs attach.
    pub attach: Attach,
}

/// The size of a task's kernel stack (`THREAD_SIZE`): x86_64's `struct irq_stack` has that size,
/// else the 16 KiB x86_64 and arm64 use without KASAN. 0 (unknown) without BTF.
fn thread_size(btf: Option<&crate::btf::Btf>) -> u32 {
    btf.map_or(0, |b| b.struct_size("irq_stack").unwrap_or(16384))
}

/// The `pt_regs` layout of the architecture the recorder runs on.
fn regs_layout() -> Result<RegsLayout> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(RegsLayout::X86_64),
        "aarch64" => Ok(RegsLayout::AARCH64),
        other => bail!("user stacks on {other} are not supported (x86_64 and aarch64 are)"),
    }
}

/// Loaded and attached programs.
pub struct Probes {
    ebpf: Ebpf,
    counters: PerCpuArray<MapData, u64>,
    /// Program statistics read just before the programs were detached (they go with them).
    stats_at_stop: Option<ProgStats>,
    /// Keeps the kernel's BPF run-time statistics enabled while it lives.
    _stats: Option<std::os::fd::OwnedFd>,
    /// The programs attached as BTF raw tracepoints.
    pub raw_attached: Vec<&'static str>,
}

/// Statistics the kernel keeps per program, summed per source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgStats {
    /// Runs skipped because another BPF program was running on the CPU.
    pub missed: [u64; SOURCE_COUNT],
    /// Time spent in the programs, ns.
    pub run_ns: [u64; SOURCE_COUNT],
    /// Runs.
    pub runs: [u64; SOURCE_COUNT],
}

/// Kernel-side counters summed over CPUs, per source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelCounters {
    /// Records written into the ring buffer.
    pub emitted: [u64; SOURCE_COUNT],
    /// Records dropped because the ring buffer was full.
    pub lost: [u64; SOURCE_COUNT],
    /// Per-program statistics.
    pub progs: ProgStats,
}

fn build_config(opts: &ProbeOptions) -> Result<Config> {
    let root = tracefs::tracefs_root()?;
    let fmt = |g: &str, e: &str| tracefs::read_format(&root, g, e);
    // Kernel structure offsets; without kernel BTF, what needs them stays unknown.
    let btf = crate::btf::Btf::from_kernel().ok();
    let raw_tracepoints = btf.is_some() && opts.attach == Attach::Auto;
    let btf_offset = |name: &str, member: &str| {
        btf.as_ref()
            .and_then(|b| b.member_offset(name, member).ok())
            .unwrap_or(0)
    };
    let mut c = Config {
        own_tgid: std::process::id(),
        // Wake the drain task once a quarter of the ring is queued; a timer drains the rest.
        wakeup_bytes: (opts.ringbuf_bytes / 4) as u64,
        regs: regs_layout()?,
        task_mm: btf_offset("task_struct", "mm"),
        mm_start_stack: btf_offset("mm_struct", "start_stack"),
        task_stack: btf_offset("task_struct", "stack"),
        thread_size: thread_size(btf.as_ref()),
        switch_window: opts.switch_window.min(MAX_WINDOW as u32),
        sample_window: opts.sample_window.min(MAX_WINDOW as u32),
        waker_stacks: opts.waker_stacks as u32,
        ..Config::default()
    };
    let kernel = sources::Kernel {
        format: &fmt,
        btf_offset: &btf_offset,
        raw_tracepoints,
    };
    for &s in &opts.sources {
        let filters = sources::Filters {
            syscall_pid: opts.syscall_pid,
            syscall_comm: opts.syscall_comm.as_deref(),
        };
        sources::configure(s, &mut c, &kernel, &filters)?;
    }
    Ok(c)
}

/// CPU ids the kernel may use (its possible CPUs, numbered from 0): the programs' scratch is
/// indexed by the CPU they run on.
fn cpu_ids() -> Result<u32> {
    let n = aya::util::nr_cpus().map_err(|(path, e)| anyhow::anyhow!("cannot read {path}: {e}"))?;
    Ok(n as u32)
}

impl Probes {
    /// Loads the object and attaches the programs of `opts.sources`.
    pub fn load(opts: &ProbeOptions) -> Result<Probes> {
        let config = build_config(opts)?;
        let mut ebpf = EbpfLoader::new()
            .override_global(GLOBAL_CONFIG, &config, true)
            .map_max_entries(MAP_EVENTS, opts.ringbuf_bytes)
            .map_max_entries(MAP_SCRATCH, SCRATCH_SLOTS * cpu_ids()?)
            .load(OBJECT)
            .context("loading the eBPF object failed (needs root, or CAP_BPF and CAP_PERFMON)")?;
        let tracepoints = opts.sources.iter().flat_map(|&s| sources::tracepoints(s));
        let mut kernel_btf = None;
        let mut raw_attached = Vec::new();
        for (prog, group, event) in tracepoints {
            if let Some(raw) = sources::raw_program(prog, &config) {
                if kernel_btf.is_none() {
                    kernel_btf = Some(aya::Btf::from_sys_fs().context("reading the kernel's BTF")?);
                }
                let btf = kernel_btf.as_ref().expect("just read");
                match attach_raw(&mut ebpf, raw, event, btf) {
                    Ok(()) => {
                        raw_attached.push(raw);
                        continue;
                    }
                    Err(e) => eprintln!(
                        "flightrec: {raw} could not be attached as a BTF raw tracepoint ({e:#}): attaching the tracepoint {group}:{event} instead"
                    ),
                }
            }
            let p: &mut TracePoint = ebpf
                .program_mut(prog)
                .with_context(|| format!("program {prog} missing from the eBPF object"))?
                .try_into()?;
            p.load()
                .with_context(|| format!("the kernel refused program {prog}"))?;
            p.attach(group, event)
                .with_context(|| format!("attaching to tracepoint {group}:{event} failed"))?;
        }
        if opts.sources.contains(&Source::Profile) {
            let p: &mut PerfEvent = ebpf
                .program_mut(PROFILE_PROGRAM)
                .context("profile program missing from the eBPF object")?
                .try_into()?;
            p.load().context("the kernel refused the profile program")?;
            let cpus = online_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
            for cpu in cpus {
                p.attach(
                    PerfEventConfig::Software(SoftwareEvent::CpuClock),
                    PerfEventScope::AllProcessesOneCpu { cpu },
                    SamplePolicy::Frequency(opts.freq_hz),
                    false,
                )
                .with_context(|| format!("opening the cpu-clock perf event on CPU {cpu} failed"))?;
            }
        }
        let counters = PerCpuArray::try_from(
            ebpf.take_map(MAP_COUNTERS)
                .context("counters map missing from the eBPF object")?,
        )?;
        // Run-time statistics cost two clock reads per program run; they are how the capture can
        // say what recording cost. Without them (old kernel) the cost shows as zero.
        let stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).ok();
        Ok(Probes {
            ebpf,
            counters,
            stats_at_stop: None,
            _stats: stats,
            raw_attached,
        })
    }

    /// Detaches every program, so no record is written after this; maps stay readable.
    pub fn stop(&mut self) -> Result<()> {
        self.stats_at_stop = Some(self.prog_stats());
        for (name, prog) in self.ebpf.programs_mut() {
            let result = match prog {
                aya::programs::Program::TracePoint(p) => p.unload(),
                aya::programs::Program::PerfEvent(p) => p.unload(),
                aya::programs::Program::BtfTracePoint(p) => p.unload(),
                _ => Ok(()),
            };
            // A program of a source that was not enabled was never loaded.
            if let Err(e) = result {
                if !matches!(e, aya::programs::ProgramError::NotLoaded) {
                    return Err(e).with_context(|| format!("detaching {name}"));
                }
            }
        }
        Ok(())
    }

    /// Takes the map of threads' stack tops (once): the recorder fills it as it learns them.
    pub fn take_stack_tops(&mut self) -> Result<HashMap<MapData, u32, u64>> {
        let map = self
            .ebpf
            .take_map(MAP_STACK_TOPS)
            .context("stack tops map missing from the eBPF object")?;
        Ok(HashMap::try_from(map)?)
    }

    /// Takes the map of each process's last exec (once).
    pub fn take_execs(&mut self) -> Result<HashMap<MapData, u32, u64>> {
        let map = self
            .ebpf
            .take_map(MAP_EXECS)
            .context("execs map missing from the eBPF object")?;
        Ok(HashMap::try_from(map)?)
    }

    /// Takes the ring buffer (once).
    pub fn take_ring(&mut self) -> Result<RingBuf<MapData>> {
        let map = self
            .ebpf
            .take_map(MAP_EVENTS)
            .context("ring buffer already taken")?;
        Ok(RingBuf::try_from(map)?)
    }

    /// Reads the per-CPU counters and the programs' skipped runs.
    pub fn counters(&self) -> Result<KernelCounters> {
        let mut k = KernelCounters::default();
        for s in Source::ALL {
            for (counter, out) in [
                (Counter::Emitted, &mut k.emitted),
                (Counter::LostRingbuf, &mut k.lost),
            ] {
                let idx = counter_index(s, counter);
                debug_assert!(idx < COUNTER_ENTRIES);
                let per_cpu = self.counters.get(&idx, 0)?;
                out[s as usize] = per_cpu.iter().sum();
            }
        }
        k.progs = self.stats_at_stop.unwrap_or_else(|| self.prog_stats());
        Ok(k)
    }

    fn prog_stats(&self) -> ProgStats {
        let mut st = ProgStats::default();
        for (name, prog) in self.ebpf.programs() {
            let Some(source) = source_of(name) else {
                continue;
            };
            let info = prog
                .fd()
                .ok()
                .and_then(|fd| prog_info(fd.as_fd().as_raw_fd()).ok());
            if let Some(info) = info {
                let i = source as usize;
                st.missed[i] += info.recursion_misses;
                st.run_ns[i] += info.run_time_ns;
                st.runs[i] += info.run_cnt;
            }
        }
        st
    }
}

/// Loads program `raw` as a BTF raw tracepoint on `event` and attaches it.
fn attach_raw(ebpf: &mut Ebpf, raw: &str, event: &str, btf: &aya::Btf) -> Result<()> {
    let p: &mut BtfTracePoint = ebpf
        .program_mut(raw)
        .with_context(|| format!("program {raw} missing from the eBPF object"))?
        .try_into()?;
    p.load(event, btf).context("the kernel refused it")?;
    p.attach().context("attaching failed")?;
    Ok(())
}

/// `BPF_OBJ_GET_INFO_BY_FD`: aya does not expose `recursion_misses` (runs the kernel skipped).
fn prog_info(fd: i32) -> std::io::Result<aya_obj::generated::bpf_prog_info> {
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    #[repr(C)]
    struct InfoAttr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    // SAFETY: bpf_prog_info is plain integers; zero is a valid value.
    let mut info: aya_obj::generated::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut attr = InfoAttr {
        bpf_fd: fd as u32,
        info_len: std::mem::size_of_val(&info) as u32,
        info: &mut info as *mut _ as u64,
    };
    // SAFETY: attr points at a live, correctly sized info struct for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &mut attr as *mut InfoAttr,
            std::mem::size_of::<InfoAttr>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(info)
}
