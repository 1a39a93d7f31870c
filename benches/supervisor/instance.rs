//! One OVS instance of the bench and everything it started, cleaned up in Drop; the process
//! helpers. Only processes this bench started are signalled: an appliance it spawned, launchers
//! it spawned, daemons named by pidfiles in its own temp dirs whose /proc/<pid>/comm matches, and
//! what ovs-ctl left in the namespaces it was started in.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use nix::sys::signal::Signal;

use crate::proc::{comm, kill_daemon, live_pid, signal, stat, wait_for, Netns};
use crate::{BIN, HAND_LAUNCH, OVSDB, OVS_CTL, START_TIMEOUT, VSWITCHD};

/// Named network namespaces of this bench are `ovsa-bench-<our pid>-<n>`.
const NETNS_PREFIX: &str = "ovsa-bench";

/// One OVS instance: temp run/db dirs, its own network namespace (none for ovs-ctl, which makes
/// an anonymous one), and what was started for it. Drop stops the appliance (SIGTERM, then
/// SIGKILL), kills leftover launchers, then the daemons its pidfiles name, then the namespace.
pub struct Instance {
    pub dir: tempfile::TempDir,
    pub appliance: Option<Child>,
    pub launchers: Vec<Child>,
    pub netns: Option<Netns>,
}

impl Instance {
    /// A fresh instance in a temp dir under `root`, with a named netns when `with_netns`.
    pub fn new(root: &Path, with_netns: bool) -> Result<Instance> {
        let dir = tempfile::Builder::new().prefix("i").tempdir_in(root)?;
        for sub in ["run", "db", "etc", "log"] {
            fs::create_dir(dir.path().join(sub))?;
        }
        let netns = if with_netns {
            Some(Netns::new(NETNS_PREFIX)?)
        } else {
            None
        };
        Ok(Instance {
            dir,
            appliance: None,
            launchers: Vec::new(),
            netns,
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn run_dir(&self) -> PathBuf {
        self.path("run")
    }
    pub fn db_sock(&self) -> PathBuf {
        self.path("run/db.sock")
    }
    pub fn ns(&self) -> Result<&str> {
        Ok(&self.netns.as_ref().context("instance has no netns")?.name)
    }
    pub fn netns_path(&self) -> Result<PathBuf> {
        Ok(Path::new("/run/netns").join(self.ns()?))
    }

    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    pub fn log_to(&self, cmd: &mut Command, name: &str) -> Result<()> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(name))?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        Ok(())
    }

    /// `ovs-appliance run` in the namespace; the config sets the paths, the netdev datapath and
    /// `extra` (TOML), and nothing else.
    pub fn appliance_command(&self, extra: &str) -> Result<Command> {
        let config = format!(
            "[ovs]\nrun_dir = \"{}\"\ndb_dir = \"{}\"\ndatapath = \"netdev\"\n{extra}",
            self.run_dir().display(),
            self.path("db").display()
        );
        fs::write(self.path("config.toml"), config)?;
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            self.ns()?,
            BIN,
            "--log-format",
            "json",
            "run",
        ])
        .arg("--config")
        .arg(self.path("config.toml"));
        Ok(cmd)
    }

    /// `ovs-ctl start` in a mount and network namespace of its own, our dirs bound over its
    /// fixed paths; the namespaces die with the daemons.
    pub fn ovs_ctl_command(&self) -> Command {
        let d = self.dir.path().display();
        let script = format!(
            "mount --bind {d}/run /var/run/openvswitch && mount --bind {d}/etc /etc/openvswitch \
             && mount --bind {d}/log /var/log/openvswitch && exec {OVS_CTL} start --system-id=random"
        );
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "-n", "--propagation", "private", "sh", "-c", &script]);
        cmd
    }

    /// benches/hand-launch.sh in the namespace.
    pub fn hand_command(&self) -> Result<Command> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.ns()?, "bash", HAND_LAUNCH])
            .arg(self.run_dir())
            .arg(self.path("db"));
        Ok(cmd)
    }

    /// The respawn by hand: the vswitchd line of hand-launch.sh, spawned by the bench itself.
    pub fn vswitchd_by_hand(&self) -> Result<Command> {
        let run = self.run_dir();
        let mut cmd = Command::new(VSWITCHD);
        cmd.arg(format!("unix:{}", self.db_sock().display()))
            .arg("--mlockall")
            .arg(format!("--pidfile={}/{VSWITCHD}.pid", run.display()))
            .args(["--detach", "--no-chdir"])
            .arg(format!("--log-file={}/{VSWITCHD}.log", run.display()))
            .env("OVS_RUNDIR", &run)
            .env("OVS_DBDIR", self.path("db"))
            .env("OVS_LOGDIR", &run);
        self.log_to(&mut cmd, "respawn.log")?;
        Ok(cmd)
    }

    /// Waits for every launcher (script, ovs-ctl, a detaching daemon's parent) to exit, and
    /// checks each succeeded.
    pub fn wait_launchers(&mut self) -> Result<()> {
        for mut child in self.launchers.drain(..) {
            let status = wait_for(START_TIMEOUT, || child.try_wait().ok().flatten())
                .context("launcher did not exit")?;
            ensure!(status.success(), "launcher failed: {status}");
        }
        Ok(())
    }

    /// A line of /proc/<appliance>/status in KiB (VmRSS, VmHWM).
    pub fn appliance_status(&self, key: &str) -> Result<u64> {
        let pid = self.appliance.as_ref().context("no appliance")?.id();
        let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
        ensure!(
            comm(pid as i32).as_deref() == Some("ovs-appliance"),
            "pid {pid} is not ovs-appliance"
        );
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok())
            .with_context(|| format!("{key} not in /proc/{pid}/status"))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut app) = self.appliance.take() {
            // The orderly stop (vswitchd `exit`, then ovsdb-server) is what a container gets.
            let _ = signal(app.id() as i32, Signal::SIGTERM);
            if wait_for(Duration::from_secs(15), || app.try_wait().ok().flatten()).is_none() {
                let _ = app.kill();
                let _ = app.wait();
            }
        }
        for mut child in self.launchers.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.netns.is_none() {
            self.kill_ovs_ctl_namespace();
        }
        for daemon in [VSWITCHD, OVSDB] {
            kill_daemon(&self.run_dir(), daemon);
        }
    }
}

