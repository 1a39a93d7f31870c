//! JSON-RPC to OVS control sockets (`<rundir>/ovs-vswitchd.<pid>.ctl`, `ovsdb-server.<pid>.ctl`):
//! what `ovs-appctl` does, without a subprocess. Owns nothing but the control-socket connection.
//!
//! The protocol is the same JSON-RPC as OVSDB (lib/unixctl.c): the request
//! `{"method":"version","params":[],"id":N}` gets `{"id":N,"result":"text","error":null}`, or an
//! error reply whose "error" is a string. Params are always strings, as on the appctl command line.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokio::net::UnixStream;

use crate::ovsdb::rpc_internal::{CallError, Rpc};

/// Errors talking to a control socket.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The control socket could not be opened (daemon not running, or wrong run directory).
    #[error("failed to connect to control socket {}: {source}", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The pidfile that names the control socket could not be read.
    #[error("failed to read pidfile {}: {reason}", path.display())]
    Pidfile { path: PathBuf, reason: String },
    /// The daemon closed the connection before replying.
    #[error("control socket closed before {method} got a reply: {reason}")]
    Disconnected { method: String, reason: String },
    /// The daemon answered with an error (unknown command, bad arguments, ...).
    #[error("{method} failed: {message}")]
    Command { method: String, message: String },
    /// The reply was not the shape lib/unixctl.c sends.
    #[error("unexpected reply to {method}: {reason}")]
    Protocol { method: String, reason: String },
}

impl Error {
    /// True when the daemon reported the command as unknown (so callers can fall back to an
    /// older command name on older OVS).
    pub fn is_unknown_command(&self) -> bool {
        matches!(self, Error::Command { message, .. } if message.contains("is not a valid command"))
    }

    /// True when ovs-vswitchd answered that no bridge has the name given (`bridge/dump-flows`
    /// of a bridge deleted meanwhile). Like `is_unknown_command`, this reads the daemon's text,
    /// which is all lib/unixctl.c gives: here, in the module that speaks the protocol, so that
    /// callers decide on what this returns.
    pub fn is_no_such_bridge(&self) -> bool {
        matches!(self, Error::Command { message, .. } if message.contains("no bridge named"))
    }
}

/// A persistent connection to one control socket; many calls, possibly concurrent. Cheap to
/// clone. Used by metrics, which ask vswitchd the same questions every scrape.
#[derive(Clone, Debug)]
pub struct Conn {
    rpc: Rpc,
}

impl Conn {
    /// Connects to a control socket.
    pub async fn connect(path: &Path) -> Result<Conn, Error> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| Error::Connect {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Conn {
            rpc: Rpc::start(stream),
        })
    }

    /// Runs one command (`ovs-appctl <method> <params...>`) and returns its text output.
    pub async fn call(&self, method: &str, params: &[&str]) -> Result<String, Error> {
        let params = Value::from(params.iter().map(|p| Value::from(*p)).collect::<Vec<_>>());
        match self.rpc.call(method, params).await {
            Ok(v) => reply_text(method, v),
            Err(CallError::Closed(reason)) => Err(Error::Disconnected {
                method: method.to_string(),
                reason,
            }),
            Err(CallError::Remote(e)) => Err(Error::Command {
                method: method.to_string(),
                message: match e {
                    Value::String(s) => s.trim_end().to_string(),
                    other => other.to_string(),
                },
            }),
        }
    }

    /// True once the daemon has closed the connection (it restarted, or exited).
    pub fn is_closed(&self) -> bool {
        self.rpc.is_closed()
    }
}

fn reply_text(method: &str, v: Value) -> Result<String, Error> {
    match v {
        Value::String(s) => Ok(s),
        // Some commands reply with a null result and no error when they have nothing to say.
        Value::Null => Ok(String::new()),
        other => Err(Error::Protocol {
            method: method.to_string(),
            reason: format!("result is not a string: {other}"),
        }),
    }
}

/// Connects, runs one command, and disconnects.
pub async fn call(path: &Path, method: &str, params: &[&str]) -> Result<String, Error> {
    Conn::connect(path).await?.call(method, params).await
}

/// The control socket of `daemon` (e.g. "ovs-vswitchd") in `run_dir`: OVS names it after the
/// pid it writes to `<run_dir>/<daemon>.pid` (lib/daemon-unix.c, lib/unixctl.c).
pub fn ctl_path(run_dir: &Path, daemon: &str) -> Result<PathBuf, Error> {
    let pidfile = crate::rundir::pidfile(run_dir, daemon);
    let text = std::fs::read_to_string(&pidfile).map_err(|e| Error::Pidfile {
        path: pidfile.clone(),
        reason: e.to_string(),
    })?;
    let pid: u32 = text.trim().parse().map_err(|_| Error::Pidfile {
        path: pidfile.clone(),
        reason: format!("not a pid: {:?}", text.trim()),
    })?;
    Ok(crate::rundir::ctl_socket(run_dir, daemon, pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctl_path_from_pidfile() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ovs-vswitchd.pid"), "4242\n").unwrap();
        let p = ctl_path(dir.path(), "ovs-vswitchd").unwrap();
        assert_eq!(p, dir.path().join("ovs-vswitchd.4242.ctl"));
        std::fs::write(dir.path().join("ovsdb-server.pid"), "x").unwrap();
        assert!(matches!(
            ctl_path(dir.path(), "ovsdb-server"),
            Err(Error::Pidfile { .. })
        ));
    }

    #[test]
    fn reply_shapes() {
        assert_eq!(reply_text("v", Value::from("x\n")).unwrap(), "x\n");
        assert_eq!(reply_text("v", Value::Null).unwrap(), "");
        assert!(reply_text("v", Value::from(1)).is_err());
    }

    #[test]
    fn unknown_command_detected() {
        let e = Error::Command {
            method: "nope".into(),
            message: "\"nope\" is not a valid command (use \"list-commands\" to see a list of valid commands)".into(),
        };
        assert!(e.is_unknown_command());
    }
}
