use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use flightrec_recorder::{
    cli::{Cli, Command, RecordArgs},
    config, control, export, journal, preflight,
    probes::ProbeOptions,
    record::{self, RecordOptions},
    snapshot,
    status::human_bytes,
};

/// mimalloc, not glibc's malloc: under a steady mixed load glibc's arenas kept the memory of
/// freed segment buffers and the recorder's resident memory climbed by a fifth in five minutes;
/// with mimalloc it stays flat and a third lower (BENCHMARKS §9).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Says what the kernel lacks, one line each; stops on what nothing can be recorded without, and
/// leaves out the sources whose tracepoints are missing.
fn preflight(
    sources: &[flightrec_common::Source],
) -> anyhow::Result<Vec<flightrec_common::Source>> {
    let host = preflight::Host::this();
    let checks = preflight::checks(&host, sources);
    for c in checks.iter().filter(|c| !c.ok && !c.fatal) {
        eprintln!("flightrec: {}", c.line());
    }
    if let Some(c) = checks.iter().find(|c| !c.ok && c.fatal) {
        anyhow::bail!("{}", c.line());
    }
    let usable = preflight::usable(&host, sources);
    if usable.is_empty() {
        anyhow::bail!("none of the event sources asked for can be recorded on this kernel");
    }
    Ok(usable)
}

fn check(sources: Option<flightrec_recorder::cli::Sources>) -> anyhow::Result<()> {
    let sources = sources.map_or(flightrec_common::Source::ALL.to_vec(), |s| s.0);
    let host = preflight::Host::this();
    let checks = preflight::checks(&host, &sources);
    println!("kernel {}", host.release);
    for c in &checks {
        if c.ok {
            println!("ok       {}", c.what);
        } else {
            println!("MISSING  {}", c.line());
        }
    }
    if checks.iter().any(|c| !c.ok && c.fatal) {
        anyhow::bail!("this machine cannot record (see the lines above)");
    }
    Ok(())
}

fn record(mut a: RecordArgs) -> anyhow::Result<()> {
    a.events.0 = preflight(&a.events.0)?;
    let opts = RecordOptions {
        dir: a.dir,
        duration: a.duration,
        window: a.window,
        max_size: a.max_size,
        segment: a.segment,
        probes: ProbeOptions {
            sources: a.events.0,
            freq_hz: a.freq,
            ringbuf_bytes: a.ringbuf_size as u32,
            syscall_pid: a.pid,
            syscall_comm: a.comm,
            switch_window: a.stack_copy as u32,
            // Samples are few (--freq per CPU): they copy as much as one event may.
            sample_window: if a.stack_copy == 0 {
                0
            } else {
                flightrec_common::MAX_WINDOW as u32
            },
            waker_stacks: a.waker_stacks,
            attach: a.attach,
        },
        redact: a.redact,
        triggers: a.triggers,
        post: a.post,
        cooldown: a.cooldown,
        quiet: a.quiet,
    };
    let dir = opts.dir.clone();
    let quiet = opts.quiet;
    let s = record::run(opts)?;
    if !quiet {
        let secs = s.elapsed.as_secs_f64().max(1e-3);
        eprintln!(
            "flightrec: recorded {} events in {:.1}s ({:.0}/s), lost {}, {} segments, {} in {}",
            s.events,
            secs,
            s.events as f64 / secs,
            s.lost,
            s.segments,
            human_bytes(s.bytes),
            dir.display()
        );
        if s.unwind.stacks > 0 {
            eprintln!(
                "flightrec: unwound {} user stacks, {:.0}% from the cache of identical stacks",
                s.unwind.stacks,
                100.0 * s.unwind.cached as f64 / s.unwind.stacks as f64
            );
        }
    }
    if s.failed_segments > 0 {
        anyhow::bail!("{} segments could not be written", s.failed_segments);
    }
    Ok(())
}

fn snapshot(dir: &std::path::Path, name: Option<String>) -> anyhow::Result<()> {
    let name = name.unwrap_or_else(|| snapshot::default_name("snapshot"));
    snapshot::check_name(&name)?;
    let path = control::request_snapshot(dir, &name)?;
    println!("{}", path.display());
    Ok(())
}

fn salvage(dir: &std::path::Path) -> anyhow::Result<()> {
    if !dir.join(flightrec_schemas::MANIFEST_FILE).is_file() {
        anyhow::bail!("{} is not a flightrec capture", dir.display());
    }
    let Some(s) = journal::salvage_stopped(dir)? else {
        anyhow::bail!(
            "a recorder is running on {}; it finishes its own segments",
            dir.display()
        );
    };
    s.report(dir, false);
    if !s.failed.is_empty() {
        anyhow::bail!("{} journals could not be salvaged", s.failed.len());
    }
    if s.segments.is_empty() {
        eprintln!("flightrec: nothing to salvage in {}", dir.display());
    }
    Ok(())
}

/// Parses the command line, with `record`'s settings from the config file and the environment
/// (`--print-config` prints them and exits).
fn parse() -> Result<Cli, ExitCode> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let is_record = args.get(1).is_some_and(|a| a == "record");
    let loaded = if is_record {
        let cmd = Cli::command();
        let record = cmd.find_subcommand("record").expect("record subcommand");
        match config::load(&args, record) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("flightrec: {e:#}");
                return Err(ExitCode::from(2));
            }
        }
    } else {
        config::Loaded::default()
    };
    // clap reads the environment when the command is built: after the file's settings are in it.
    let cmd = Cli::command();
    let matches = cmd.clone().get_matches_from(&args);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Command::Record(a) = &cli.command {
        if a.print_config {
            let record = cmd.find_subcommand("record").expect("record subcommand");
            let sub = matches
                .subcommand_matches("record")
                .expect("record matches");
            print!("{}", config::print(record, sub, &loaded));
            return Err(ExitCode::SUCCESS);
        }
    }
    Ok(cli)
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let result = match cli.command {
        Command::Record(a) => record(a),
        Command::Check { events } => check(events),
        Command::Snapshot { dir, name } => snapshot(&dir, name),
        Command::Salvage { dir } => salvage(&dir),
        Command::Export {
            captures,
            output: Some(output),
            ..
        } => match captures.as_slice() {
            [capture] => export::export(capture, &output).map(|bytes| {
                eprintln!(
                    "flightrec: wrote {} ({})",
                    output.display(),
                    human_bytes(bytes)
                );
            }),
            _ => Err(anyhow::anyhow!(
                "-o writes one capture; give one, or use --lake DIR for many"
            )),
        },
        Command::Export {
            captures,
            lake: Some(lake),
            ..
        } => export::export_lake(&captures, &lake),
        Command::Export { .. } => Err(anyhow::anyhow!("export needs -o FILE or --lake DIR")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flightrec: {e:#}");
            ExitCode::FAILURE
        }
    }
}
