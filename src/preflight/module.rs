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
}

/// modprobe, so dependencies such as nf_conntrack and nsh come along.
pub struct Modprobe {
    pub program: PathBuf,
    pub modules_root: PathBuf,
}

impl ModuleLoader for Modprobe {
    fn load(&self, module: &str) -> Result<(), String> {
        let mut cmd = Command::new(&self.program);
        // modprobe -d takes the root that contains lib/modules.
        if self.modules_root != Path::new("/lib/modules") {
            if let Some(root) = self.modules_root.parent().and_then(Path::parent) {
                cmd.arg("-d").arg(root);
            }
        }
        let out = cmd
            .arg(module)
            .output()
            .map_err(|e| format!("failed to run {}: {e}", self.program.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(format!("modprobe {module} failed: {}", stderr.trim()))
        }
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

/// The outcome of resolving `[ovs].datapath`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Use this datapath; `loaded` says the module was loaded by us just now.
    Use { datapath: Datapath, loaded: bool },
    /// `auto` fell back to netdev, for this reason.
    FellBack(Unavailable),
    /// `system` was asked for and cannot be had.
    Refused(Unavailable),
}

/// Resolves the configured datapath mode, loading the module when it must and may.
pub fn resolve(
    mode: DatapathMode,
    paths: &KernelPaths,
    has_sys_module: bool,
    loader: &dyn ModuleLoader,
) -> Resolution {
    if mode == DatapathMode::Netdev {
        return Resolution::Use {
            datapath: Datapath::Netdev,
            loaded: false,
        };
    }
    let outcome = match module_state(paths) {
        ModuleState::Loaded | ModuleState::BuiltIn => Ok(false),
        ModuleState::Absent => try_load(paths, has_sys_module, loader).map(|()| true),
    };
    match (outcome, mode) {
        (Ok(loaded), _) => Resolution::Use {
            datapath: Datapath::System,
            loaded,
        },
        (Err(why), DatapathMode::System) => Resolution::Refused(why),
        (Err(why), _) => Resolution::FellBack(why),
    }
}

fn try_load(
    paths: &KernelPaths,
    has_sys_module: bool,
    loader: &dyn ModuleLoader,
) -> Result<(), Unavailable> {
    let release = kernel_release(paths)
        .ok_or_else(|| Unavailable::Cannot("the kernel release cannot be read".into()))?;
    find_module(paths, &release).map_err(Unavailable::Cannot)?;
    if !has_sys_module {
        return Err(Unavailable::NoSysModule);
    }
    loader.load("openvswitch").map_err(Unavailable::Cannot)?;
    match module_state(paths) {
        ModuleState::Absent => Err(Unavailable::Cannot(
            "modprobe succeeded but /sys/module/openvswitch did not appear".into(),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[path = "module_tests.rs"]
mod tests;
