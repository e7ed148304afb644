//! Settings of `flightrec record` from a config file and the environment. Every option can be set
//! in three places: the command line wins over the environment (`FLIGHTREC_<OPTION>`, e.g.
//! `FLIGHTREC_WINDOW=30m`), which wins over the config file's `[record]` table (TOML, keys named
//! like the options: `window = "30m"`, `events = ["sched", "process"]`, `waker-stacks = true`,
//! `trigger = ["runq>50ms"]`). The file is `--config FILE`, else `$FLIGHTREC_CONFIG`, else
//! `/etc/flightrec/flightrec.toml` when it exists. The file's settings are handed to the parser as
//! environment variables, so one parser applies the precedence; `--print-config` shows the result
//! and where each value came from.
use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use clap::{parser::ValueSource, ArgMatches, Command};

/// Where the config file is when nothing names one (the Debian package installs it there).
pub const DEFAULT_PATH: &str = "/etc/flightrec/flightrec.toml";

/// Separator of list values in an environment variable (a trigger can hold commas).
pub const LIST_SEPARATOR: char = ';';

/// The environment variable of option `key` (`max-size` → `FLIGHTREC_MAX_SIZE`).
pub fn env_name(key: &str) -> String {
    format!("FLIGHTREC_{}", key.replace('-', "_").to_uppercase())
}

/// The config file that was read, and the variables its settings became.
#[derive(Debug, Default)]
pub struct Loaded {
    pub path: Option<PathBuf>,
    pub from_file: Vec<String>,
}

/// The file named by `--config` among `args`, `$FLIGHTREC_CONFIG`, or the default one if present.
fn config_path(args: &[OsString]) -> Option<(PathBuf, bool)> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--config" {
            return it.next().map(|p| (PathBuf::from(p), true));
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some((PathBuf::from(p), true));
        }
    }
    if let Some(p) = std::env::var_os("FLIGHTREC_CONFIG") {
        return Some((PathBuf::from(p), true));
    }
    let default = Path::new(DEFAULT_PATH);
    default.is_file().then(|| (default.to_path_buf(), false))
}

/// The `[record]` settings of a config file as (option, value as the command line would take it).
pub fn parse(text: &str, known: &[String]) -> Result<Vec<(String, String)>> {
    let doc: toml::Table = text.parse().context("not valid TOML")?;
    let mut out = Vec::new();
    for (section, value) in &doc {
        let toml::Value::Table(table) = value else {
            bail!("{section} is not a table: settings go under [record]");
        };
        if section != "record" {
            bail!("unknown section [{section}]: settings go under [record]");
        }
        for (key, v) in table {
            let key = key.replace('_', "-");
            if !known.contains(&key) {
                bail!("unknown setting {key} (settings: {})", known.join(", "));
            }
            let text = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => {
                    let mut parts = Vec::new();
                    for item in items {
                        match item {
                            toml::Value::String(s) => parts.push(s.clone()),
                            other => bail!(
                                "{key}: list items must be strings, not {}",
                                other.type_str()
                            ),
                        }
                    }
                    // Events are one comma-separated option; triggers are repeated ones.
                    let sep = if key == "events" { ',' } else { LIST_SEPARATOR };
                    parts.join(&sep.to_string())
                }
                other => bail!(
                    "{key}: a {} is not a string, number, boolean or list",
                    other.type_str()
                ),
            };
            out.push((key, text));
        }
    }
    Ok(out)
}

/// Reads the config file, if any, and sets `FLIGHTREC_<OPTION>` for each setting the environment
/// does not set already. Call before parsing the command line, while the program is one thread.
pub fn load(args: &[OsString], record: &Command) -> Result<Loaded> {
    let Some((path, named)) = config_path(args) else {
        return Ok(Loaded::default());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if !named && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Loaded::default())
        }
        Err(e) => bail!("cannot read the config file {}: {e}", path.display()),
    };
    let known: Vec<String> = record
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .filter(|l| l != "config" && l != "print-config")
        .collect();
    let settings =
        parse(&text, &known).with_context(|| format!("config file {}", path.display()))?;
    let mut from_file = Vec::new();
    for (key, value) in settings {
        let var = env_name(&key);
        if std::env::var_os(&var).is_none() {
            // SAFETY: called at start, before any other thread exists.
            unsafe { std::env::set_var(&var, value) };
            from_file.push(var);
        }
    }
    Ok(Loaded {
        path: Some(path),
        from_file,
    })
}

/// The effective settings of `record` as a config file, each with where it came from.
pub fn print(record: &Command, m: &ArgMatches, loaded: &Loaded) -> String {
    let mut out = String::from("[record]\n");
    for a in record.get_arguments() {
        let (Some(long), id) = (a.get_long(), a.get_id().as_str()) else {
            continue;
        };
        if matches!(long, "config" | "print-config" | "help") {
            continue;
        }
        let raw: Vec<String> = m
            .get_raw(id)
            .map(|v| v.map(|s| s.to_string_lossy().to_string()).collect())
            .unwrap_or_default();
        let from = match m.value_source(id) {
            Some(ValueSource::CommandLine) => "command line".to_string(),
            Some(ValueSource::EnvVariable) if loaded.from_file.contains(&env_name(long)) => {
                format!(
                    "config file {}",
                    loaded.path.as_deref().unwrap_or(Path::new("?")).display()
                )
            }
            Some(ValueSource::EnvVariable) => format!("environment {}", env_name(long)),
            Some(ValueSource::DefaultValue) => "default".to_string(),
            _ => "not set".to_string(),
        };
        let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let value = if a.get_action().takes_values() {
            match (raw.len(), long) {
                (0, _) => {
                    out.push_str(&format!("# {long} = (none)  # {from}\n"));
                    continue;
                }
                (_, "trigger") => format!(
                    "[{}]",
                    raw.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ")
                ),
                _ => quote(&raw.join(",")),
            }
        } else {
            // A flag: set or not.
            m.get_flag(id).to_string()
        };
        out.push_str(&format!("{long} = {value}  # {from}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<String> {
        [
            "dir",
            "window",
            "events",
            "trigger",
            "waker-stacks",
            "max-size",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn settings_become_what_the_command_line_takes() {
        let text = r#"
            [record]
            dir = "/var/lib/flightrec"
            window = "30m"
            max_size = "1GiB"
            events = ["sched", "process"]
            trigger = ["runq>50ms,comm=postgres", "exit:oom"]
            waker-stacks = true
        "#;
        let s = parse(text, &known()).unwrap();
        let get = |k: &str| s.iter().find(|(key, _)| key == k).unwrap().1.clone();
        assert_eq!(get("dir"), "/var/lib/flightrec");
        assert_eq!(get("max-size"), "1GiB");
        assert_eq!(get("events"), "sched,process");
        assert_eq!(get("trigger"), "runq>50ms,comm=postgres;exit:oom");
        assert_eq!(get("waker-stacks"), "true");
    }

    #[test]
    fn mistakes_are_named() {
        let e = parse("[record]\nwindw = \"1m\"\n", &known()).unwrap_err();
        assert!(format!("{e:#}").contains("unknown setting windw"), "{e:#}");
        let e = parse("window = \"1m\"\n", &known()).unwrap_err();
        assert!(format!("{e:#}").contains("[record]"), "{e:#}");
        assert!(parse("[record\n", &known()).is_err());
        assert_eq!(env_name("max-size"), "FLIGHTREC_MAX_SIZE");
    }
}
