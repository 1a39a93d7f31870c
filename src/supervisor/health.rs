//! Is a daemon answering? One check each, without a subprocess: an OVSDB echo on db.sock for
//! ovsdb-server, a `version` JSON-RPC call on the control socket for ovs-vswitchd.

use super::daemon::{Daemon, Layout};
use std::time::Duration;

/// One check of `daemon` (running as `pid`), failing after `timeout`. A stopped (SIGSTOP) or hung
/// daemon still accepts connections in the kernel but never answers: the timeout catches it.
pub async fn check(
    daemon: Daemon,
    pid: u32,
    layout: &Layout,
    timeout: Duration,
) -> Result<(), String> {
    let attempt = async {
        match daemon {
            Daemon::OvsdbServer => {
                let client = crate::ovsdb::Client::connect_unix(&layout.db_sock())
                    .await
                    .map_err(|e| e.to_string())?;
                client.echo().await.map_err(|e| e.to_string())
            }
            Daemon::Vswitchd => {
                crate::unixctl::call(&layout.ctl_socket(daemon, pid), "version", &[])
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}
