//! Hitless restarts: a snapshot of every bridge's OpenFlow state under `<db_dir>/flows`, put
//! back into every new ovs-vswitchd before it handles a packet.
//!
//! ovs-vswitchd starts with empty OpenFlow tables and, on the kernel datapath, flushes the
//! datapath's flows: a crash, a health-check kill or a new container loses traffic until the
//! flows come back, and flows that came from a controller or `ovs-ofctl add-flow` never do.
//! So, as `ovs-ctl restart` does for planned restarts only (ovs-save and
//! `other_config:flow-restore-wait`), for every start of ovs-vswitchd:
//! 1. [`Flows::before_vswitchd`]: snapshots of bridges no longer in the database are removed,
//!    damaged ones moved aside, and `flow-restore-wait=true` is stamped when there is one to
//!    restore (cleared otherwise: a leftover flag would keep ovs-vswitchd idle forever).
//!    With the flag, ovs-vswitchd neither flushes nor expires the datapath's flows, handles no
//!    packet itself and does not connect to controllers (ovs-vswitchd.conf.db(5)).
//! 2. [`Flows::after_vswitchd`], once it answers: each snapshot restored with `ovs-ofctl`
//!    within `restore_timeout`, then the flag removed, always, whatever failed: traffic must
//!    never stay blocked. A snapshot ovs-vswitchd refused is renamed aside; one whose restore
//!    was cut short by ovs-vswitchd dying stays, for the next start.
//! 3. While it runs, [`Flows::snapshot_loop`] compares each bridge's flows with the snapshot
//!    every `flow_snapshot_interval` (less often when dumping them takes more than 1/20
//!    of that time, yet at least every 10 s) and writes (atomically) only on a change; groups, meters and TLV maps are
//!    compared too every [`FULL_EVERY`] passes. [`Flows::final_snapshot`]
//!    takes one more before ovs-vswitchd is told to exit.
//!
//! Snapshots are taken only between a restore and the next stop of ovs-vswitchd (the gate):
//! a new ovs-vswitchd's empty tables must never overwrite the snapshot it is about to get.
//! Rules name ports by OpenFlow number; OVS keeps those across restarts (it reuses
//! Interface.ofport, tested in tests/flows.rs).

mod db;
pub mod file;
pub mod ofctl;
mod snapshot;

use super::reaper::Reaper;
use super::state::{SnapshotInfo, StateTx};
use crate::ovsdb::Client;
use db::{bridges, set_flag};
use ofctl::Ofctl;
use snapshot::Known;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};
use tracing::{error, info, warn};

/// Every this many passes, groups, meters and the TLV map are compared too (a pass otherwise
/// dumps only the flows, the part that changes often).
pub const FULL_EVERY: u64 = 30;
/// The key ovs-vswitchd reads on Open_vSwitch other_config.
const FLAG: &str = "flow-restore-wait";
/// The directory under db_dir.
pub const DIR: &str = "flows";
const OVSDB_TIMEOUT: Duration = Duration::from_secs(5);

/// What `[ovs]` says.
#[derive(Debug, Clone)]
pub struct Config {
    /// Restore snapshots (and stamp the flag) at every start of ovs-vswitchd.
    pub restore: bool,
    pub interval: Duration,
    pub restore_timeout: Duration,
}

/// Paths the module works with.
#[derive(Debug, Clone)]
pub struct Paths {
    pub db_dir: PathBuf,
    pub run_dir: PathBuf,
    pub db_sock: PathBuf,
    /// ovs-vswitchd's pidfile: its lock says whether it is still alive.
    pub vswitchd_pidfile: PathBuf,
}

/// A bridge as the database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    pub name: String,
    /// The highest OpenFlow version it enables.
    pub protocol: String,
}

/// A snapshot read before ovs-vswitchd started, to restore once it answers.
#[derive(Debug)]
pub struct Pending {
    path: PathBuf,
    snapshot: file::Snapshot,
    /// The version to restore at: the snapshot's, or the bridge's highest when the bridge no
    /// longer enables that one.
    protocol: String,
}

#[derive(Debug, Default)]
struct Gate {
    /// Snapshots may be taken: ovs-vswitchd runs with its flows restored.
    open: bool,
    passes: u64,
    known: HashMap<String, Known>,
    /// The last bridge list read, for a snapshot taken when ovsdb-server is gone.
    bridges: Vec<Bridge>,
}

/// One restore's outcome, as counted in `ovs_appliance_flow_restores_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Restored,
    Failed,
    /// ovs-vswitchd died during the restore: the snapshot stays for the next start.
    Interrupted,
}

pub struct Flows {
    reaper: &'static Reaper,
    paths: Paths,
    config: Config,
    state: StateTx,
    gate: tokio::sync::Mutex<Gate>,
}

