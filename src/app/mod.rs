//! The commands behind the CLI: each returns an `Error` that knows its exit code, so `main`
//! maps failures to sysexits in one place.

mod commands;
mod deploy;
mod http_probe;
mod signals;
mod tasks;

pub use commands::{apply, plan, status};
pub use deploy::{healthcheck, ignition, kubernetes};
pub use http_probe::{DEFAULT_URL as DEFAULT_HEALTH_URL, TIMEOUT as HEALTH_TIMEOUT};
pub use signals::{hold as hold_signals, Held};

use crate::config::{self, BridgeDatapath, Config};
use crate::metrics::Metrics;
use crate::preflight::{self, Datapath, HostPaths, Level};
use crate::reconcile::{self, Desired, DesiredSource, WatchSettings};
use crate::supervisor::{self, Layout, Settings};
use futures::FutureExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    #[error(transparent)]
    Reconcile(#[from] reconcile::Error),
    #[error("{0}")]
    Usage(String),
    #[error("{command} did not finish within {after:?}: ovsdb-server kept failing to answer or dropping the connection")]
    Deadline {
        command: &'static str,
        after: Duration,
    },
    #[error("the {task} task ended ({why}); the daemons were stopped")]
    TaskEnded { task: &'static str, why: String },
    #[error("unhealthy: {0}")]
    Unhealthy(String),
    #[error("docker network driver: {0}")]
    DockerDriver(String),
    #[error("nothing listens on {socket}: {reason}. Start `ovs-appliance run` with this config, or set [ovs].run_dir to the run_dir of the running appliance")]
    NothingListens {
        socket: PathBuf,
        reason: std::io::Error,
    },
}

impl Error {
    /// sysexits: 64 usage, 65 bad config, 69 unavailable, 77 missing capability, 70 internal;
    /// 1 for an unhealthy `healthcheck` (what Docker's HEALTHCHECK reads as unhealthy).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => 65,
            Self::Preflight(e) => e.exit_code(),
            Self::Supervisor(e) => e.exit_code(),
            Self::Runtime(_) => 70,
            Self::Reconcile(e) if peer_unavailable(e) => 69,
            Self::Reconcile(_) => 70,
            Self::Usage(_) => 64,
            Self::TaskEnded { .. } => 70,
            Self::Deadline { .. } => 69,
            Self::Unhealthy(_) => 1,
            Self::NothingListens { .. } => 69,
            // EX_CANTCREAT: the socket could not be made.
            Self::DockerDriver(_) => 73,
        }
    }
}

/// An OVS daemon that cannot be reached or did not answer in time is one cause, whichever call
/// found it: connecting, a later call, or ovs-vswitchd applying a change.
fn peer_unavailable(e: &reconcile::Error) -> bool {
    use crate::ovsdb::Error as Db;
    matches!(
        e,
        reconcile::Error::Connect(_)
            | reconcile::Error::NotApplied { .. }
            | reconcile::Error::Ovsdb(
                Db::Connect { .. } | Db::Io(_) | Db::Disconnected { .. } | Db::Timeout { .. }
            )
    )
}

/// `validate`: parse and check the config only.
pub fn validate(config_path: Option<&Path>) -> Result<Config, Error> {
    Ok(Config::load(config_path)?)
}

/// One line per value that named environment variables: the field, the value it took, and
/// what was written (`validate` and `plan` show them).
pub fn expansions_text(config: &Config) -> String {
    config
        .expansions
        .iter()
        .map(|e| format!("{} = {:?} (from {:?})\n", e.path, e.value, e.written))
        .collect()
}

