//! The Debian package: built from the workspace by packaging/build-deb.sh, installed with dpkg on
//! this machine, its binaries without their debug sections (kept in the -dbgsym package, found by
//! build ID), its man pages, completions, config file and user in place, its hardened unit
//! verified by systemd-analyze, its config file read by `flightrec record`; then purged.
use std::{path::Path, process::Command};

use super::*;

/// Purges the package however the test ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "flightrec-dbgsym", "flightrec"])
            .output();
    }
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd} {args:?}: {text}");
    text
}

#[test]
fn the_debian_package_installs_and_its_hardened_unit_verifies() {
    require_root!();
    // Installs /etc/flightrec/flightrec.toml, which every `flightrec record` reads: alone.
    let _exclusive = exclusive();
    if Path::new("/usr/bin/flightrec").exists() {
        // Never replace a flightrec installed by someone else.
        panic!("/usr/bin/flightrec exists already: the test installs the package there");
    }
    let out = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/build-deb.sh");
    let built = Command::new(&script)
        .args(["--profile", "dev", "--compression", "none", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    // The script prints the package's path last.
    let deb = String::from_utf8_lossy(&built.stdout).trim().to_string();
    let dbgsym = deb.replace("/flightrec_", "/flightrec-dbgsym_");
    let _installed = Installed;
    run("dpkg", &["-i", &deb, &dbgsym]);

    // The binaries run, carry no DWARF but a link to it, and keep their symbols.
    let version = run("/usr/bin/flightrec", &["--version"]);
    assert!(version.starts_with("flightrec "), "{version}");
    for bin in ["/usr/bin/flightrec", "/usr/bin/flightrec-analyze"] {
        let sections = run("readelf", &["-S", "-W", bin]);
        assert!(!sections.contains(".debug_info"), "{bin} still has DWARF");
        assert!(
            sections.contains(".gnu_debuglink") && sections.contains(".symtab"),
            "{bin}"
        );
        let id = run("readelf", &["-n", bin]);
        let id = id
            .lines()
            .find_map(|l| l.trim().strip_prefix("Build ID: "))
            .unwrap()
            .to_string();
        let debug = format!("/usr/lib/debug/.build-id/{}/{}.debug", &id[..2], &id[2..]);
        assert!(
            run("readelf", &["-S", "-W", &debug]).contains(".debug_info"),
            "{debug}"
        );
    }
    // Man pages for every command and subcommand, completions, the config file, the user.
    for f in [
        "/usr/share/man/man1/flightrec.1.gz",
        "/usr/share/man/man1/flightrec-record.1.gz",
        "/usr/share/man/man1/flightrec-analyze-offwaketime.1.gz",
        "/usr/share/bash-completion/completions/flightrec-analyze",
        "/usr/share/zsh/vendor-completions/_flightrec",
        "/usr/share/fish/vendor_completions.d/flightrec.fish",
        "/etc/flightrec/flightrec.toml",
    ] {
        assert!(Path::new(f).is_file(), "{f} not installed");
    }
    assert!(run("getent", &["passwd", "flightrec"]).contains("/var/lib/flightrec"));
    // The unit: valid, hardened (systemd's own exposure score), reload = snapshot (SIGUSR1).
    let unit = "/lib/systemd/system/flightrec.service";
    run("systemd-analyze", &["verify", "--man=no", unit]);
    let text = std::fs::read_to_string(unit).unwrap();
    for line in [
        "User=flightrec",
        "ProtectSystem=strict",
        "StateDirectory=flightrec",
        "Restart=on-failure",
        "ExecReload=/bin/kill -USR1 $MAINPID",
        "AmbientCapabilities=CAP_BPF CAP_PERFMON CAP_DAC_READ_SEARCH CAP_SYSLOG",
    ] {
        assert!(text.contains(line), "{line} not in the unit");
    }
    let security = run("systemd-analyze", &["security", "--offline=yes", unit]);
    let score: f64 = security
        .lines()
        .find_map(|l| l.split("exposure level for flightrec.service: ").nth(1))
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level: {security}"));
    report(&format!(
        "package: unit exposure level {score} (0 safest, 10 unsafe)"
    ));
    assert!(score < 5.0, "{security}");
    // `flightrec record` reads the installed config file.
    let printed = run("/usr/bin/flightrec", &["record", "--print-config"]);
    assert!(
        printed
            .contains("dir = \"/var/lib/flightrec\"  # config file /etc/flightrec/flightrec.toml"),
        "{printed}"
    );
    // Purged: nothing left.
    run("dpkg", &["--purge", "flightrec-dbgsym", "flightrec"]);
    assert!(!Path::new("/usr/bin/flightrec").exists());
    assert!(!Path::new("/etc/flightrec/flightrec.toml").exists());
}
