//! `flightrec-package docs DIR`: the man pages (one per command and subcommand) and the bash, zsh
//! and fish completions of `flightrec` and `flightrec-analyze`, generated from their command lines
//! (clap_mangen, clap_complete), for `packaging/build-deb.sh`.
use std::{fs, path::Path};

use anyhow::{bail, Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

/// Writes `cmd`'s man pages into `man` (`flightrec.1`, `flightrec-record.1`, ...).
fn man_pages(cmd: &clap::Command, man: &Path) -> Result<()> {
    let cmd = cmd.clone();
    clap_mangen::generate_to(cmd, man).context("writing man pages")?;
    Ok(())
}

/// Writes `cmd`'s completions for each shell under `dir/<shell>/`.
fn completions(cmd: &clap::Command, dir: &Path) -> Result<()> {
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let out = dir.join(shell.to_string());
        fs::create_dir_all(&out)?;
        let mut cmd = cmd.clone();
        let name = cmd.get_name().to_string();
        clap_complete::generate_to(shell, &mut cmd, name, &out)
            .with_context(|| format!("writing {shell} completions"))?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [what, dir] = args.as_slice() else {
        bail!("usage: flightrec-package docs DIR");
    };
    if what != "docs" {
        bail!("usage: flightrec-package docs DIR");
    }
    let dir = Path::new(dir);
    let man = dir.join("man");
    fs::create_dir_all(&man).with_context(|| format!("creating {}", man.display()))?;
    for cmd in [
        flightrec_recorder::cli::Cli::command(),
        flightrec_analyzer::cli::Cli::command(),
    ] {
        man_pages(&cmd, &man)?;
        completions(&cmd, &dir.join("completions"))?;
    }
    Ok(())
}
