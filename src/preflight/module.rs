//! The openvswitch kernel module and the datapath choice that follows from it.
//!
//! Reads /sys, /proc and /lib/modules through injected roots so every branch is tested on
//! machines without module support. Never unloads or force-reloads the module.

use crate::config::DatapathMode;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The datapath bridges are created with, once resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datapath {
    /// The kernel datapath (`datapath_type=system`).
    System,
    /// The userspace datapath (`datapath_type=netdev`).
    Netdev,
}

impl Datapath {
    /// The Bridge.datapath_type value OVS expects.
    pub fn as_ovs(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Netdev => "netdev",
        }
    }
}

impl fmt::Display for Datapath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_ovs())
    }
}

/// Where the kernel's view of modules is read from.
#[derive(Debug, Clone)]
pub struct KernelPaths {
    pub sys: PathBuf,
    pub proc: PathBuf,
    pub modules: PathBuf,
}

impl Default for KernelPaths {
    fn default() -> Self {
        Self {
            sys: PathBuf::from("/sys"),
            proc: PathBuf::from("/proc"),
            modules: PathBuf::from("/lib/modules"),
        }
    }
}

/// What the kernel has of openvswitch right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleState {
    /// Loaded as a module (listed in /proc/modules).
    Loaded,
    /// Built into the kernel (/sys/module/openvswitch without a /proc/modules entry).
    BuiltIn,
    /// Not there: it would have to be loaded.
    Absent,
}

pub fn module_state(paths: &KernelPaths) -> ModuleState {
    if !paths.sys.join("module/openvswitch").exists() {
        return ModuleState::Absent;
    }
    let listed = std::fs::read_to_string(paths.proc.join("modules"))
        .map(|text| text.lines().any(|l| l.starts_with("openvswitch ")))
        .unwrap_or(false);
    if listed {
        ModuleState::Loaded
    } else {
        ModuleState::BuiltIn
    }
}

/// The running kernel's release, as `uname -r` prints it.
pub fn kernel_release(paths: &KernelPaths) -> Option<String> {
    std::fs::read_to_string(paths.proc.join("sys/kernel/osrelease"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Finds openvswitch.ko in `<modules>/<release>/modules.dep`, which is what modprobe reads.
pub fn find_module(paths: &KernelPaths, release: &str) -> Result<PathBuf, String> {
    let dir = paths.modules.join(release);
    let dep = dir.join("modules.dep");
    let text = std::fs::read_to_string(&dep).map_err(|e| {
        format!(
            "the host's modules for kernel {release} are not visible at {} ({e})",
            dir.display()
        )
    })?;
    text.lines()
        .filter_map(|line| line.split(':').next())
        .find(|file| {
            let name = file.rsplit('/').next().unwrap_or(file);
            name == "openvswitch.ko" || name.starts_with("openvswitch.ko.")
        })
        .map(|file| dir.join(file))
        .ok_or_else(|| format!("openvswitch is not listed in {}", dep.display()))
}

/// Loads a kernel module. Extracted so tests can stand in for modprobe.
pub trait ModuleLoader {
    fn load(&self, module: &str) -> Result<(), String>;
    /// Finds out whether `load` would find the module and what it depends on, changing
    /// nothing in the kernel (for `check`).
    fn probe(&self, module: &str) -> Result<(), String>;
}

/// modprobe, so dependencies such as nf_conntrack and nsh come along.
pub struct Modprobe {
    pub program: PathBuf,
    pub modules_root: PathBuf,
}

impl Modprobe {
    fn run(&self, extra: &[&str], module: &str) -> Result<(), String> {
        let mut cmd = Command::new(&self.program);
        // modprobe -d takes the root that contains lib/modules.
        if self.modules_root != Path::new("/lib/modules") {
            if let Some(root) = self.modules_root.parent().and_then(Path::parent) {
                cmd.arg("-d").arg(root);
            }
        }
        let out = cmd
            .args(extra)
            .arg(module)
            .output()
            .map_err(|e| format!("failed to run {}: {e}", self.program.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let how = extra.first().map(|a| format!("{a} ")).unwrap_or_default();
            Err(format!("modprobe {how}{module} failed: {}", stderr.trim()))
        }
    }
}

impl ModuleLoader for Modprobe {
    fn load(&self, module: &str) -> Result<(), String> {
        self.run(&[], module)
    }

    /// `modprobe --dry-run` resolves the module and its dependencies from modules.dep and
    /// stops before the load (which needs no CAP_SYS_MODULE).
    fn probe(&self, module: &str) -> Result<(), String> {
        self.run(&["--dry-run"], module)
    }
}

/// Why the kernel datapath cannot be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// The module would have to be loaded and CAP_SYS_MODULE is not held.
    NoSysModule,
    /// The module file cannot be found, or loading it failed.
    Cannot(String),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSysModule => f.write_str(
                "the openvswitch module is not loaded and CAP_SYS_MODULE is missing to load it",
            ),
            Self::Cannot(why) => write!(f, "the openvswitch module is not loaded and {why}"),
        }
    }
}

/// How to get the kernel datapath: every way an operator has.
pub const KERNEL_DATAPATH_FIX: &str = "mount the host's modules with \
`-v /lib/modules:/lib/modules:ro` and add `--cap-add SYS_MODULE`, or load it on the host \
(`modprobe openvswitch`, and list it in /etc/modules-load.d/openvswitch.conf)";

/// What preflight may do to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// `run`: load the module when it must and may.
    Start,
    /// `check`: find out whether it could be loaded, and load nothing: a report must leave the
    /// host as it found it.
    Report,
}

