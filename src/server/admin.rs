//! The admin socket: a Unix socket (file permissions decide who may use
//! it; nothing listens on the network) through which `certgate sessions`
//! and `certgate disconnect` reach the running server. One JSON request
//! line per connection, one JSON answer line back.
//!
//! Both halves live here: `serve` in the server, `call` in the command
//! line. Decides nothing: selecting and disconnecting are the engine's.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::watch;

use super::Shell;
use crate::config::AdminConfig;
use crate::proto::das::target::Selector;

/// Longest request line taken.
const MAX_REQUEST: u64 = 4096;

#[derive(Debug, Error)]
pub enum AdminError {
    #[error("admin.socket {path}: {message}")]
    Bind { path: String, message: String },
    #[error("{0}")]
    Call(String),
}

/// Which sessions: at most one of these (exactly one to disconnect).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Select {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calling_station: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nas: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl Select {
    /// The selector, None for none given; an error for several.
    pub fn selector(&self) -> Result<Option<Selector>, String> {
        let given: Vec<Selector> = [
            self.user.clone().map(Selector::User),
            self.serial.clone().map(Selector::Serial),
            self.calling_station.clone().map(Selector::CallingStation),
            self.nas.clone().map(Selector::Nas),
            self.group.clone().map(Selector::Group),
        ]
        .into_iter()
        .flatten()
        .collect();
        match given.len() {
            0 => Ok(None),
            1 => Ok(given.into_iter().next()),
            _ => Err("give one of user, serial, calling_station, nas, group".into()),
        }
    }
}

/// One request on the admin socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Sessions {
        #[serde(default)]
        select: Select,
        #[serde(default = "default_limit")]
        limit: usize,
    },
    Disconnect {
        select: Select,
    },
}

fn default_limit() -> usize {
    1000
}

/// Binds the socket: its folder is created when missing, a stale socket
/// file from an earlier run is replaced, and the mode (and group) are set
/// before the first connection can be accepted.
pub fn bind(config: &AdminConfig, path: &Path) -> Result<UnixListener, AdminError> {
    let err = |message: String| AdminError::Bind {
        path: path.display().to_string(),
        message,
    };
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(|e| err(format!("creating its folder: {e}")))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750));
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(err("another server is listening on it".into()));
            }
            std::fs::remove_file(path)
                .map_err(|e| err(format!("removing the stale socket: {e}")))?;
        }
        Ok(_) => return Err(err("exists and is not a socket".into())),
        Err(_) => {}
    }
    // Created with no permissions for others before the mode is set.
    let listener = UnixListener::bind(path).map_err(|e| err(e.to_string()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(config.mode))
        .map_err(|e| err(format!("setting its mode: {e}")))?;
    if let Some(gid) = config.group {
        std::os::unix::fs::chown(path, None, Some(gid))
            .map_err(|e| err(format!("setting its group: {e}")))?;
    }
    Ok(listener)
}

/// Serves connections until shutdown; removes the socket file then.
pub async fn serve(
    listener: UnixListener,
    path: std::path::PathBuf,
    shell: Arc<Shell>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let shell = shell.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader =
                tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST));
            let answer =
                match tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line))
                    .await
                {
                    Ok(Ok(_)) => answer(&shell, &line).await,
                    _ => serde_json::json!({"error": "no request line within 5 s"}),
                };
            let mut text = answer.to_string();
            text.push('\n');
            let _ = write.write_all(text.as_bytes()).await;
        });
    }
    let _ = std::fs::remove_file(&path);
}

async fn answer(shell: &Shell, line: &str) -> serde_json::Value {
    let request: Request = match serde_json::from_str(line.trim()) {
        Ok(r) => r,
        Err(e) => return serde_json::json!({"error": format!("bad request: {e}")}),
    };
    match request {
        Request::Sessions { select, limit } => match select.selector() {
            Ok(selector) => shell
                .engine
                .sessions_matching(selector.as_ref(), limit.min(100_000)),
            Err(e) => serde_json::json!({"error": e}),
        },
        Request::Disconnect { select } => {
            let selector = match select.selector() {
                Ok(Some(s)) => s,
                Ok(None) => {
                    return serde_json::json!({"error": "say which sessions: user, serial, calling_station, nas or group"});
                }
                Err(e) => return serde_json::json!({"error": e}),
            };
            match shell.das.disconnect(shell, &selector).await {
                Ok(reports) => {
                    serde_json::json!({"selector": selector.describe(), "reports": reports})
                }
                Err(e) => serde_json::json!({"error": e.to_string()}),
            }
        }
    }
}

/// The command line's half: sends `request` to the server at `socket` and
/// returns its answer, waiting at most `wait`.
pub fn call(
    socket: &Path,
    request: &Request,
    wait: Duration,
) -> Result<serde_json::Value, AdminError> {
    let e = |m: String| AdminError::Call(m);
    let mut stream = std::os::unix::net::UnixStream::connect(socket).map_err(|err| {
        e(format!(
            "cannot reach the server at {} ({err}): is it running, with this admin.socket, and may you open it?",
            socket.display()
        ))
    })?;
    stream
        .set_read_timeout(Some(wait))
        .map_err(|err| e(err.to_string()))?;
    let mut text = serde_json::to_string(request).map_err(|err| e(err.to_string()))?;
    text.push('\n');
    stream
        .write_all(text.as_bytes())
        .map_err(|err| e(err.to_string()))?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|err| e(format!("no answer within {} s: {err}", wait.as_secs())))?;
    let value: serde_json::Value =
        serde_json::from_str(line.trim()).map_err(|err| e(format!("unreadable answer: {err}")))?;
    if let Some(message) = value.get("error").and_then(|m| m.as_str()) {
        return Err(e(message.to_string()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_the_command_line_writes_them() {
        let r = Request::Disconnect {
            select: Select {
                user: Some("alice@example.org".into()),
                ..Select::default()
            },
        };
        let text = serde_json::to_string(&r).expect("json");
        assert_eq!(
            text,
            r#"{"command":"disconnect","select":{"user":"alice@example.org"}}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&text).expect("parse"), r);
        let s: Request = serde_json::from_str(r#"{"command":"sessions"}"#).expect("parse");
        assert_eq!(
            s,
            Request::Sessions {
                select: Select::default(),
                limit: 1000
            }
        );
        assert!(serde_json::from_str::<Request>(r#"{"command":"reboot"}"#).is_err());
        assert!(
            serde_json::from_str::<Request>(r#"{"command":"disconnect","select":{"mac":"x"}}"#)
                .is_err()
        );
        let two = Select {
            user: Some("a".into()),
            nas: Some("b".into()),
            ..Select::default()
        };
        assert!(two.selector().is_err());
        assert_eq!(Select::default().selector(), Ok(None));
    }
}
