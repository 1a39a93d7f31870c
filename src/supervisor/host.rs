//! The supervision loop's real host (see `lifecycle::Host`): the reaper's children, /proc, the
//! daemons' sockets, the claim on run_dir, and the flow snapshots.

use super::claim::Claim;
use super::daemon::{self, Daemon, Layout};
use super::exit::ExitStatus;
use super::flows::{self, Flows};
use super::lifecycle::Host;
use super::reaper::Reaper;
use super::{health, init, stale};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// The real host: the reaper's children, /proc, the daemons' sockets, and this appliance's claim
/// on run_dir, where each daemon it starts is recorded.
pub(super) struct Ovs {
    pub reaper: &'static Reaper,
    pub layout: Layout,
    pub nice: Option<i32>,
    pub proc_root: PathBuf,
    /// ovs-vswitchd runs the kernel datapath: held back early after boot (see
    /// [`super::boot_clock`]).
    pub kernel_datapath: bool,
    pub stamp: init::Stamp,
    pub claim: Claim,
    pub flows: Arc<Flows>,
    /// Snapshots read before ovs-vswitchd's spawn, restored once it answers.
    pub pending: Vec<flows::Pending>,
}

impl Host for Ovs {
    fn spawn(&mut self, daemon: Daemon) -> std::io::Result<(u32, oneshot::Receiver<ExitStatus>)> {
        let spawned = daemon::spawn(self.reaper, daemon, &self.layout, self.nice)?;
        let pid = spawned.child.id();
        self.claim.started(daemon, pid);
        Ok((pid, spawned.exit))
    }

    fn signal(&self, pid: u32, signal: Signal) {
        let _ = kill(Pid::from_raw(pid as i32), signal);
    }

    async fn check(&self, daemon: Daemon, pid: u32, timeout: Duration) -> Result<(), String> {
        health::check(daemon, pid, &self.layout, timeout).await
    }

    fn main_thread(&self, pid: u32) -> Option<(char, u64)> {
        health::main_thread_cpu(&self.proc_root, pid)
    }

    async fn init_row(&mut self, timeout: Duration) -> Result<String, String> {
        let client = crate::ovsdb::Client::connect_unix(&self.layout.db_sock())
            .await
            .map_err(|e| e.to_string())?
            .with_timeout(timeout);
        init::open_vswitch_row(&client, &self.layout.db_dir, &self.stamp)
            .await
            .map_err(|e| e.to_string())
    }

    async fn ask_exit(&self, daemon: Daemon, pid: u32) -> bool {
        let ctl = self.layout.ctl_socket(daemon, pid);
        let asked = tokio::time::timeout(
            Duration::from_secs(1),
            crate::unixctl::call(&ctl, "exit", &[]),
        )
        .await;
        matches!(asked, Ok(Ok(_)))
    }

    fn ended(&mut self, daemon: Daemon, pid: u32) {
        stale::remove_ctl(&self.layout, daemon, pid);
    }

    fn vswitchd_hold(&self) -> Option<Duration> {
        if !self.kernel_datapath {
            return None;
        }
        super::boot_clock::hold(super::boot_clock::monotonic_now()?)
    }

    async fn flows_before_vswitchd(&mut self) {
        self.pending = self.flows.before_vswitchd().await;
    }

    async fn flows_after_vswitchd(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.flows.after_vswitchd(pending).await;
    }

    async fn flows_snapshot(&mut self) {
        self.flows.final_snapshot().await;
    }
}
