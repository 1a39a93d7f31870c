//! The desired state: the TOML file turned into a typed model, its defaults, and `validate()`.
//!
//! Owns parsing and checking only; it touches no process, socket or kernel object.

mod bridges;
pub(crate) mod duration;
mod expand;
mod parse;
mod read;
mod validate;
mod validate_bridges;

pub use bridges::{BondMode, Bridge, BridgeDatapath, FailMode, Lacp, Port, PortType, Vlan};
pub use duration::HumanDuration;
pub use expand::{host_stand_in, Expansion, HOST_VARIABLES};
pub use validate::FieldError;
pub(crate) use validate_bridges::device_name_problem;

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where the config is read from when neither `--config` nor `OVS_APPLIANCE_CONFIG` is given.
pub const DEFAULT_PATH: &str = "/etc/ovs-appliance/config.toml";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not a regular file ({kind}): give the path of a file")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("config file {path} is larger than {max} bytes: is it the right file?")]
    TooLarge { path: PathBuf, max: u64 },
    #[error("failed to parse config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path} is invalid:\n{}", render(.errors))]
    Invalid {
        path: PathBuf,
        errors: Vec<FieldError>,
    },
}

/// Reads a config file as `Config::load` does (a regular file, size-capped) without parsing it:
/// `ignition` and `kubernetes` embed the text as written.
pub fn read_file(path: &Path) -> Result<String, Error> {
    read::bounded(path).map_err(|e| read_error(path, e))
}

fn read_error(path: &Path, e: read::Error) -> Error {
    match e {
        read::Error::NotRegular(kind) => Error::NotRegular {
            path: path.to_path_buf(),
            kind,
        },
        read::Error::TooLarge => Error::TooLarge {
            path: path.to_path_buf(),
            max: read::MAX_BYTES,
        },
        read::Error::Io(source) => Error::Read {
            path: path.to_path_buf(),
            source,
        },
    }
}

fn render(errors: &[FieldError]) -> String {
    let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
    lines.join("\n")
}

/// The whole config file. Every table is optional: an empty file is the embedded default
/// (OVS up, no bridges).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// How Open vSwitch itself is run.
    pub ovs: OvsConfig,
    /// How the daemons are watched and restarted.
    pub supervisor: SupervisorConfig,
    /// The bridges the host should have, each with its ports.
    pub bridges: Vec<Bridge>,
    /// The HTTP endpoint for Prometheus and health probes, and what it exports.
    pub metrics: MetricsConfig,
    /// The Docker network driver (off unless `network_driver` is set).
    pub docker: DockerConfig,
    /// The values that named environment variables, as written and as expanded.
    #[serde(skip)]
    pub expansions: Vec<Expansion>,
}

/// Which datapath OVS bridges use.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DatapathMode {
    /// The kernel datapath when the openvswitch module is there, else netdev, said loudly.
    #[default]
    Auto,
    /// The kernel datapath; starting fails when the module cannot be had.
    System,
    /// The userspace datapath; the kernel module is never touched.
    Netdev,
}

/// Whether ovs-vswitchd locks its memory (`--mlockall`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mlockall {
    /// Only when CAP_IPC_LOCK is held or the memlock limit is unlimited.
    #[default]
    Auto,
    Always,
    Never,
}

impl<'de> Deserialize<'de> for Mlockall {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(de)? {
            Raw::Bool(true) => Ok(Self::Always),
            Raw::Bool(false) => Ok(Self::Never),
            Raw::Text(t) => match t.as_str() {
                "auto" => Ok(Self::Auto),
                "true" => Ok(Self::Always),
                "false" => Ok(Self::Never),
                other => Err(serde::de::Error::custom(format!(
                    "invalid value `{other}` for mlockall, expected auto, true or false"
                ))),
            },
        }
    }
}

