//! The modes of what the supervisor and the daemons create in run_dir and db_dir, set
//! explicitly: under `umask 000` (issue 13) run_dir and db_dir came out 0777 and system-id.conf,
//! the pidfiles and the addresses record 0666, writable by any user of the host.

use nix::sys::stat::Mode;
use std::path::Path;

/// db.sock, pidfiles, control sockets: other users' tools (ovs-vsctl of a monitoring agent)
/// must reach them.
pub const RUN_DIR_MODE: u32 = 0o755;
/// conf.db, system-id.conf, backups.
pub const DB_DIR_MODE: u32 = 0o750;

/// Keeps group and others from writing what we and our children create: the umask gets
/// 022 added (a stricter umask is kept). The daemons inherit it, so their pidfiles and sockets
/// follow too.
pub fn tighten_umask() {
    let wanted = Mode::S_IWGRP | Mode::S_IWOTH;
    let old = nix::sys::stat::umask(wanted);
    let new = old | wanted;
    nix::sys::stat::umask(new);
    if old != new {
        tracing::info!(
            umask = format!("{:03o}", old.bits()),
            now = format!("{:03o}", new.bits()),
            "the umask let others write our files: tightened"
        );
    }
}

/// Creates `dir` and its missing parents; `dir` itself gets `mode` when it is created here (an
/// existing directory, a bind mount say, keeps its own).
pub fn create_dir(dir: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_directory_gets_its_mode_and_an_old_one_keeps_its_own() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/run");
        create_dir(&dir, 0o755).unwrap();
        assert_eq!(mode(&dir), 0o755);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        create_dir(&dir, 0o755).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let file = tmp.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(create_dir(&file, 0o755).is_err());
    }
}
