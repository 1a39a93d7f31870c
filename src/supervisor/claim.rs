//! The appliance's own claim on a run_dir: `<run_dir>/ovs-appliance.pid`, locked for as long as
//! it supervises, naming its pid and the pids of the daemons it started.
//!
//! Outside a container, a kill -9 of the supervisor leaves its daemons running (in a container
//! they die with its PID namespace). They still hold their pidfiles' locks, so the next appliance
//! would refuse to start beside them forever. It may stop them instead, but only them: daemons
//! this file names, whose appliance is gone (the file is no longer locked). Daemons it has no
//! record of (the distribution's OVS, another tool's) still make it refuse.

use super::daemon::{Daemon, Layout};
use super::stale;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Seek, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// The claim's file name in run_dir.
pub const FILE: &str = crate::rundir::CLAIM;

/// Program name to pid, as the file lists them (`ovs-appliance 12`, `ovsdb-server 13`, ...).
pub type Record = BTreeMap<String, u32>;

/// A held claim: the open file whose lock marks this appliance alive.
pub struct Claim {
    file: File,
    record: Record,
}

fn parse(text: &str) -> Record {
    text.lines()
        .filter_map(|line| {
            let (name, pid) = line.split_once(' ')?;
            Some((name.to_string(), pid.trim().parse().ok()?))
        })
        .collect()
}

impl Claim {
    /// Takes the claim on `run_dir`. Returns what a previous appliance, now gone, recorded in
    /// it, or `AlreadyRunning` when another appliance holds it.
    pub fn take(run_dir: &Path) -> Result<(Claim, Record), stale::Error> {
        let path = crate::rundir::claim(run_dir);
        let io = |source| stale::Error::Claim {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let previous = parse(&std::io::read_to_string(&mut file).map_err(io)?);
        // An open file description lock: unlike a process lock it is not dropped when this
        // process closes some other descriptor of the file, and it conflicts with every probe.
        let lock = stale::whole_file_write_lock();
        // SAFETY: F_OFD_SETLK only reads `lock`, which outlives the call.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &lock) } != 0 {
            return Err(stale::Error::AlreadyRunning {
                daemon: "ovs-appliance",
                pid: previous.get("ovs-appliance").map_or(0, |p| *p as i32),
                run_dir: run_dir.to_path_buf(),
                what: path,
            });
        }
        let mut claim = Claim {
            file,
            record: Record::new(),
        };
        claim
            .record
            .insert("ovs-appliance".into(), std::process::id());
        claim.write().map_err(io)?;
        Ok((claim, previous))
    }

    /// Records that this appliance started `daemon` as `pid`.
    pub fn started(&mut self, daemon: Daemon, pid: u32) {
        self.record.insert(daemon.name().into(), pid);
        if let Err(e) = self.write() {
            tracing::warn!(%e, file = FILE, "could not record a daemon's pid in the claim file");
        }
    }

    fn write(&mut self) -> std::io::Result<()> {
        let text: String = self
            .record
            .iter()
            .map(|(name, pid)| format!("{name} {pid}\n"))
            .collect();
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file.write_all(text.as_bytes())
    }
}

/// Daemons a gone appliance recorded in `previous` that still hold their pidfiles with the same
/// pid: its orphans. vswitchd first, the order they are stopped in.
pub fn orphans(previous: &Record, layout: &Layout) -> Vec<(Daemon, u32)> {
    [Daemon::Vswitchd, Daemon::OvsdbServer]
        .into_iter()
        .filter_map(|daemon| {
            let recorded = *previous.get(daemon.name())?;
            let pidfile = layout.pidfile(daemon);
            let named: u32 = std::fs::read_to_string(&pidfile)
                .ok()?
                .trim()
                .parse()
                .ok()?;
            (named == recorded && stale::locked(&pidfile)).then_some((daemon, recorded))
        })
        .collect()
}

/// Stops orphans in order: `exit` over the control socket (which works whatever PID namespace
/// they are in), then SIGKILL when they are still there after `grace` and /proc shows them as
/// that program. Returns the ones that would not go (a start then refuses, as for any live
/// daemon).
pub async fn stop(
    orphans: &[(Daemon, u32)],
    layout: &Layout,
    proc_root: &Path,
    grace: Duration,
) -> Vec<(Daemon, u32)> {
    let mut left = Vec::new();
    for &(daemon, pid) in orphans {
        let pidfile = layout.pidfile(daemon);
        let ctl = layout.ctl_socket(daemon, pid);
        let asked = tokio::time::timeout(grace, crate::unixctl::call(&ctl, "exit", &[])).await;
        tracing::warn!(
            daemon = daemon.name(),
            pid,
            answered = matches!(asked, Ok(Ok(_))),
            "stopping a daemon left running by an appliance that is gone"
        );
        if gone(&pidfile, grace).await {
            continue;
        }
        let comm = proc_root.join(pid.to_string()).join("comm");
        if std::fs::read_to_string(comm).is_ok_and(|c| c.trim() == daemon.name()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            if gone(&pidfile, grace).await {
                continue;
            }
        }
        left.push((daemon, pid));
    }
    left
}

/// Waits up to `grace` for `pidfile`'s lock to be released.
async fn gone(pidfile: &Path, grace: Duration) -> bool {
    let until = Instant::now() + grace;
    while Instant::now() < until {
        if !stale::locked(pidfile) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    !stale::locked(pidfile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_held_once_and_records_its_daemons() {
        let dir = tempfile::tempdir().unwrap();
        let (mut claim, previous) = Claim::take(dir.path()).unwrap();
        assert!(previous.is_empty());
        claim.started(Daemon::OvsdbServer, 41);
        claim.started(Daemon::Vswitchd, 42);
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        let record = parse(&text);
        assert_eq!(record["ovsdb-server"], 41);
        assert_eq!(record["ovs-vswitchd"], 42);
        assert_eq!(record["ovs-appliance"], std::process::id());
        // A second appliance is refused while the first holds it...
        let err = Claim::take(dir.path()).err().unwrap();
        assert!(err.to_string().contains("already running"), "{err}");
        // ...and once it is gone, reads what it recorded.
        drop(claim);
        let (_again, previous) = Claim::take(dir.path()).unwrap();
        assert_eq!(previous["ovs-vswitchd"], 42);
    }
}
