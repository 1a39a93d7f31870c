//! Fresh daemons for one timed run: a network namespace and temp dir of their own,
//! `benches/hand-launch.sh` (ovsdb-tool create, ovsdb-server, init, ovs-vswitchd), then one
//! waiting `ovs-vsctl` so that ovs-vswitchd is connected and has applied a first change before the
//! clock starts. Drop kills the daemons (by their pidfiles, checked against /proc/<pid>/comm) and
//! deletes the namespace, which takes the netdev taps with it (they outlive ovs-vswitchd).

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};

use crate::proc::{check, kill_daemon, secs, Netns, OVSDB, VSWITCHD};
use crate::raw::Raw;

const HAND_LAUNCH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/hand-launch.sh");

pub struct Fresh {
    pub dir: tempfile::TempDir,
    /// Held open so that children can `setns` into it.
    netns_file: File,
    /// Deleted on drop, after the daemons are killed.
    _netns: Netns,
}

impl Fresh {
    pub fn start() -> Result<Fresh> {
        let dir = tempfile::Builder::new().prefix("ovsa-ac-").tempdir()?;
        for sub in ["run", "db"] {
            fs::create_dir(dir.path().join(sub))?;
        }
        let netns = Netns::new("ovsa-ac")?;
        let netns_file = File::open(format!("/run/netns/{}", netns.name))?;
        let fresh = Fresh {
            dir,
            netns_file,
            _netns: netns,
        };
        let (run, db) = (fresh.path("run"), fresh.path("db"));
        let mut launch = fresh.command("bash");
        launch.arg(HAND_LAUNCH).arg(&run).arg(&db);
        check(&mut launch, secs(30)).context("hand-launch.sh")?;
        // ovs-vsctl waits until ovs-vswitchd has applied this (cur_cfg reaches next_cfg).
        let mut ready = fresh.vsctl(&[
            "--",
            "set",
            "Open_vSwitch",
            ".",
            "external_ids:ovsa-bench=ready",
        ]);
        check(&mut ready, secs(30)).context("the first change")?;
        Ok(fresh)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn db_sock(&self) -> PathBuf {
        self.path("run/db.sock")
    }

    /// `program` in the namespace: the child joins it between fork and exec (one `setns`), so
    /// that no side pays for `ip netns exec` (a process, and a remount of /sys).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        let fd = self.netns_file.as_raw_fd();
        // SAFETY: setns is one system call, async-signal-safe, on a descriptor that the parent
        // keeps open until the child has been waited for; nothing is allocated after the fork.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        cmd.env("OVS_RUNDIR", self.path("run"));
        cmd
    }

    /// `ovs-vsctl` on this instance's database, in its namespace.
    pub fn vsctl(&self, args: &[&str]) -> Command {
        let mut cmd = self.command("ovs-vsctl");
        cmd.arg(format!("--db=unix:{}", self.db_sock().display()))
            .args(args);
        cmd
    }

    /// Checks what a side left: bridge `rb` with its own port and `ports` more, all applied.
    pub fn verify(&self, ports: usize) -> Result<()> {
        let mut c = Raw::connect(&self.db_sock(), secs(30))?;
        let seen = c.monitor(&[
            ("Open_vSwitch", &["cur_cfg", "next_cfg"]),
            ("Bridge", &["name"]),
            ("Port", &["name"]),
        ])?;
        ensure!(seen.has("Bridge", "rb"), "no bridge rb");
        let missing = (0..ports).find(|i| !seen.has("Port", &format!("rp{i}")));
        ensure!(missing.is_none(), "port rp{} missing", missing.unwrap_or(0));
        ensure!(seen.settled(), "not applied: {seen:?}");
        Ok(())
    }

    /// Interface names that are down in the namespace, among `rp0..rp<ports>`.
    pub fn down(&self, ports: usize) -> Result<usize> {
        let mut ip = self.command("ip");
        ip.args(["-j", "link", "show"])
            .stdin(std::process::Stdio::null());
        // `output` reads while it waits: at 1000 ports the listing is more than a pipe holds.
        let out = ip.output()?;
        ensure!(out.status.success(), "ip -j link show: {out:?}");
        let links: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
        let wanted: Vec<String> = (0..ports).map(|i| format!("rp{i}")).collect();
        let is_down = |l: &serde_json::Value| {
            let name = l["ifname"].as_str().unwrap_or("");
            let up = l["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "UP"));
            wanted.iter().any(|w| w == name) && !up
        };
        Ok(links.iter().filter(|l| is_down(l)).count())
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        for daemon in [VSWITCHD, OVSDB] {
            kill_daemon(&self.path("run"), daemon);
        }
    }
}

/// The `ip -batch` file that sets `rp0..rp<ports>` up.
pub fn links_up_batch(dir: &Path, ports: usize) -> Result<PathBuf> {
    let path = dir.join("links-up.ip");
    let text: String = (0..ports).map(|i| format!("link set rp{i} up\n")).collect();
    fs::write(&path, text)?;
    Ok(path)
}
