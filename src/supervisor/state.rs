//! What the supervisor tells the rest of the process about the daemons: published on a
//! `tokio::sync::watch` so readers (metrics, health endpoints) always see the latest state and
//! never wait on the supervisor.

use super::daemon::Daemon;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// One daemon as the supervisor last saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonState {
    /// The running process, from spawn until its exit was seen.
    pub pid: Option<u32>,
    /// True while the daemon answers its health checks (false while starting, after a failed
    /// check, and once it has ended).
    pub up: bool,
    /// Up, but its last health check went unanswered while its main thread worked (adding or
    /// deleting many ports): excused up to `busy_timeout`, not restarted.
    pub busy: bool,
    /// Times it was started again after its first start.
    pub restarts: u64,
    /// When the current (or last) process was spawned.
    pub started_at: Option<SystemTime>,
}

/// Both daemons and the versions stamped into the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub ovsdb_server: DaemonState,
    pub vswitchd: DaemonState,
    /// `ovs-vswitchd --version`, once known.
    pub ovs_version: String,
    /// The schema version of conf.db, once known.
    pub db_version: String,
    /// Flow snapshots and restores (hitless restarts).
    pub flows: FlowsState,
}

/// One bridge's flow snapshot on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// When it was written.
    pub taken: SystemTime,
    pub bytes: u64,
    pub flows: u64,
}

/// Counts of restores and snapshot writes since the appliance started, and the snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowsState {
    pub restored: u64,
    /// Refused (moved aside) or not finished within restore_timeout.
    pub failed: u64,
    /// Cut short by ovs-vswitchd's end; retried at its next start.
    pub interrupted: u64,
    pub written: u64,
    /// Writes that failed (a full disk): the previous snapshot was kept.
    pub write_failed: u64,
    pub snapshots: BTreeMap<String, SnapshotInfo>,
}

impl State {
    pub fn daemon(&self, daemon: Daemon) -> &DaemonState {
        match daemon {
            Daemon::OvsdbServer => &self.ovsdb_server,
            Daemon::Vswitchd => &self.vswitchd,
        }
    }

    pub fn daemon_mut(&mut self, daemon: Daemon) -> &mut DaemonState {
        match daemon {
            Daemon::OvsdbServer => &mut self.ovsdb_server,
            Daemon::Vswitchd => &mut self.vswitchd,
        }
    }

    /// Both daemons answer their health checks.
    pub fn healthy(&self) -> bool {
        self.ovsdb_server.up && self.vswitchd.up
    }
}

/// Where the supervisor publishes [`State`].
pub type StateTx = tokio::sync::watch::Sender<State>;
/// Where readers see it.
pub type StateRx = tokio::sync::watch::Receiver<State>;

/// Records a spawn: a new pid, not yet answering; every start after the first is a restart.
pub(super) fn spawned(state: &mut State, daemon: Daemon, pid: u32) {
    let d = state.daemon_mut(daemon);
    if d.started_at.is_some() {
        d.restarts += 1;
    }
    d.pid = Some(pid);
    d.up = false;
    d.busy = false;
    d.started_at = Some(SystemTime::now());
}

/// Records the end of a daemon's process.
pub(super) fn ended(state: &mut State, daemon: Daemon) {
    let d = state.daemon_mut(daemon);
    d.pid = None;
    d.up = false;
    d.busy = false;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_count_every_start_after_the_first() {
        let mut s = State::default();
        spawned(&mut s, Daemon::Vswitchd, 10);
        assert_eq!(s.vswitchd.restarts, 0);
        assert_eq!(s.vswitchd.pid, Some(10));
        s.vswitchd.up = true;
        s.ovsdb_server.up = true;
        assert!(s.healthy());
        ended(&mut s, Daemon::Vswitchd);
        assert!(!s.healthy() && s.vswitchd.pid.is_none());
        spawned(&mut s, Daemon::Vswitchd, 11);
        assert_eq!(s.vswitchd.restarts, 1);
        assert!(!s.vswitchd.up);
        assert_eq!(s.ovsdb_server.restarts, 0);
    }
}
