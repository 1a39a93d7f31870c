//! The long-lived `ovs-appliance run` of measures 1-3: its own network namespace and temp run/db
//! dirs, the netdev datapath, instance "default". Drop stops it (SIGTERM, then SIGKILL) and kills
//! any daemon its pidfiles still name, then deletes the namespace and the dirs.
//!
//! Its health check waits up to 30 s instead of the default 2 s: ovs-vswitchd's main loop does
//! not answer its control socket while it creates or deletes 1000 netdev internal ports (2-3 s
//! each time here), and with the default three such misses in a row got it killed mid-apply
//! (then five restarts, then exit 70) when runs followed one another. The bench checks that
//! ovs-vswitchd kept its pid from start to end.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use nix::sys::signal::Signal;

use crate::proc::{comm, kill_daemon, secs, signal, stop_child, wait_for, Netns, OVSDB, VSWITCHD};
use crate::raw::Raw;
use crate::BIN;

pub struct Instance {
    pub dir: tempfile::TempDir,
    appliance: Option<Child>,
    pub netns: Netns,
}

impl Instance {
    /// Starts the appliance with `bridges` (TOML, may be empty) and waits until ovsdb-server
    /// answers and ovs-vswitchd has applied a first change (a bridge added and deleted).
    pub fn start(bridges: &str) -> Result<Instance> {
        let dir = tempfile::Builder::new().prefix("ovsa-rb-").tempdir()?;
        for sub in ["run", "db"] {
            fs::create_dir(dir.path().join(sub))?;
        }
        let mut inst = Instance {
            dir,
            appliance: None,
            netns: Netns::new("ovsa-rb")?,
        };
        inst.write_config(bridges)?;
        let log = fs::File::create(inst.path("appliance.log"))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &inst.netns.name, BIN, "run", "--config"])
            .arg(inst.path("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        inst.appliance = Some(cmd.spawn().context("spawn ovs-appliance run")?);
        let up = wait_for(secs(30), || {
            Raw::connect(&inst.db_sock(), secs(5))
                .and_then(|mut c| c.call("echo", serde_json::json!([])))
                .ok()
        });
        ensure!(up.is_some(), "no db.sock: {}", inst.log());
        // ovs-vsctl waits for ovs-vswitchd by default: this returns once it is connected.
        inst.vsctl(&[
            "add-br",
            "rbwarm",
            "--",
            "set",
            "bridge",
            "rbwarm",
            "datapath_type=netdev",
        ])?;
        inst.vsctl(&["del-br", "rbwarm"])?;
        Ok(inst)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn run_dir(&self) -> PathBuf {
        self.path("run")
    }

    pub fn db_sock(&self) -> PathBuf {
        self.path("run/db.sock")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.path("appliance.log")).unwrap_or_default()
    }

    fn write_config(&self, bridges: &str) -> Result<()> {
        let config = format!(
            "[ovs]\nrun_dir = \"{}\"\ndb_dir = \"{}\"\ndatapath = \"netdev\"\n\
             [supervisor]\nhealth_timeout = \"30s\"\n{bridges}",
            self.run_dir().display(),
            self.path("db").display()
        );
        Ok(fs::write(self.path("config.toml"), config)?)
    }

    /// ovs-vswitchd's pid, from its pidfile (checked against /proc).
    pub fn vswitchd_pid(&self) -> Option<i32> {
        let text = fs::read_to_string(self.run_dir().join(format!("{VSWITCHD}.pid"))).ok()?;
        let pid = text.trim().parse().ok()?;
        (comm(pid).as_deref() == Some(VSWITCHD)).then_some(pid)
    }

    /// A new config for the running appliance: rewrite the file, then SIGHUP.
    pub fn reconfigure(&self, bridges: &str) -> Result<()> {
        self.write_config(bridges)?;
        let pid = self.appliance.as_ref().context("no appliance")?.id() as i32;
        ensure!(
            comm(pid).as_deref() == Some("ovs-appliance"),
            "pid {pid} is not ovs-appliance"
        );
        signal(pid, Signal::SIGHUP)
    }

    /// `ovs-vsctl` on this instance's database.
    pub fn vsctl_command(&self, args: &[String]) -> Command {
        let mut cmd = Command::new("ovs-vsctl");
        cmd.arg(format!("--db=unix:{}", self.db_sock().display()))
            .args(args)
            .env("OVS_RUNDIR", self.run_dir())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs ovs-vsctl to its end (it waits for ovs-vswitchd unless told `--no-wait`).
    pub fn vsctl(&self, args: &[&str]) -> Result<()> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        crate::proc::check(&mut self.vsctl_command(&args), Duration::from_secs(300))?;
        Ok(())
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut app) = self.appliance.take() {
            stop_child(&mut app, secs(15));
        }
        for daemon in [VSWITCHD, OVSDB] {
            kill_daemon(&self.run_dir(), daemon);
        }
    }
}