impl Flows {
    pub fn new(reaper: &'static Reaper, paths: Paths, config: Config, state: StateTx) -> Self {
        Self {
            reaper,
            paths,
            config,
            state,
            gate: tokio::sync::Mutex::default(),
        }
    }

    fn dir(&self) -> PathBuf {
        self.paths.db_dir.join(DIR)
    }

    fn ofctl(&self, timeout: Duration) -> Ofctl<'_> {
        Ofctl {
            reaper: self.reaper,
            run_dir: &self.paths.run_dir,
            timeout,
        }
    }

    async fn client(&self) -> Result<Client, crate::ovsdb::Error> {
        Ok(Client::connect_unix(&self.paths.db_sock)
            .await?
            .with_timeout(OVSDB_TIMEOUT))
    }

    /// Before ovs-vswitchd is spawned (ovsdb-server answering). Stops snapshots, drops those of
    /// vanished bridges, reads the others, and sets or clears the flag.
    pub async fn before_vswitchd(&self) -> Vec<Pending> {
        let mut gate = self.gate.lock().await;
        gate.open = false;
        let dir = self.dir();
        if let Err(e) = super::files::create_dir(&dir, super::files::DB_DIR_MODE) {
            error!(dir = %dir.display(), %e, "cannot create the flow snapshot directory");
        }
        let client = match self.client().await {
            Ok(c) => c,
            Err(e) => {
                warn!(%e, "ovsdb-server did not answer: no flows restored");
                return Vec::new();
            }
        };
        let bridges = match bridges(&client).await {
            Ok(b) => b,
            Err(e) => {
                warn!(%e, "failed to read the bridges: no flows restored");
                let _ = set_flag(&client, false).await;
                return Vec::new();
            }
        };
        let pending = self.read_snapshots(&bridges);
        self.publish_files(&bridges);
        let flag = self.config.restore && !pending.is_empty();
        match set_flag(&client, flag).await {
            Ok(()) if flag => {
                info!(
                    snapshots = pending.len(),
                    "flow-restore-wait set: ovs-vswitchd keeps the datapath's flows until they are restored"
                );
                pending
            }
            Ok(()) => Vec::new(),
            Err(e) => {
                error!(%e, "failed to set other_config:flow-restore-wait: flows are restored after ovs-vswitchd starts, not before it forwards");
                if self.config.restore {
                    pending
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// Removes snapshots of bridges that are gone, moves aside damaged ones, and returns the
    /// others (when restoring).
    fn read_snapshots(&self, bridges: &[Bridge]) -> Vec<Pending> {
        let dir = self.dir();
        let mut pending = Vec::new();
        for (name, path) in snapshot_files(&dir) {
            let Some(bridge) = bridges.iter().find(|b| b.name == name) else {
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        info!(bridge = %name, path = %path.display(), "removed the flow snapshot of a bridge that no longer exists")
                    }
                    Err(e) => {
                        warn!(path = %path.display(), %e, "failed to remove a stale flow snapshot")
                    }
                }
                continue;
            };
            if !self.config.restore {
                continue;
            }
            match file::read(&path) {
                Ok(snapshot) => {
                    let protocol = if snapshot.protocol == bridge.protocol
                        || ofctl::version_of(&snapshot.protocol)
                            .is_some_and(|v| Some(v) <= ofctl::version_of(&bridge.protocol))
                    {
                        snapshot.protocol.clone()
                    } else {
                        bridge.protocol.clone()
                    };
                    pending.push(Pending {
                        path,
                        snapshot,
                        protocol,
                    });
                }
                Err(e) => {
                    error!(bridge = %name, error = %e, "flow snapshot refused");
                    self.set_aside(&path);
                    self.count(Outcome::Failed);
                }
            }
        }
        pending
    }

    fn set_aside(&self, path: &Path) {
        match file::move_aside(path, SystemTime::now()) {
            Ok(aside) => {
                warn!(path = %path.display(), aside = %aside.display(), "flow snapshot kept aside")
            }
            Err(e) => error!(path = %path.display(), %e, "failed to move the flow snapshot aside"),
        }
    }

    /// Once ovs-vswitchd answers: restores `pending`, then clears the flag whatever happened,
    /// and lets snapshots be taken again.
    pub async fn after_vswitchd(&self, pending: Vec<Pending>) {
        let mut gate = self.gate.lock().await;
        gate.known.clear();
        if !pending.is_empty() {
            let began = Instant::now();
            let deadline = tokio::time::Instant::now() + self.config.restore_timeout;
            for p in pending {
                let bridge = p.snapshot.bridge.clone();
                let outcome = self.restore_one(&p, deadline).await;
                if outcome == Outcome::Restored {
                    let known = gate.known.entry(bridge).or_default();
                    known.content = Some(p.snapshot.content.digest());
                }
                self.count(outcome);
            }
            self.clear_flag().await;
            info!(
                took_ms = began.elapsed().as_millis() as u64,
                "flow restore finished; flow-restore-wait cleared"
            );
        }
        gate.open = true;
    }

    async fn restore_one(&self, p: &Pending, deadline: tokio::time::Instant) -> Outcome {
        let bridge = &p.snapshot.bridge;
        let began = Instant::now();
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let ofctl = self.ofctl(left.max(Duration::from_millis(1)));
        let work = async {
            wait_for_bridge(&self.paths, bridge).await?;
            ofctl
                .restore(
                    bridge,
                    &p.protocol,
                    &p.snapshot.content,
                    &self.paths.run_dir,
                )
                .await
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(Ok(())) => {
                info!(
                    bridge = %bridge,
                    flows = p.snapshot.content.flows.len(),
                    groups = p.snapshot.content.groups.len(),
                    meters = p.snapshot.content.meters.len(),
                    protocol = %p.protocol,
                    took_ms = began.elapsed().as_millis() as u64,
                    "flows restored"
                );
                Outcome::Restored
            }
            Ok(Err(e)) if !super::stale::locked(&self.paths.vswitchd_pidfile) => {
                warn!(bridge = %bridge, error = %e, path = %p.path.display(), "ovs-vswitchd ended during the flow restore; the snapshot is kept for its next start");
                Outcome::Interrupted
            }
            Ok(Err(e)) => {
                error!(bridge = %bridge, error = %e, path = %p.path.display(), "flow snapshot refused by ovs-vswitchd");
                self.set_aside(&p.path);
                Outcome::Failed
            }
            Err(_) => {
                error!(bridge = %bridge, path = %p.path.display(), timeout = ?self.config.restore_timeout, "flow restore did not finish within restore_timeout; the flag is cleared anyway");
                Outcome::Failed
            }
        }
    }

    async fn clear_flag(&self) {
        let cleared = match self.client().await {
            Ok(client) => set_flag(&client, false).await,
            Err(e) => Err(e),
        };
        if let Err(e) = cleared {
            // ovsdb-server is gone: it is restarted with ovs-vswitchd, and the next start sets
            // or clears the flag again.
            error!(%e, "failed to clear other_config:flow-restore-wait");
        }
    }

    fn count(&self, outcome: Outcome) {
        self.state.send_modify(|s| match outcome {
            Outcome::Restored => s.flows.restored += 1,
            Outcome::Failed => s.flows.failed += 1,
            Outcome::Interrupted => s.flows.interrupted += 1,
        });
    }

    /// Publishes the snapshots on disk (bridge, time, size, flows), for metrics.
    fn publish_files(&self, bridges: &[Bridge]) {
        let mut snapshots = BTreeMap::new();
        for b in bridges {
            let Some(path) = file::path(&self.dir(), &b.name) else {
                continue;
            };
            if let (Ok(meta), Ok(s)) = (std::fs::metadata(&path), file::read(&path)) {
                let info = SnapshotInfo {
                    taken: s.taken,
                    bytes: meta.len(),
                    flows: s.content.flows.len() as u64,
                };
                snapshots.insert(b.name.clone(), info);
            }
        }
        self.state.send_modify(|s| s.flows.snapshots = snapshots);
    }
}
/// `(bridge, path)` of every snapshot file in `dir`.
fn snapshot_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let bridge = file::bridge_of(&name)?.to_string();
            Some((bridge, e.path()))
        })
        .collect();
    files.sort();
    files
}