/// What was done about the module on the way to a datapath.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loading {
    /// Nothing: the module was there already (loaded or built in), or is not needed (netdev).
    NotNeeded,
    /// Loaded by us just now.
    Loaded,
    /// `check` only: not loaded, and `run` would load it (modprobe resolved it without loading).
    Loadable,
}

/// The outcome of resolving `[ovs].datapath`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Use this datapath, after `loading`.
    Use {
        datapath: Datapath,
        loading: Loading,
    },
    /// `auto` fell back to netdev, for this reason.
    FellBack(Unavailable),
    /// `system` was asked for and cannot be had.
    Refused(Unavailable),
}

/// Resolves the configured datapath mode, loading the module when it must and may (and under
/// `Intent::Report` only finding out whether it could).
pub fn resolve(
    mode: DatapathMode,
    paths: &KernelPaths,
    has_sys_module: bool,
    loader: &dyn ModuleLoader,
    intent: Intent,
) -> Resolution {
    if mode == DatapathMode::Netdev {
        return Resolution::Use {
            datapath: Datapath::Netdev,
            loading: Loading::NotNeeded,
        };
    }
    let outcome = match module_state(paths) {
        ModuleState::Loaded | ModuleState::BuiltIn => Ok(Loading::NotNeeded),
        ModuleState::Absent => try_load(paths, has_sys_module, loader, intent),
    };
    match (outcome, mode) {
        (Ok(loading), _) => Resolution::Use {
            datapath: Datapath::System,
            loading,
        },
        (Err(why), DatapathMode::System) => Resolution::Refused(why),
        (Err(why), _) => Resolution::FellBack(why),
    }
}

fn try_load(
    paths: &KernelPaths,
    has_sys_module: bool,
    loader: &dyn ModuleLoader,
    intent: Intent,
) -> Result<Loading, Unavailable> {
    let release = kernel_release(paths)
        .ok_or_else(|| Unavailable::Cannot("the kernel release cannot be read".into()))?;
    find_module(paths, &release).map_err(Unavailable::Cannot)?;
    if !has_sys_module {
        return Err(Unavailable::NoSysModule);
    }
    if intent == Intent::Report {
        loader.probe("openvswitch").map_err(Unavailable::Cannot)?;
        return Ok(Loading::Loadable);
    }
    loader.load("openvswitch").map_err(Unavailable::Cannot)?;
    match module_state(paths) {
        ModuleState::Absent => Err(Unavailable::Cannot(
            "modprobe succeeded but /sys/module/openvswitch did not appear".into(),
        )),
        _ => Ok(Loading::Loaded),
    }
}

#[cfg(test)]
#[path = "module_tests.rs"]
mod tests;
