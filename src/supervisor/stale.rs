//! Leftovers of a killed container: pidfiles, control sockets and the database lock file.
//!
//! Removed only when the pid they name is not a live instance of that daemon; a live one means
//! another appliance already runs on this run_dir, and we refuse to start beside it.

use super::daemon::{is_daemon_alive, Daemon, Layout};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{daemon} (pid {pid}) is already running with run_dir {run_dir}: stop it or give this appliance another run_dir")]
    AlreadyRunning {
        daemon: &'static str,
        pid: i32,
        run_dir: PathBuf,
    },
    #[error("failed to remove stale {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Removes what dead instances of the daemons left; returns the paths removed.
pub fn clean(layout: &Layout, proc_root: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut removed = Vec::new();
    for daemon in Daemon::ALL {
        let pidfile = layout.pidfile(daemon);
        if let Some(pid) = read_pid(&pidfile) {
            if is_daemon_alive(proc_root, pid, daemon) {
                return Err(Error::AlreadyRunning {
                    daemon: daemon.name(),
                    pid,
                    run_dir: layout.run_dir.clone(),
                });
            }
        }
        if pidfile.exists() {
            remove(&pidfile, &mut removed)?;
            if daemon == Daemon::OvsdbServer {
                remove(&layout.db_dir.join(".conf.db.~lock~"), &mut removed)?;
            }
        }
        for (path, pid) in ctl_sockets(&layout.run_dir, daemon) {
            if !is_daemon_alive(proc_root, pid, daemon) {
                remove(&path, &mut removed)?;
            }
        }
    }
    Ok(removed)
}

/// Removes the control socket a dead daemon left behind (it cannot unlink it after a SIGKILL).
pub fn remove_ctl(layout: &Layout, daemon: Daemon, pid: u32) {
    let _ = std::fs::remove_file(layout.ctl_socket(daemon, pid));
}

fn read_pid(pidfile: &Path) -> Option<i32> {
    std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()
}

/// `<run_dir>/<daemon>.<pid>.ctl` files with the pid they name.
fn ctl_sockets(run_dir: &Path, daemon: Daemon) -> Vec<(PathBuf, i32)> {
    let prefix = format!("{}.", daemon.name());
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let pid = name
                .strip_prefix(&prefix)?
                .strip_suffix(".ctl")?
                .parse()
                .ok()?;
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
        proc: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout {
            run_dir: dir.path().join("run"),
            db_dir: dir.path().join("db"),
            remotes: vec![],
            mlockall: false,
        };
        let proc = dir.path().join("proc");
        for d in [&layout.run_dir, &layout.db_dir, &proc] {
            fs::create_dir_all(d).unwrap();
        }
        Fixture {
            _dir: dir,
            layout,
            proc,
        }
    }

    fn live(fx: &Fixture, pid: i32, comm: &str) {
        fs::create_dir_all(fx.proc.join(pid.to_string())).unwrap();
        fs::write(
            fx.proc.join(pid.to_string()).join("comm"),
            format!("{comm}\n"),
        )
        .unwrap();
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
        let removed = clean(&fx.layout, &fx.proc).unwrap();
        assert_eq!(removed.len(), 6, "{removed:?}");
        assert_eq!(fs::read_dir(run).unwrap().count(), 0);
        assert_eq!(
            fs::read_to_string(fx.layout.db_dir.join("conf.db")).unwrap(),
            "keep"
        );
    }

    #[test]
    fn a_reused_pid_of_another_program_is_stale() {
        let fx = fixture();
        live(&fx, 1, "ovs-appliance");
        fs::write(fx.layout.run_dir.join("ovs-vswitchd.pid"), "1\n").unwrap();
        fs::write(fx.layout.run_dir.join("ovs-vswitchd.1.ctl"), "").unwrap();
        assert_eq!(clean(&fx.layout, &fx.proc).unwrap().len(), 2);
    }

    #[test]
    fn a_live_daemon_is_left_alone_and_refuses_the_start() {
        let fx = fixture();
        live(&fx, 200, "ovsdb-server");
        fs::write(fx.layout.run_dir.join("ovsdb-server.pid"), "200\n").unwrap();
        fs::write(fx.layout.run_dir.join("ovsdb-server.200.ctl"), "").unwrap();
        let err = clean(&fx.layout, &fx.proc).unwrap_err();
        assert!(err.to_string().contains("pid 200"), "{err}");
        assert!(fx.layout.run_dir.join("ovsdb-server.pid").exists());
        assert!(fx.layout.run_dir.join("ovsdb-server.200.ctl").exists());
    }

    #[test]
    fn garbage_pidfile_is_stale() {
        let fx = fixture();
        fs::write(fx.layout.run_dir.join("ovs-vswitchd.pid"), "not a pid").unwrap();
        assert_eq!(clean(&fx.layout, &fx.proc).unwrap().len(), 1);
    }
}
