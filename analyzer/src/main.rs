use std::{io::Write, process::ExitCode};

use clap::Parser;
use flightrec_analyzer::cli::{run, Cli};

fn main() -> ExitCode {
    flightrec_analyzer::capture::quiet_decoder_panics();
    let cli = Cli::parse();
    match run(cli) {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(out.as_bytes())
                .and_then(|_| stdout.flush())
            {
                // A closed pipe (`| head`) is not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("flightrec-analyze: cannot write output: {e}");
                    ExitCode::FAILURE
                }
                _ => ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            eprintln!("flightrec-analyze: {e:#}");
            ExitCode::FAILURE
        }
    }
}
