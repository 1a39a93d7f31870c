//! The supervisor: brings the database and both daemons up in order, watches them, restarts
//! them, and stops them in order. As PID 1 it also reaps every child.
//!
//! Owns processes and the files OVS keeps in run_dir and db_dir. It does not touch bridges or
//! ports (that is reconcile's) and reads nothing of the host beyond /proc of its children.

mod backoff;
pub(crate) mod boot_clock;
mod claim;
mod daemon;
mod daemon_log;
mod db;
pub(crate) mod dblog;
mod exit;
mod files;
pub mod flows;
mod health;
mod host;
mod init;
mod lifecycle;
mod logsink;
mod reaper;
mod repeats;
mod spawn;
mod stale;
mod state;

pub use daemon::{args as daemon_args, Daemon, Layout};
pub use daemon_log::{parse_line, LogLine};
pub use db::{Policy as DbPolicy, Prepared};
pub use exit::ExitStatus;
pub use logsink::{
    lines_dropped_total as log_lines_dropped_total, report_with_tracing, FlushGuard,
    Limits as LogLimits, LogSink,
};
pub use reaper::Reaper;
pub use stale::locked as pidfile_held;
pub use state::{DaemonState, FlowsState, SnapshotInfo, State, StateRx, StateTx};

use crate::config::SupervisorConfig;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to start the child reaper: {0}")]
    Reaper(std::io::Error),
    #[error("failed to create run_dir {path}: {source}")]
    RunDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Stale(#[from] stale::Error),
    #[error(transparent)]
    Db(#[from] db::Error),
    #[error(transparent)]
    SystemIdFile(init::Error),
    #[error("failed to read the OVS version from `ovs-vswitchd --version`: {0}")]
    Version(String),
    #[error("failed to start {daemon}: {source}")]
    Spawn {
        daemon: &'static str,
        source: std::io::Error,
    },
    #[error("{daemon} needed {restarts} restarts within {window:?} (last: {why}); giving up so the container's restart policy takes over")]
    RestartLoop {
        daemon: &'static str,
        restarts: u32,
        window: Duration,
        why: String,
    },
}

impl Error {
    /// The sysexits code for this failure, one per cause (README's table): 69 a part of OVS
    /// is missing, 73 a file or directory cannot be made, 75 another OVS runs on run_dir (try
    /// again once it stopped), 70 the database cannot be used as it is, the daemons keep
    /// failing, or an internal error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound => 69,
            Self::Version(_) => 69,
            Self::Stale(stale::Error::AlreadyRunning { .. }) => 75,
            Self::Stale(stale::Error::Remove { .. } | stale::Error::Claim { .. })
            | Self::RunDir { .. } => 73,
            Self::SystemIdFile(_) => 73,
            Self::Db(e) => e.exit_code(),
            Self::Reaper(_) | Self::Spawn { .. } | Self::RestartLoop { .. } => 70,
        }
    }
}

/// What the supervisor runs with, resolved from the config and preflight.
#[derive(Debug, Clone)]
pub struct Settings {
    pub layout: Layout,
    pub schema: PathBuf,
    /// Nice value for both daemons, when allowed.
    pub nice: Option<i32>,
    /// /proc, to tell a live daemon from a stale pidfile.
    pub proc_root: PathBuf,
    pub timing: SupervisorConfig,
    /// What may be done to a damaged or newer database.
    pub db_policy: DbPolicy,
    /// The datapath is the kernel's (ovs-vswitchd is held back early after boot, see
    /// [`boot_clock`]).
    pub kernel_datapath: bool,
    /// external_ids and other_config keys stamped on the Open_vSwitch row before vswitchd starts.
    pub stamp_external_ids: Vec<(String, String)>,
    pub stamp_other_config: Vec<(String, String)>,
    /// Flow snapshots and their restore at every start of ovs-vswitchd.
    pub flows: flows::Config,
}

/// Counts the times both daemons came up (1 after the first start); reconcile re-applies
/// everything whenever it changes.
pub type Ready = tokio::sync::watch::Sender<u64>;

/// A shutdown request: the first asks for an orderly stop, a second one kills what is left.
pub type Shutdown = mpsc::UnboundedReceiver<()>;

