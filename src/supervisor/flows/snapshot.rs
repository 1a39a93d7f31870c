//! The snapshot side: a pass every `flow_snapshot_interval` while the gate is open, comparing
//! each bridge's flows with what was last written (by digest) and writing only on a change;
//! dumps held to 1/20 of a core ([`DUTY`]) but never more than [`MAX_HOLD`] apart; vanished
//! bridges' snapshots removed.

use super::db::bridges;
use super::file;
use super::ofctl::Ofctl;
use super::{snapshot_files, Bridge, Flows, Gate, FULL_EVERY};
use crate::supervisor::state::SnapshotInfo;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};
use tracing::{debug, error, info};

/// What the last pass knew of a bridge.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Known {
    pub(super) flows: Option<[u8; 20]>,
    pub(super) content: Option<[u8; 20]>,
    /// No dump before this: dumping is held to 1/[`DUTY`] of one core, so a big table is
    /// compared less often than every interval.
    next_dump: Option<Instant>,
}

/// The share of time the flow dumps may take: a dump of 10,000 flows took 150-700 ms here
/// (ovs-ofctl and ovs-vswitchd together), which every second would cost a third of a core.
const DUTY: u32 = 20;
/// The longest a bridge goes uncompared however slow its dumps are (a loaded host makes them
/// slow): the changes a crash can lose stay bounded.
const MAX_HOLD: Duration = Duration::from_secs(10);

/// When the next dump may start, after one that began at `began` and just ended.
fn next_dump_after(began: Instant) -> Option<Instant> {
    Some(began + (began.elapsed() * DUTY).min(MAX_HOLD))
}

impl Flows {
    /// Takes a snapshot every interval while the gate is open. Runs until dropped.
    pub async fn snapshot_loop(&self) {
        let period = self.config.interval;
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let mut gate = self.gate.lock().await;
            if !gate.open {
                continue;
            }
            gate.passes += 1;
            let full = gate.passes % FULL_EVERY == 0;
            self.pass(&mut gate, full).await;
        }
    }

    /// One last full snapshot before ovs-vswitchd is told to exit (or killed with a dead
    /// ovsdb-server), then no more until the next restore.
    pub async fn final_snapshot(&self) {
        let mut gate = self.gate.lock().await;
        if gate.open {
            self.pass(&mut gate, true).await;
        }
        gate.open = false;
    }

    async fn pass(&self, gate: &mut Gate, full: bool) {
        let read = match self.client().await {
            Ok(client) => bridges(&client).await,
            Err(e) => Err(e),
        };
        let bridges = match read {
            Ok(b) => {
                self.drop_vanished(&b, gate);
                gate.bridges = b.clone();
                b
            }
            Err(e) => {
                debug!(%e, "bridges not read; using the last list");
                gate.bridges.clone()
            }
        };
        let ofctl = self.ofctl(Duration::from_secs(30));
        for bridge in &bridges {
            let known = gate.known.entry(bridge.name.clone()).or_default();
            if let Some(k) = self.snapshot_one(&ofctl, bridge, *known, full).await {
                *known = k;
            }
        }
    }

    /// Snapshots of bridges that left the database while it ran.
    fn drop_vanished(&self, bridges: &[Bridge], gate: &mut Gate) {
        gate.known
            .retain(|name, _| bridges.iter().any(|b| &b.name == name));
        let mut gone = Vec::new();
        for (name, path) in snapshot_files(&self.dir()) {
            if !bridges.iter().any(|b| b.name == name) && std::fs::remove_file(&path).is_ok() {
                info!(bridge = %name, "bridge deleted: its flow snapshot removed");
                gone.push(name);
            }
        }
        if !gone.is_empty() {
            self.state.send_modify(|s| {
                for name in &gone {
                    s.flows.snapshots.remove(name);
                }
            });
        }
    }

    /// Writes `bridge`'s snapshot when its flows (or, on a full pass, anything) changed.
    /// Returns what is known after it, or None when nothing could be read (ovs-vswitchd busy
    /// or gone: tried again next pass).
    async fn snapshot_one(
        &self,
        ofctl: &Ofctl<'_>,
        bridge: &Bridge,
        known: Known,
        full: bool,
    ) -> Option<Known> {
        let path = file::path(&self.dir(), &bridge.name)?;
        let began = Instant::now();
        if !full && known.next_dump.is_some_and(|at| began < at) {
            return Some(known);
        }
        let flows = match ofctl.dump_flows(&bridge.name, &bridge.protocol).await {
            Ok(f) => f,
            Err(e) => {
                debug!(bridge = %bridge.name, %e, "flows not dumped");
                return None;
            }
        };
        let next_dump = next_dump_after(began);
        let flows_digest = lines_digest(&flows);
        if !full && known.flows == Some(flows_digest) && known.content.is_some() {
            return Some(Known { next_dump, ..known });
        }
        let content = match ofctl.dump(&bridge.name, &bridge.protocol).await {
            Ok(c) => c,
            Err(e) => {
                debug!(bridge = %bridge.name, %e, "snapshot not dumped");
                return None;
            }
        };
        let digest = content.digest();
        let known = Known {
            flows: Some(lines_digest(&content.flows)),
            content: Some(digest),
            next_dump: next_dump_after(began),
        };
        if self.on_disk_digest(&path, known.content) {
            return Some(known);
        }
        let snapshot = file::Snapshot {
            bridge: bridge.name.clone(),
            protocol: bridge.protocol.clone(),
            taken: SystemTime::now(),
            content,
        };
        let text = file::encode(&snapshot);
        match file::write_atomic(&path, &text) {
            Ok(()) => {
                // At most once per interval and bridge, and only on a change.
                info!(bridge = %bridge.name, flows = snapshot.content.flows.len(), bytes = text.len(), took_ms = began.elapsed().as_millis() as u64, "flow snapshot written");
                let info = SnapshotInfo {
                    taken: snapshot.taken,
                    bytes: text.len() as u64,
                    flows: snapshot.content.flows.len() as u64,
                };
                self.state.send_modify(|s| {
                    s.flows.written += 1;
                    s.flows.snapshots.insert(bridge.name.clone(), info);
                });
                Some(known)
            }
            Err(e) => {
                error!(bridge = %bridge.name, error = %e, "flow snapshot not written; the previous one is kept");
                self.state.send_modify(|s| s.flows.write_failed += 1);
                None
            }
        }
    }

    /// Whether the file on disk already holds content with `digest` (after a restart nothing
    /// is known in memory, and an unchanged snapshot must not be written again).
    fn on_disk_digest(&self, path: &Path, digest: Option<[u8; 20]>) -> bool {
        file::read(path).is_ok_and(|s| Some(s.content.digest()) == digest)
    }
}

fn lines_digest(lines: &[String]) -> [u8; 20] {
    let mut sha = sha1_smol::Sha1::new();
    for l in lines {
        sha.update(l.as_bytes());
        sha.update(b"\n");
    }
    sha.digest().bytes()
}