impl Instance {
    /// ovs-ctl runs `set_hostname &` (`hostname -f`, then an ovs-vsctl without a timeout) after
    /// it returns; once ovsdb-server is gone that ovs-vsctl would retry forever. So everything in
    /// ovs-ctl's own namespaces, found through its daemons, is killed: monitors first.
    fn kill_ovs_ctl_namespace(&self) {
        let ours = ns_of(std::process::id() as i32);
        let member = [OVSDB, VSWITCHD]
            .into_iter()
            .find_map(|d| live_pid(&self.run_dir(), d));
        let Some(ns) = member.and_then(ns_of) else {
            return;
        };
        // Never the namespaces we (and the rest of the machine) run in.
        if ours.is_none_or(|o| o.0 == ns.0 || o.1 == ns.1) {
            return;
        }
        for _ in 0..100 {
            let mut members: Vec<i32> = all_pids().filter(|p| ns_of(*p) == Some(ns)).collect();
            if members.is_empty() {
                return;
            }
            members.sort_by_key(|p| comm(*p).as_deref() != Some("monitor"));
            for pid in members {
                let _ = signal(pid, Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("warning: processes left in ovs-ctl's namespaces");
    }
}

/// (network, mount) namespace inodes of a live process; None for a zombie or a gone one.
fn ns_of(pid: i32) -> Option<(u64, u64)> {
    let ino = |kind: &str| {
        fs::metadata(format!("/proc/{pid}/ns/{kind}"))
            .ok()
            .map(|m| m.ino())
    };
    Some((ino("net")?, ino("mnt")?))
}

fn all_pids() -> impl Iterator<Item = i32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
}

/// Named namespaces of this run that still exist.
pub fn netns_left() -> Vec<String> {
    let ours = format!("{NETNS_PREFIX}-{}-", std::process::id());
    fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(&ours))
        .collect()
}

/// Processes still naming `root` (this run's temp dir) in their command line or their mounts.
pub fn leftovers(root: &Path) -> Vec<i32> {
    let root = root.to_string_lossy().into_owned();
    let mentions = |pid: i32, file: &str| {
        fs::read(format!("/proc/{pid}/{file}"))
            .is_ok_and(|b| String::from_utf8_lossy(&b).contains(&root))
    };
    all_pids()
        .filter(|p| matches!(stat(*p), Some((state, _)) if state != 'Z'))
        .filter(|p| mentions(*p, "cmdline") || mentions(*p, "mountinfo"))
        .collect()
}