/// The `[ovs]` table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OvsConfig {
    /// auto | system | netdev.
    pub datapath: DatapathMode,
    /// auto | true | false.
    pub mlockall: Mlockall,
    /// db.sock, pidfiles and control sockets, under OVS's own names.
    pub run_dir: PathBuf,
    /// conf.db, system-id.conf and the backups made before a schema conversion.
    pub db_dir: PathBuf,
    /// Extra OVSDB remotes for ovsdb-server (`ptcp:6640:127.0.0.1`, `punix:/x.sock`, ...).
    /// None listens on TCP unless named here.
    pub remotes: Vec<String>,
    /// Scheduling priority of ovs-vswitchd (and ovsdb-server), as ovs-ctl's -10.
    pub vswitchd_nice: i32,
    /// The vswitch schema that conf.db is created from and converted to.
    pub schema: PathBuf,
    /// Marks what this appliance owns: `external_ids:ovs-appliance-owner=<instance>` on every
    /// bridge, port and interface it creates. Objects without the mark are never changed.
    pub instance: String,
    /// With the netdev datapath, set `other_config:userspace-tso-enable=true` before
    /// ovs-vswitchd starts (it reads it only then). Without it TCP through a netdev bridge over
    /// veth fails unless every peer turns off tx offload.
    pub userspace_tso: bool,
    /// A key of `external_ids`, `other_config` or `options` that the config names on an owned
    /// row, but that another tool already set to another value, is a conflict left alone
    /// (reported by `plan`, `status` and the log). `true` lets the config overwrite it.
    pub force_keys: bool,
    /// Start on a conf.db with a damaged record that good records follow: ovsdb-server drops
    /// them all, after a copy of the file is kept. Without it such a file is refused (exit 70).
    pub recover_corrupt_db: bool,
    /// Convert a conf.db of a newer schema (made by a newer OVS) down to the installed one,
    /// after a backup. Without it such a file is refused (exit 70).
    pub allow_db_downgrade: bool,
    /// At every start of ovs-vswitchd, put back each bridge's flows (and groups, meters, TLV
    /// maps) from its snapshot under db_dir, with `other_config:flow-restore-wait` set until
    /// they are back. `false` restores nothing and never sets the flag.
    pub restore_flows: bool,
    /// Most often a bridge's flows are compared with its snapshot (written only on a change).
    pub flow_snapshot_interval: HumanDuration,
    /// Longest the restore of every bridge may take before the flag is cleared anyway.
    pub restore_timeout: HumanDuration,
}

impl Default for OvsConfig {
    fn default() -> Self {
        Self {
            datapath: DatapathMode::Auto,
            mlockall: Mlockall::Auto,
            run_dir: PathBuf::from("/var/run/openvswitch"),
            db_dir: PathBuf::from("/etc/openvswitch"),
            remotes: Vec::new(),
            vswitchd_nice: -10,
            schema: PathBuf::from("/usr/share/openvswitch/vswitch.ovsschema"),
            instance: "default".into(),
            userspace_tso: true,
            force_keys: false,
            recover_corrupt_db: false,
            allow_db_downgrade: false,
            restore_flows: true,
            flow_snapshot_interval: HumanDuration::secs(1),
            restore_timeout: HumanDuration::secs(10),
        }
    }
}

/// The `[supervisor]` table: health checks, restarts and shutdown.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisorConfig {
    /// Time between two health checks of each daemon.
    pub health_interval: HumanDuration,
    /// How long one health check may take before it counts as failed.
    pub health_timeout: HumanDuration,
    /// Consecutive failed checks after which a daemon is killed and restarted.
    pub health_failures: u32,
    /// How long a starting daemon has to answer its first check.
    pub start_timeout: HumanDuration,
    /// Delay before the second restart in a row; doubles up to `backoff_max`, with jitter.
    /// The first restart after a stable run is immediate.
    pub backoff_initial: HumanDuration,
    /// The longest delay between restarts.
    pub backoff_max: HumanDuration,
    /// More than this many restarts within `restart_window` ends the appliance with a
    /// non-zero status, so the container's restart policy takes over.
    pub restart_limit: u32,
    /// The window `restart_limit` counts in.
    pub restart_window: HumanDuration,
    /// How long SIGTERM waits for the daemons to exit before it kills them.
    pub drain_timeout: HumanDuration,
    /// How long ovs-vswitchd may leave its control socket unanswered while its main thread keeps
    /// working (creating or deleting many ports) before that counts as a hang.
    pub busy_timeout: HumanDuration,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            health_interval: HumanDuration::secs(5),
            health_timeout: HumanDuration::secs(2),
            health_failures: 3,
            start_timeout: HumanDuration::secs(30),
            backoff_initial: HumanDuration::millis(250),
            backoff_max: HumanDuration::secs(30),
            restart_limit: 5,
            restart_window: HumanDuration::secs(300),
            drain_timeout: HumanDuration::secs(10),
            busy_timeout: HumanDuration::secs(300),
        }
    }
}

