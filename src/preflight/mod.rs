//! Preflight: what the container was given (capabilities, devices, network namespace, OVS
//! binaries), the kernel module, and the datapath that follows.
//!
//! Reads the host and, for `run` only (`Intent::Start`), may load the openvswitch module; it
//! starts no daemon and writes no file. `check` (`Intent::Report`) changes nothing.

mod caps;
mod host;
pub mod limits;
mod module;

pub use self::caps::{flag_for, Privileges};
pub use host::{missing_binaries, which, OVS_BINARIES};
pub use module::{
    Datapath, Intent, KernelPaths, Loading, Modprobe, ModuleLoader, Resolution, Unavailable,
    KERNEL_DATAPATH_FIX,
};

use crate::config::{Mlockall, OvsConfig};
use ::caps::Capability;
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    ReadPrivileges(String),
    #[error("CAP_NET_ADMIN is missing: OVS cannot create or configure network devices; run the container with `--cap-add NET_ADMIN`")]
    NoNetAdmin,
    #[error("OVS programs not found on PATH: {}; install openvswitch-switch", .0.join(", "))]
    MissingBinaries(Vec<&'static str>),
    #[error("datapath = \"system\" but {why}; {fix}", fix = KERNEL_DATAPATH_FIX)]
    KernelDatapath { why: Unavailable },
    #[error("the userspace (netdev) datapath needs /dev/net/tun and it is missing: run the container with `--device /dev/net/tun`")]
    NoTun,
}

impl Error {
    /// The sysexits code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::NoNetAdmin => 77,
            Self::KernelDatapath {
                why: Unavailable::NoSysModule,
            } => 77,
            Self::MissingBinaries(_) | Self::KernelDatapath { .. } | Self::NoTun => 69,
            Self::ReadPrivileges(_) => 70,
        }
    }
}

/// Where preflight looks: injectable so tests point it at fake trees.
#[derive(Debug, Clone)]
pub struct HostPaths {
    pub kernel: KernelPaths,
    /// The /dev directory (for net/tun).
    pub dev: PathBuf,
    /// The modprobe program.
    pub modprobe: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        Self {
            kernel: KernelPaths::default(),
            dev: PathBuf::from("/dev"),
            modprobe: PathBuf::from("modprobe"),
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.level {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
        };
        write!(f, "{tag} {}", self.message)
    }
}

/// What the rest of the appliance runs with.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub datapath: Datapath,
    /// Pass `--mlockall` to ovs-vswitchd.
    pub mlockall: bool,
    /// The nice value to start the daemons at, when SYS_NICE allows one below 0.
    pub nice: Option<i32>,
    pub findings: Vec<Finding>,
}

/// Runs every check. Fatal problems are errors; the rest are findings in the outcome. Only
/// `Intent::Start` loads the module.
pub fn run(ovs: &OvsConfig, paths: &HostPaths, intent: Intent) -> Result<Outcome, Error> {
    let privileges = Privileges::read().map_err(Error::ReadPrivileges)?;
    let path_var = std::env::var("PATH").unwrap_or_default();
    let loader = Modprobe {
        program: paths.modprobe.clone(),
        modules_root: paths.kernel.modules.clone(),
    };
    decide(ovs, paths, &privileges, &path_var, &loader, intent)
}

