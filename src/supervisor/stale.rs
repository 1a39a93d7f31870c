//! Leftovers of a killed container: pidfiles, control sockets and the database lock file.
//!
//! Removed only when no live daemon holds them (see [`clean`]); a live one means another
//! appliance, or the distribution's OVS, already runs on this run_dir, and we refuse to start
//! beside it.

use super::daemon::{Daemon, Layout};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{daemon} (pidfile says pid {pid}; it may be in another container's PID namespace) is already running with run_dir {run_dir} ({what} is held): stop it or give this appliance another run_dir")]
    AlreadyRunning {
        daemon: &'static str,
        pid: i32,
        run_dir: PathBuf,
        /// The lock or socket that showed it.
        what: PathBuf,
    },
    #[error("failed to take the appliance's claim file {path}: {source}")]
    Claim {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to remove stale {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Removes what dead instances of the daemons left; returns the paths removed.
///
/// Liveness is judged as OVS judges it, not by `/proc/<pid>`: a daemon holds an fcntl lock on
/// its pidfile (and ovsdb-server one on the database's lock file) for as long as it lives, in
/// whatever PID namespace it runs, and a dead one (a zombie included) holds none; a socket is
/// live when it accepts a connection. A pid read from a pidfile means nothing in another
/// container's PID namespace, so it is only reported. Nothing live is unlinked.
pub fn clean(layout: &Layout) -> Result<Vec<PathBuf>, Error> {
    let mut removed = Vec::new();
    let busy = |daemon: Daemon, what: PathBuf| Error::AlreadyRunning {
        daemon: daemon.name(),
        pid: read_pid(&layout.pidfile(daemon)).unwrap_or(0),
        run_dir: layout.run_dir.clone(),
        what,
    };
    for daemon in Daemon::ALL {
        let pidfile = layout.pidfile(daemon);
        if locked(&pidfile) {
            return Err(busy(daemon, pidfile));
        }
    }
    let db_lock = layout.db_dir.join(".conf.db.~lock~");
    if locked(&db_lock) {
        return Err(busy(Daemon::OvsdbServer, db_lock));
    }
    let db_sock = layout.db_sock();
    if answers(&db_sock) {
        return Err(busy(Daemon::OvsdbServer, db_sock));
    }
    for daemon in Daemon::ALL {
        let pidfile = layout.pidfile(daemon);
        if pidfile.exists() {
            remove(&pidfile, &mut removed)?;
            if daemon == Daemon::OvsdbServer {
                remove(&db_lock, &mut removed)?;
            }
        }
        for (path, _pid) in ctl_sockets(&layout.run_dir, daemon) {
            if !answers(&path) {
                remove(&path, &mut removed)?;
            }
        }
    }
    Ok(removed)
}

/// Whether some process holds a lock on `path` (an OVS daemon locks its pidfile while it
/// lives). Asked as an open file description lock, which conflicts with the daemon's
/// process-associated lock from any process, this one included.
pub fn locked(path: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut probe = whole_file_write_lock();
    // SAFETY: fcntl with F_OFD_GETLK reads and writes only `probe`, which outlives the call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut probe) };
    rc == 0 && probe.l_type != libc::F_UNLCK as libc::c_short
}

/// A write lock on a whole file, as OVS takes on its pidfiles (l_pid 0, as OFD locks require).
pub(super) fn whole_file_write_lock() -> libc::flock {
    // SAFETY: flock is plain data, for which all-zero bytes are a valid value.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock
}

/// Whether a unix socket at `path` accepts a connection.
fn answers(path: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}

/// Removes the control socket a dead daemon left behind (it cannot unlink it after a SIGKILL).
pub fn remove_ctl(layout: &Layout, daemon: Daemon, pid: u32) {
    let _ = std::fs::remove_file(layout.ctl_socket(daemon, pid));
}

fn read_pid(pidfile: &Path) -> Option<i32> {
    std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()
}

/// `<run_dir>/<daemon>.<pid>.ctl` files with the pid they name.
fn ctl_sockets(run_dir: &Path, daemon: Daemon) -> Vec<(PathBuf, u32)> {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let pid = crate::rundir::parse_ctl_socket(&name, daemon.name())?;
            Some((entry.path(), pid))
        })
        .collect()
}

fn remove(path: &Path, removed: &mut Vec<PathBuf>) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            removed.push(path.to_path_buf());
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Remove {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    struct Fixture {
        _dir: tempfile::TempDir,
        layout: Layout,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout {
            run_dir: dir.path().join("run"),
            db_dir: dir.path().join("db"),
            remotes: vec![],
            mlockall: false,
        };
        for d in [&layout.run_dir, &layout.db_dir] {
            fs::create_dir_all(d).unwrap();
        }
        Fixture { _dir: dir, layout }
    }

    /// Holds a process-associated write lock on `path`, as an OVS daemon holds its pidfile's,
    /// until the returned file is dropped.
    fn hold(path: &Path) -> fs::File {
        use std::os::fd::AsRawFd;
        let file = fs::OpenOptions::new().write(true).open(path).unwrap();
        let lock = whole_file_write_lock();
        // SAFETY: F_SETLK only reads `lock`, which outlives the call.
        assert_eq!(
            unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) },
            0
        );
        file
    }

    #[test]
    fn removes_files_of_dead_daemons() {
        let fx = fixture();
        let run = &fx.layout.run_dir;
        fs::write(run.join("ovsdb-server.pid"), "100\n").unwrap();
        fs::write(run.join("ovsdb-server.100.ctl"), "").unwrap();
        fs::write(run.join("ovs-vswitchd.pid"), "101\n").unwrap();
        fs::write(run.join("ovs-vswitchd.101.ctl"), "").unwrap();
        fs::write(run.join("ovs-vswitchd.55.ctl"), "").unwrap();
        fs::write(fx.layout.db_dir.join(".conf.db.~lock~"), "").unwrap();
        fs::write(fx.layout.db_dir.join("conf.db"), "keep").unwrap();
        let removed = clean(&fx.layout).unwrap();
        assert_eq!(removed.len(), 6, "{removed:?}");
        assert_eq!(fs::read_dir(run).unwrap().count(), 0);
        assert_eq!(
            fs::read_to_string(fx.layout.db_dir.join("conf.db")).unwrap(),
            "keep"
        );
    }

    #[test]
    fn a_held_pidfile_refuses_the_start_whatever_pid_it_names() {
        let fx = fixture();
        // A pid from another PID namespace: meaningless here, and no /proc entry for it.
        let pidfile = fx.layout.run_dir.join("ovs-vswitchd.pid");
        fs::write(&pidfile, "1\n").unwrap();
        fs::write(fx.layout.run_dir.join("ovs-vswitchd.1.ctl"), "").unwrap();
        let held = hold(&pidfile);
        let err = clean(&fx.layout).unwrap_err();
        assert!(
            err.to_string().contains("ovs-vswitchd.pid is held"),
            "{err}"
        );
        assert!(pidfile.exists() && fx.layout.run_dir.join("ovs-vswitchd.1.ctl").exists());
        // Released (the daemon died, even as a zombie): stale.
        drop(held);
        assert_eq!(clean(&fx.layout).unwrap().len(), 2);
    }

    #[test]
    fn a_held_database_lock_or_an_answering_socket_refuses_the_start() {
        let fx = fixture();
        let lock = fx.layout.db_dir.join(".conf.db.~lock~");
        fs::write(&lock, "").unwrap();
        let held = hold(&lock);
        assert!(clean(&fx.layout).is_err());
        assert!(lock.exists());
        drop(held);
        let sock = fx.layout.run_dir.join("db.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let err = clean(&fx.layout).unwrap_err();
        assert!(err.to_string().contains("db.sock is held"), "{err}");
        // A control socket that answers is never removed either.
        drop(listener);
        let ctl = fx.layout.run_dir.join("ovs-vswitchd.9.ctl");
        let _live = std::os::unix::net::UnixListener::bind(&ctl).unwrap();
        fs::remove_file(&sock).unwrap();
        clean(&fx.layout).unwrap();
        assert!(ctl.exists());
    }

    #[test]
    fn garbage_pidfile_is_stale() {
        let fx = fixture();
        fs::write(fx.layout.run_dir.join("ovs-vswitchd.pid"), "not a pid").unwrap();
        assert_eq!(clean(&fx.layout).unwrap().len(), 1);
    }
}