/// Waits until the bridge's management socket accepts a connection (ovs-vswitchd answers its
/// control socket before it has made every bridge), or ovs-vswitchd is gone.
async fn wait_for_bridge(paths: &Paths, bridge: &str) -> Result<(), ofctl::Failed> {
    let mgmt = crate::rundir::mgmt(&paths.run_dir, bridge);
    while tokio::net::UnixStream::connect(&mgmt).await.is_err() {
        if !super::stale::locked(&paths.vswitchd_pidfile) {
            return Err(ofctl::Failed {
                command: format!("connect {}", mgmt.display()),
                said: "ovs-vswitchd is gone".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// One snapshot as `status` shows it: when it was taken and its flows, or why it is unreadable.
pub type Described = Result<(SystemTime, usize), String>;

/// The snapshots in `db_dir` for `status`: bridge, when taken, flows; damaged ones with why.
pub fn describe(db_dir: &Path) -> Vec<(String, Described)> {
    snapshot_files(&db_dir.join(DIR))
        .into_iter()
        .map(|(bridge, path)| {
            let read = file::read(&path)
                .map(|s| (s.taken, s.content.flows.len()))
                .map_err(|e| e.to_string());
            (bridge, read)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_snapshot_files_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "br0.flows",
            ".br0.flows.tmp",
            "br1.flows.failed-9",
            "br2.flows",
        ] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let names: Vec<String> = snapshot_files(dir.path())
            .into_iter()
            .map(|(b, _)| b)
            .collect();
        assert_eq!(names, ["br0", "br2"]);
    }
}