/// The decisions of `run`, over facts that tests can make up.
pub fn decide(
    ovs: &OvsConfig,
    paths: &HostPaths,
    privileges: &Privileges,
    path_var: &str,
    loader: &dyn ModuleLoader,
    intent: Intent,
) -> Result<Outcome, Error> {
    let mut findings = Vec::new();
    let mut note = |level, message: String| findings.push(Finding { level, message });

    if !privileges.has(Capability::CAP_NET_ADMIN) {
        return Err(Error::NoNetAdmin);
    }
    note(Level::Ok, "CAP_NET_ADMIN held".into());

    let missing = missing_binaries(path_var);
    if !missing.is_empty() {
        return Err(Error::MissingBinaries(missing));
    }
    note(
        Level::Ok,
        format!("{} found on PATH", OVS_BINARIES.join(", ")),
    );

    let has_sys_module = privileges.has(Capability::CAP_SYS_MODULE);
    let resolution = module::resolve(ovs.datapath, &paths.kernel, has_sys_module, loader, intent);
    let datapath = match resolution {
        Resolution::Use { datapath, loading } => {
            let how = match loading {
                Loading::NotNeeded => "",
                Loading::Loaded => " (module loaded now)",
                Loading::Loadable => {
                    " (the openvswitch module is not loaded; it is loadable: modprobe \
                     --dry-run resolved it, and `run` will load it)"
                }
            };
            note(Level::Ok, format!("datapath {datapath}{how}"));
            datapath
        }
        Resolution::FellBack(why) => {
            note(
                Level::Warn,
                format!(
                    "KERNEL DATAPATH UNAVAILABLE, falling back to the userspace (netdev) datapath: \
                     {why}. Userspace forwarding is slower; for the kernel datapath {KERNEL_DATAPATH_FIX}"
                ),
            );
            Datapath::Netdev
        }
        Resolution::Refused(why) => return Err(Error::KernelDatapath { why }),
    };
    if !has_sys_module && ovs.datapath != crate::config::DatapathMode::Netdev {
        note(
            Level::Warn,
            format!(
                "CAP_SYS_MODULE missing: the openvswitch module cannot be loaded from here ({})",
                flag_for(Capability::CAP_SYS_MODULE)
            ),
        );
    }

    if datapath == Datapath::Netdev {
        if !host::tun_present(&paths.dev) {
            return Err(Error::NoTun);
        }
        note(Level::Ok, "/dev/net/tun present".into());
    }

    let nice = (ovs.vswitchd_nice >= 0 || privileges.has(Capability::CAP_SYS_NICE))
        .then_some(ovs.vswitchd_nice);
    if nice.is_none() {
        note(
            Level::Warn,
            format!(
                "CAP_SYS_NICE missing: daemons run at the default priority instead of nice {} ({})",
                ovs.vswitchd_nice,
                flag_for(Capability::CAP_SYS_NICE)
            ),
        );
    }

    let mlockall = decide_mlockall(ovs.mlockall, privileges, &mut note);

    if !privileges.has(Capability::CAP_NET_RAW) {
        note(
            Level::Warn,
            format!(
                "CAP_NET_RAW missing (Podman's default): system and veth ports will fail to attach ({})",
                flag_for(Capability::CAP_NET_RAW)
            ),
        );
    }

    match host::private_netns_reason(&paths.kernel.proc, &paths.kernel.sys) {
        Some(why) => note(
            Level::Warn,
            format!("the host's network namespace does not seem to be shared: {why}; run with `--net host` to switch the host's interfaces"),
        ),
        None => note(Level::Ok, "host network namespace".into()),
    }

    Ok(Outcome {
        datapath,
        mlockall,
        nice,
        findings,
    })
}

fn decide_mlockall(
    mode: Mlockall,
    privileges: &Privileges,
    note: &mut impl FnMut(Level, String),
) -> bool {
    let can = privileges.can_lock_memory();
    match (mode, can) {
        (Mlockall::Never, _) => false,
        (_, true) => {
            note(
                Level::Ok,
                "ovs-vswitchd locks its memory (--mlockall)".into(),
            );
            true
        }
        (Mlockall::Auto, false) => {
            note(
                Level::Warn,
                format!(
                    "memory cannot be locked (no CAP_IPC_LOCK and RLIMIT_MEMLOCK is limited): \
                     ovs-vswitchd runs with --no-mlockall ({} or --ulimit memlock=-1 to lock it)",
                    flag_for(Capability::CAP_IPC_LOCK)
                ),
            );
            false
        }
        (Mlockall::Always, false) => {
            note(
                Level::Warn,
                format!(
                    "mlockall = true but memory cannot be locked: ovs-vswitchd will fail to lock it ({})",
                    flag_for(Capability::CAP_IPC_LOCK)
                ),
            );
            true
        }
    }
}

#[cfg(test)]
mod tests;