/// The `[metrics]` table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the HTTP listener (`/metrics`, `/healthz`, `/readyz`). Loopback by default:
    /// a wider address is the user's explicit choice.
    pub listen: SocketAddr,
    /// Interface name patterns to export (`*` any run, `?` one character). Empty: all.
    pub include: Vec<String>,
    /// Interface name patterns never exported; wins over `include`.
    pub exclude: Vec<String>,
    /// At most this many interfaces are exported per scrape (sorted by bridge, port, name); the
    /// rest are counted in `ovs_appliance_metrics_interfaces_dropped`.
    pub max_interfaces: usize,
    /// How often the datapath and daemon figures are read from the control sockets, in the
    /// background, so a scrape never waits on ovs-vswitchd.
    pub refresh_interval: HumanDuration,
}

/// The `[docker]` table: the appliance as a Docker network driver.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DockerConfig {
    /// The driver's name (`docker network create -d NAME`); absent: no driver. The socket is
    /// `<plugins_dir>/<network_driver>.sock`.
    pub network_driver: Option<String>,
    /// Where dockerd looks for plugin sockets.
    pub plugins_dir: PathBuf,
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            network_driver: None,
            plugins_dir: PathBuf::from("/run/docker/plugins"),
        }
    }
}

impl MetricsConfig {
    /// Where a client on the same host reaches a listener on `listen`: an unspecified address
    /// listens on loopback too.
    pub fn local(listen: SocketAddr) -> SocketAddr {
        let mut at = listen;
        if at.ip().is_unspecified() {
            at.set_ip(match at {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        at
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9476)),
            include: Vec::new(),
            exclude: Vec::new(),
            max_interfaces: 5000,
            refresh_interval: HumanDuration::secs(5),
        }
    }
}

impl Config {
    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, Error> {
        Self::from_toml_with(text, origin, &|name| std::env::var(name).ok())
    }

    /// As [`Config::from_toml`], with `${NAME}` references looked up with `env`.
    pub fn from_toml_with(
        text: &str,
        origin: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        let config = parse::parse(text, env).map_err(|failure| match failure {
            parse::Failure::Syntax(message) => Error::Parse {
                path: origin.to_path_buf(),
                message,
            },
            parse::Failure::Fields(errors) => Error::Invalid {
                path: origin.to_path_buf(),
                errors,
            },
        })?;
        config.validate().map_err(|errors| Error::Invalid {
            path: origin.to_path_buf(),
            errors,
        })?;
        Ok(config)
    }

    /// Loads the config. `explicit` is `--config` or `OVS_APPLIANCE_CONFIG`: it must exist.
    /// Without it, the default path is read when present, else the embedded default is used.
    pub fn load(explicit: Option<&Path>) -> Result<Self, Error> {
        let path = explicit.unwrap_or(Path::new(DEFAULT_PATH));
        match read::bounded(path) {
            Ok(text) => Self::from_toml(&text, path),
            Err(read::Error::Io(e))
                if explicit.is_none() && e.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(Self::default())
            }
            Err(e) => Err(read_error(path, e)),
        }
    }

    /// Checks what serde cannot: ranges, formats and relations. Returns every problem found.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        validate::config(self)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bridges;
