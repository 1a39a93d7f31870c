//! The names of the files in run_dir, built in one place: the daemons' pidfiles and control
//! sockets, db.sock, and the appliance's own claim. OVS fixes most of them (lib/daemon-unix.c,
//! lib/unixctl.c); ovs-appctl, ovs-vsctl and ovn-controller find them by these names, so a
//! name that drifted here would be a socket nobody finds.
//!
//! Owns names only: no file is opened, created or removed here.

use std::path::{Path, PathBuf};

/// The database socket ovsdb-server listens on and every client connects to.
pub fn db_sock(run_dir: &Path) -> PathBuf {
    run_dir.join("db.sock")
}

/// `<daemon>.pid`, which the daemon writes and locks for as long as it lives.
pub fn pidfile(run_dir: &Path, daemon: &str) -> PathBuf {
    run_dir.join(format!("{daemon}.pid"))
}

/// `<daemon>.<pid>.ctl`, OVS's default control socket name, which ovs-appctl finds with no
/// flags.
pub fn ctl_socket(run_dir: &Path, daemon: &str, pid: u32) -> PathBuf {
    run_dir.join(format!("{daemon}.{pid}.ctl"))
}

/// The pid a file name `<daemon>.<pid>.ctl` names, for that daemon.
pub fn parse_ctl_socket(file_name: &str, daemon: &str) -> Option<u32> {
    file_name
        .strip_prefix(daemon)?
        .strip_prefix('.')?
        .strip_suffix(".ctl")?
        .parse()
        .ok()
}

/// `<bridge>.mgmt`, the bridge's OpenFlow management socket (ovs-ofctl's default target for a
/// bridge name, ovs-vswitchd's ofservice `punix:`).
pub fn mgmt(run_dir: &Path, bridge: &str) -> PathBuf {
    run_dir.join(format!("{bridge}.mgmt"))
}

/// The appliance's claim on run_dir (an open file description lock, listing the daemons it
/// started); see `supervisor::claim`.
pub fn claim(run_dir: &Path) -> PathBuf {
    run_dir.join(CLAIM)
}

/// The claim file's name.
pub const CLAIM: &str = "ovs-appliance.pid";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_ones_ovs_and_its_tools_use() {
        let run = Path::new("/run/ovs");
        assert_eq!(db_sock(run), Path::new("/run/ovs/db.sock"));
        assert_eq!(
            pidfile(run, "ovs-vswitchd"),
            Path::new("/run/ovs/ovs-vswitchd.pid")
        );
        assert_eq!(
            ctl_socket(run, "ovsdb-server", 42),
            Path::new("/run/ovs/ovsdb-server.42.ctl")
        );
        assert_eq!(claim(run), Path::new("/run/ovs/ovs-appliance.pid"));
    }

    #[test]
    fn a_control_socket_name_gives_back_its_pid_for_its_daemon_only() {
        let name = |p: PathBuf| p.file_name().unwrap().to_str().unwrap().to_string();
        let built = name(ctl_socket(Path::new("/r"), "ovs-vswitchd", 4242));
        assert_eq!(parse_ctl_socket(&built, "ovs-vswitchd"), Some(4242));
        assert_eq!(parse_ctl_socket(&built, "ovsdb-server"), None);
        assert_eq!(parse_ctl_socket("ovs-vswitchd.pid", "ovs-vswitchd"), None);
        assert_eq!(parse_ctl_socket("ovs-vswitchd.x.ctl", "ovs-vswitchd"), None);
        assert_eq!(
            parse_ctl_socket("ovs-vswitchdx.1.ctl", "ovs-vswitchd"),
            None
        );
    }
}
