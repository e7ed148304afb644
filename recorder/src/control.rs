//! The control socket: `DIR/control.sock`, 0600 in a 0700 directory, one request per connection.
//! `snapshot NAME` freezes the window; the answer is `ok PATH` or `error MESSAGE`.
use std::{
    io::{BufRead, BufReader, Write},
    os::unix::{fs::PermissionsExt, net::UnixStream},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context, Result};

/// File name of the socket in the capture directory.
pub const SOCKET: &str = "control.sock";

/// Binds the socket (removing a stale one) readable by the owner only.
pub fn bind(dir: &Path) -> Result<tokio::net::UnixListener> {
    let path = dir.join(SOCKET);
    let _ = std::fs::remove_file(&path);
    let l = tokio::net::UnixListener::bind(&path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// A parsed request.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// Freeze the window under this name.
    Snapshot(String),
}

/// Parses one request line.
pub fn parse(line: &str) -> Result<Request, String> {
    match line.trim().split_once(' ') {
        Some(("snapshot", name)) => Ok(Request::Snapshot(name.trim().to_string())),
        _ => Err(format!("unknown request {:?}", line.trim())),
    }
}

/// `flightrec snapshot`: asks the recorder of `dir` to freeze its window.
pub fn request_snapshot(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(SOCKET);
    let mut s = UnixStream::connect(&path).with_context(|| {
        format!(
            "no recorder is running on {} (cannot connect to {})",
            dir.display(),
            path.display()
        )
    })?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    writeln!(s, "snapshot {name}")?;
    let mut answer = String::new();
    BufReader::new(&s).read_line(&mut answer)?;
    match answer.trim().split_once(' ') {
        Some(("ok", p)) => Ok(PathBuf::from(p)),
        Some(("error", e)) => bail!("{e}"),
        _ => bail!("unexpected answer from the recorder: {:?}", answer.trim()),
    }
}
