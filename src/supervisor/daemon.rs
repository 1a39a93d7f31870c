//! The two daemons: their argv, how they are spawned, and how their log lines reach ours.

use super::reaper::{Reaper, Spawned};
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Which daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Daemon {
    OvsdbServer,
    Vswitchd,
}

impl Daemon {
    pub const ALL: [Daemon; 2] = [Daemon::OvsdbServer, Daemon::Vswitchd];

    /// The program name, which is also the stem of its pidfile and control socket.
    pub fn name(self) -> &'static str {
        match self {
            Self::OvsdbServer => "ovsdb-server",
            Self::Vswitchd => "ovs-vswitchd",
        }
    }
}

/// Everything the argv of a daemon depends on.
#[derive(Debug, Clone)]
pub struct Layout {
    pub run_dir: PathBuf,
    pub db_dir: PathBuf,
    pub remotes: Vec<String>,
    pub mlockall: bool,
}

impl Layout {
    pub fn db_file(&self) -> PathBuf {
        self.db_dir.join("conf.db")
    }

    pub fn db_sock(&self) -> PathBuf {
        crate::rundir::db_sock(&self.run_dir)
    }

    pub fn pidfile(&self, daemon: Daemon) -> PathBuf {
        crate::rundir::pidfile(&self.run_dir, daemon.name())
    }

    /// OVS's default control socket name, which ovs-appctl finds with no flags.
    pub fn ctl_socket(&self, daemon: Daemon, pid: u32) -> PathBuf {
        crate::rundir::ctl_socket(&self.run_dir, daemon.name(), pid)
    }
}

/// Log options shared by both daemons: everything to the console (our stderr pipe) in a pattern
/// we parse, nothing to syslog (a container usually has no /dev/log).
const LOG_ARGS: [&str; 3] = [
    "-vconsole:info",
    "-vsyslog:off",
    "-vPATTERN:console:%c|%p|%m",
];

/// The argv (without the program) of a daemon, in the foreground: no --detach, so it stays our
/// child and its exit reaches the reaper.
pub fn args(daemon: Daemon, layout: &Layout) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |s: String| args.push(s.into());
    match daemon {
        Daemon::OvsdbServer => {
            push(layout.db_file().display().to_string());
            push(format!("--remote=punix:{}", layout.db_sock().display()));
            // Managers configured in the database itself, as ovs-ctl does.
            push("--remote=db:Open_vSwitch,Open_vSwitch,manager_options".into());
            for remote in &layout.remotes {
                push(format!("--remote={remote}"));
            }
            push("--private-key=db:Open_vSwitch,SSL,private_key".into());
            push("--certificate=db:Open_vSwitch,SSL,certificate".into());
            push("--bootstrap-ca-cert=db:Open_vSwitch,SSL,ca_cert".into());
        }
        Daemon::Vswitchd => {
            push(format!("unix:{}", layout.db_sock().display()));
            if layout.mlockall {
                push("--mlockall".into());
            }
        }
    }
    push(format!("--pidfile={}", layout.pidfile(daemon).display()));
    push("--no-chdir".into());
    for a in LOG_ARGS {
        push(a.into());
    }
    args
}

/// Starts a daemon with its output captured and re-emitted as our own log events.
pub fn spawn(
    reaper: &Reaper,
    daemon: Daemon,
    layout: &Layout,
    nice: Option<i32>,
) -> std::io::Result<Spawned> {
    let mut cmd = Command::new(daemon.name());
    cmd.args(args(daemon, layout))
        .env("OVS_RUNDIR", &layout.run_dir)
        .env("OVS_DBDIR", &layout.db_dir)
        .env("OVS_LOGDIR", &layout.run_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Its own process group: a Ctrl-C in a terminal reaches only us, and we stop the daemons in
    // order.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    if let Some(nice) = nice.filter(|n| *n != 0) {
        super::spawn::set_nice_on_exec(&mut cmd, nice);
    }
    let mut spawned = reaper.spawn(&mut cmd)?;
    let pid = spawned.child.id();
    let stdout = spawned.child.stdout.take().map(OwnedFd::from);
    let stderr = spawned.child.stderr.take().map(OwnedFd::from);
    for pipe in [stdout, stderr].into_iter().flatten() {
        super::daemon_log::forward(daemon, pid, pipe)?;
    }
    Ok(spawned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            run_dir: "/run/ovs".into(),
            db_dir: "/db".into(),
            remotes: vec!["ptcp:6640:127.0.0.1".into()],
            mlockall: true,
        }
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn ovsdb_server_listens_on_db_sock_manager_options_and_configured_remotes_only() {
        let args = strings(args(Daemon::OvsdbServer, &layout()));
        assert_eq!(args[0], "/db/conf.db");
        let remotes: Vec<&String> = args.iter().filter(|a| a.starts_with("--remote=")).collect();
        assert_eq!(
            remotes,
            [
                "--remote=punix:/run/ovs/db.sock",
                "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
                "--remote=ptcp:6640:127.0.0.1"
            ]
        );
        assert!(args.contains(&"--pidfile=/run/ovs/ovsdb-server.pid".to_string()));
        assert!(!args.iter().any(|a| a == "--detach"));
    }

    #[test]
    fn vswitchd_connects_to_db_sock_and_follows_mlockall() {
        let args = strings(args(Daemon::Vswitchd, &layout()));
        assert_eq!(args[0], "unix:/run/ovs/db.sock");
        assert!(args.contains(&"--mlockall".to_string()));
        assert!(args.contains(&"--pidfile=/run/ovs/ovs-vswitchd.pid".to_string()));
        let mut l = layout();
        l.mlockall = false;
        assert!(!strings(super::args(Daemon::Vswitchd, &l)).contains(&"--mlockall".to_string()));
    }

    #[test]
    fn control_socket_uses_ovs_default_name() {
        assert_eq!(
            layout().ctl_socket(Daemon::Vswitchd, 42),
            std::path::Path::new("/run/ovs/ovs-vswitchd.42.ctl")
        );
    }
}