/// Runs OVS until `shutdown` says stop (then returns Ok after an orderly stop) or the daemons
/// fail more often than the restart budget allows. Each daemon's pid, health and restarts are
/// published on `state`.
pub async fn run(
    settings: Settings,
    mut shutdown: Shutdown,
    ready: Ready,
    state: StateTx,
) -> Result<(), Error> {
    let reaper = Reaper::get().map_err(Error::Reaper)?;
    let layout = &settings.layout;
    files::tighten_umask();
    files::create_dir(&layout.run_dir, files::RUN_DIR_MODE).map_err(|source| Error::RunDir {
        path: layout.run_dir.clone(),
        source,
    })?;
    let (claim, previous) = claim::Claim::take(&layout.run_dir)?;
    let orphans = claim::orphans(&previous, layout);
    if !orphans.is_empty() {
        let grace = settings.timing.drain_timeout.0;
        let left = claim::stop(&orphans, layout, &settings.proc_root, grace).await;
        if left.len() < orphans.len() {
            tracing::warn!(
                stopped = orphans.len() - left.len(),
                "stopped the daemons of an appliance that is gone; starting our own"
            );
        }
    }
    for path in stale::clean(layout)? {
        tracing::info!(path = %path.display(), "removed a stale file left by a dead daemon");
    }
    // Independent subprocesses, run side by side: both sit on the start path.
    let (prepared, ovs_version) = tokio::join!(
        db::prepare(reaper, &layout.db_dir, &settings.schema, settings.db_policy),
        ovs_version(reaper)
    );
    let (prepared, db_version) = prepared?;
    init::check_system_id_file(&layout.db_dir).map_err(Error::SystemIdFile)?;
    let ovs_version = ovs_version?;
    match &prepared {
        Prepared::Created => {
            tracing::info!(db = %layout.db_file().display(), %db_version, "created the OVS database")
        }
        Prepared::UpToDate => {
            tracing::info!(db = %layout.db_file().display(), %db_version, "OVS database is current")
        }
        Prepared::Converted { from, backup } => tracing::warn!(
            db = %layout.db_file().display(), from = %from, to = %db_version, backup = %backup.display(),
            "converted the OVS database to the installed schema; the old file is kept as a backup"
        ),
    }
    state.send_modify(|s| {
        s.ovs_version = ovs_version.clone();
        s.db_version = db_version.clone();
    });
    let stamp = init::Stamp {
        hostname: hostname(),
        ovs_version,
        db_version,
        rundir: layout.run_dir.clone(),
        external_ids: settings.stamp_external_ids.clone(),
        other_config: settings.stamp_other_config.clone(),
    };
    let flows = std::sync::Arc::new(flows::Flows::new(
        reaper,
        flows::Paths {
            db_dir: layout.db_dir.clone(),
            run_dir: layout.run_dir.clone(),
            db_sock: layout.db_sock(),
            vswitchd_pidfile: layout.pidfile(Daemon::Vswitchd),
        },
        settings.flows.clone(),
        state.clone(),
    ));
    // Takes snapshots while ovs-vswitchd runs with its flows restored; ends with `run`.
    let snapshots = AbortOnDrop(tokio::spawn({
        let flows = flows.clone();
        async move { flows.snapshot_loop().await }
    }));
    let result = lifecycle::Supervisor::new(reaper, settings, stamp, ready, state, claim, flows)
        .run(&mut shutdown)
        .await;
    drop(snapshots);
    result
}

/// A task that ends when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn ovs_version(reaper: &Reaper) -> Result<String, Error> {
    let mut cmd = std::process::Command::new("ovs-vswitchd");
    cmd.arg("--version");
    let out = reaper
        .output(&mut cmd, Duration::from_secs(10))
        .await
        .map_err(|e| Error::Version(e.to_string()))?;
    out.stdout
        .lines()
        .next()
        .and_then(|line| line.rsplit(' ').next())
        .filter(|v| out.status.success() && !v.is_empty())
        .map(str::to_string)
        .ok_or_else(|| Error::Version(format!("{}: {}", out.status, out.stderr.trim())))
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error as Io, ErrorKind};

    #[test]
    fn each_cause_has_one_exit_code() {
        let p = PathBuf::from("/x");
        let cases: Vec<(Error, u8)> = vec![
            (
                Error::Stale(stale::Error::AlreadyRunning {
                    daemon: "ovsdb-server",
                    pid: 7,
                    run_dir: p.clone(),
                    what: p.clone(),
                }),
                75,
            ),
            (
                Error::Db(db::Error::Schema {
                    schema: p.clone(),
                    reason: "No such file or directory".into(),
                }),
                69,
            ),
            (
                Error::Db(db::Error::Tool {
                    what: "db-version".into(),
                    source: Io::from(ErrorKind::NotFound),
                }),
                69,
            ),
            (
                Error::Spawn {
                    daemon: "ovs-vswitchd",
                    source: Io::from(ErrorKind::NotFound),
                },
                69,
            ),
            (Error::Version("exit 127".into()), 69),
            (
                Error::SystemIdFile(init::Error::NotAFile { path: p.clone() }),
                73,
            ),
            (
                Error::RunDir {
                    path: p.clone(),
                    source: Io::from(ErrorKind::PermissionDenied),
                },
                73,
            ),
            (
                Error::Db(db::Error::Corrupt {
                    path: p.clone(),
                    ovs_error: "x".into(),
                }),
                70,
            ),
            (
                Error::RestartLoop {
                    daemon: "ovs-vswitchd",
                    restarts: 6,
                    window: Duration::from_secs(300),
                    why: "killed by SIGABRT".into(),
                },
                70,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.exit_code(), code, "{error}");
        }
    }
}
