//! The commands behind the CLI: each returns an `Error` that knows its exit code, so `main`
//! maps failures to sysexits in one place.

use crate::config::{self, Config};
use crate::preflight::{self, HostPaths, Level};
use crate::supervisor::{self, Layout, Settings};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::Error),
    #[error(transparent)]
    Preflight(#[from] preflight::Error),
    #[error(transparent)]
    Supervisor(#[from] supervisor::Error),
    #[error("failed to start the async runtime or signal handlers: {0}")]
    Runtime(std::io::Error),
}

impl Error {
    /// sysexits: 65 bad config, 69 unavailable, 77 missing capability, 70 internal.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => 65,
            Self::Preflight(e) => e.exit_code(),
            Self::Supervisor(e) => e.exit_code(),
            Self::Runtime(_) => 70,
        }
    }
}

/// `validate`: parse and check the config only.
pub fn validate(config_path: Option<&Path>) -> Result<Config, Error> {
    Ok(Config::load(config_path)?)
}

/// `check`: the preflight report on stdout. Fatal problems are returned as the error.
pub fn check(config_path: Option<&Path>, paths: &HostPaths) -> Result<(), Error> {
    let config = Config::load(config_path)?;
    match preflight::run(&config.ovs, paths) {
        Ok(outcome) => {
            for finding in &outcome.findings {
                println!("{finding}");
            }
            println!(
                "ok   ready: datapath {}, mlockall {}, nice {}",
                outcome.datapath,
                outcome.mlockall,
                outcome.nice.map_or("default".into(), |n| n.to_string())
            );
            Ok(())
        }
        Err(e) => {
            println!("FAIL {e}");
            Err(e.into())
        }
    }
}

/// `run`: preflight, then supervise OVS until SIGTERM or SIGINT.
pub fn run(config_path: Option<&Path>, paths: &HostPaths) -> Result<(), Error> {
    let config = Config::load(config_path)?;
    let outcome = preflight::run(&config.ovs, paths)?;
    for finding in &outcome.findings {
        match finding.level {
            Level::Ok => tracing::info!("preflight: {}", finding.message),
            Level::Warn => tracing::warn!("preflight: {}", finding.message),
        }
    }
    become_subreaper();
    let settings = Settings {
        layout: Layout {
            run_dir: config.ovs.run_dir.clone(),
            db_dir: config.ovs.db_dir.clone(),
            remotes: config.ovs.remotes.clone(),
            mlockall: outcome.mlockall,
        },
        schema: config.ovs.schema.clone(),
        nice: outcome.nice,
        proc_root: paths.kernel.proc.clone(),
        timing: config.supervisor.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(async {
        let shutdown = shutdown_signals().map_err(Error::Runtime)?;
        Ok(supervisor::run(settings, shutdown).await?)
    })
}

/// Outside a container we are not PID 1: become the reaper of our daemons' orphans anyway, so
/// nothing we start is left as a zombie of someone else.
fn become_subreaper() {
    if std::process::id() != 1 {
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            tracing::warn!(%e, "failed to become a child subreaper");
        }
    }
}

/// SIGTERM and SIGINT, each one a message on the returned channel.
fn shutdown_signals() -> std::io::Result<supervisor::Shutdown> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal = name, "stop requested");
            if tx.send(()).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// Host roots for preflight, overridable for tests.
pub fn host_paths(
    sys: Option<PathBuf>,
    proc: Option<PathBuf>,
    modules: Option<PathBuf>,
    dev: Option<PathBuf>,
    modprobe: Option<PathBuf>,
) -> HostPaths {
    let mut paths = HostPaths::default();
    paths.kernel.sys = sys.unwrap_or(paths.kernel.sys);
    paths.kernel.proc = proc.unwrap_or(paths.kernel.proc);
    paths.kernel.modules = modules.unwrap_or(paths.kernel.modules);
    paths.dev = dev.unwrap_or(paths.dev);
    paths.modprobe = modprobe.unwrap_or(paths.modprobe);
    paths
}