/// `check`: the preflight report on stdout. Fatal problems are returned as the error. It loads
/// no module: whether `run` could is found out with `modprobe --dry-run`.
pub fn check(config_path: Option<&Path>, paths: &HostPaths) -> Result<(), Error> {
    let config = Config::load(config_path)?;
    match preflight::run(&config.ovs, paths, preflight::Intent::Report) {
        Ok(outcome) => {
            for finding in &outcome.findings {
                println!("{finding}");
            }
            // What `run` would make of the open-file limit (check itself changes nothing).
            if let Ok((soft, hard)) =
                nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            {
                let after = preflight::limits::raised((soft, hard));
                let need = preflight::limits::needed_for(&config);
                println!("{}", preflight::limits::finding((soft, hard), after, need));
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

/// The key on the Open_vSwitch row that records the datapath `run` resolved, for `plan`,
/// `apply` and `status`, which do not load modules.
pub const DATAPATH_KEY: &str = "ovs-appliance-datapath";

/// Where the addresses this appliance put on internal ports are remembered, in db_dir.
pub const ADDRESS_RECORD: &str = "ovs-appliance-addresses.json";

/// `run`: preflight, then supervise OVS, keep the config applied and serve metrics until
/// SIGTERM or SIGINT. `held` are the signals blocked since main began: released once their
/// handlers exist, before anything else, so a signal at any moment is handled.
pub fn run(config_path: Option<&Path>, paths: &HostPaths, held: Held) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let (shutdown, reload) = {
        let _context = runtime.enter();
        let shutdown = signals::shutdown().map_err(Error::Runtime)?;
        (shutdown, signals::reload().map_err(Error::Runtime)?)
    };
    drop(held);
    let config = Config::load(config_path)?;
    let outcome = preflight::run(&config.ovs, paths, preflight::Intent::Start)?;
    for finding in &outcome.findings {
        match finding.level {
            Level::Ok => tracing::info!("preflight: {}", finding.message),
            Level::Warn => tracing::warn!("preflight: {}", finding.message),
        }
    }
    // Before any daemon starts: they inherit it.
    match preflight::limits::raise() {
        Ok((before, after)) => {
            let finding =
                preflight::limits::finding(before, after, preflight::limits::needed_for(&config));
            match finding.level {
                Level::Ok => tracing::info!("preflight: {}", finding.message),
                Level::Warn => tracing::warn!("preflight: {}", finding.message),
            }
        }
        Err(e) => tracing::warn!("preflight: the open-file limit could not be read or raised: {e}"),
    }
    become_subreaper();
    let settings = settings(&config, &outcome, paths);
    let desired = Desired::from_config(&config, outcome.datapath);
    let source = FileSource {
        path: config_path.map(Path::to_path_buf),
        datapath: outcome.datapath,
        running: config.clone(),
    };
    let (state_tx, state_rx) = tokio::sync::watch::channel(supervisor::State::default());
    let metrics = Metrics::new(
        &config.metrics,
        settings.layout.run_dir.clone(),
        paths.kernel.proc.clone(),
        state_rx,
    );
    let poller = metrics.poller();
    let watch_settings = WatchSettings {
        db_sock: settings.layout.db_sock(),
        apply_timeout: Duration::from_secs(30),
        retry: Duration::from_secs(1),
        telemetry: metrics.telemetry(),
    };
    runtime.block_on(async {
        let (ready_tx, ready_rx) = tokio::sync::watch::channel(0);
        let mut tasks = tasks::Tasks::from_env();
        tasks.spawn("metrics-poller", async move {
            poller.await;
            Err("the supervisor's state channel closed".into())
        });
        tasks.spawn("metrics-http", metrics.serve());
        if let Some(name) = &config.docker.network_driver {
            let socket = crate::docker::socket_path(&config.docker.plugins_dir, name);
            let listener = crate::docker::Listener::bind(&socket).map_err(Error::DockerDriver)?;
            let bridges = config.bridges.iter().map(|b| b.name.clone()).collect();
            let driver = crate::docker::Driver::new(
                config.ovs.instance.clone(),
                settings.layout.db_sock(),
                outcome.datapath.as_ovs().to_string(),
                bridges,
            )
            .map_err(|e| Error::DockerDriver(format!("cannot open rtnetlink: {e}")))?;
            let ready = ready_rx.clone();
            tasks.spawn(
                "docker-driver",
                crate::docker::serve(listener, std::sync::Arc::new(driver), ready),
            );
        }
        let record = config.ovs.db_dir.join(ADDRESS_RECORD);
        let watch = match crate::netlink::Rtnetlink::new() {
            Ok(netlink) => {
                let hooks = reconcile::Addresses::new(netlink, record);
                reconcile::watch(watch_settings, desired, source, ready_rx, reload, hooks).boxed()
            }
            Err(e) => {
                tracing::error!(%e, "netlink unavailable: internal port addresses will not be set");
                let hooks = reconcile::NoHooks;
                reconcile::watch(watch_settings, desired, source, ready_rx, reload, hooks).boxed()
            }
        };
        tasks.spawn("reconcile", async move {
            watch.await;
            Err("the watch loop returned".into())
        });
        // The supervisor stops in order on a signal or when a task ends; a second signal
        // still kills what is left.
        let (stop_tx, stop_rx) = tokio::sync::mpsc::unbounded_channel();
        let ended = std::sync::Arc::new(std::sync::Mutex::new(None));
        let stopper = tokio::spawn(stop_on(shutdown, tasks, stop_tx, ended.clone()));
        let result = supervisor::run(settings, stop_rx, ready_tx, state_tx).await;
        stopper.abort();
        result?;
        let ended = ended.lock().unwrap_or_else(|e| e.into_inner()).take();
        match ended {
            Some(tasks::Ended { task, why }) => Err(Error::TaskEnded { task, why }),
            None => Ok(()),
        }
    })
}

/// Forwards each stop signal to the supervisor, and asks for a stop when a task ends first
/// (recording which in `ended`). Once a stop is asked for, tasks that end are expected.
async fn stop_on(
    mut signals: supervisor::Shutdown,
    mut tasks: tasks::Tasks,
    stop: tokio::sync::mpsc::UnboundedSender<()>,
    ended: std::sync::Arc<std::sync::Mutex<Option<tasks::Ended>>>,
) {
    tokio::select! {
        signal = signals.recv() => {
            if signal.is_none() {
                return;
            }
        }
        task = tasks.first_ended() => {
            tracing::error!(task = task.task, why = %task.why, "a task of the appliance ended; stopping the daemons and exiting 70");
            *ended.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        }
    }
    // Keep the tasks (dropping the set would abort them) while the supervisor stops.
    let _tasks = tasks;
    if stop.send(()).is_err() {
        return;
    }
    while signals.recv().await.is_some() {
        if stop.send(()).is_err() {
            return;
        }
    }
}

fn settings(config: &Config, outcome: &preflight::Outcome, paths: &HostPaths) -> Settings {
    let netdev_bridge = config
        .bridges
        .iter()
        .any(|b| b.datapath == Some(BridgeDatapath::Netdev));
    // ovs-vswitchd reads userspace-tso-enable only when it starts, so it is stamped before.
    let other_config = if outcome.datapath == Datapath::Netdev || netdev_bridge {
        let on = if config.ovs.userspace_tso {
            "true"
        } else {
            "false"
        };
        vec![("userspace-tso-enable".to_string(), on.to_string())]
    } else {
        Vec::new()
    };
    Settings {
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
        db_policy: supervisor::DbPolicy {
            recover_corrupt: config.ovs.recover_corrupt_db,
            allow_downgrade: config.ovs.allow_db_downgrade,
        },
        kernel_datapath: outcome.datapath == Datapath::System,
        stamp_external_ids: vec![(DATAPATH_KEY.into(), outcome.datapath.to_string())],
        stamp_other_config: other_config,
        flows: supervisor::flows::Config {
            restore: config.ovs.restore_flows,
            interval: config.ovs.flow_snapshot_interval.0,
            restore_timeout: config.ovs.restore_timeout.0,
        },
    }
}

/// The config file, re-read on SIGHUP.
struct FileSource {
    path: Option<PathBuf>,
    datapath: Datapath,
    running: Config,
}

impl DesiredSource for FileSource {
    async fn reload(&mut self) -> Result<Desired, String> {
        // Read on the blocking pool: a config on a slow or hung filesystem must not stall the
        // runtime thread the watch, the metrics poller and the driver share.
        let path = self.path.clone();
        let config = tokio::task::spawn_blocking(move || Config::load(path.as_deref()))
            .await
            .map_err(|e| format!("reading the config failed: {e}"))?
            .map_err(|e| e.to_string())?;
        if config.ovs != self.running.ovs
            || config.supervisor != self.running.supervisor
            || config.docker != self.running.docker
        {
            tracing::warn!("[ovs], [supervisor] and [docker] changes take effect at the next start; bridges are applied now");
        }
        Ok(Desired::from_config(&config, self.datapath))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_unanswering_peer_is_69_whichever_call_found_it() {
        let timeout = crate::ovsdb::Error::Timeout {
            method: "transact".into(),
            after: Duration::from_secs(5),
        };
        let cases = [
            reconcile::Error::Connect("timed out".into()),
            reconcile::Error::Ovsdb(timeout),
            reconcile::Error::NotApplied {
                next_cfg: 2,
                cur_cfg: 1,
                timeout: Duration::from_secs(30),
            },
        ];
        for e in cases {
            assert_eq!(Error::Reconcile(e).exit_code(), 69);
        }
        let contended = reconcile::Error::Contended { attempts: 5 };
        assert_eq!(Error::Reconcile(contended).exit_code(), 70);
    }
}
