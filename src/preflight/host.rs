//! The environment around the process: the tun device, the network namespace, OVS binaries.

use std::path::{Path, PathBuf};

/// The OVS programs the appliance runs; all must be on PATH.
pub const OVS_BINARIES: &[&str] = &["ovsdb-server", "ovs-vswitchd", "ovsdb-tool"];

/// Finds `program` in the directories of `path_var` (a PATH value).
pub fn which(program: &str, path_var: &str) -> Option<PathBuf> {
    std::env::split_paths(path_var)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The OVS binaries missing from `path_var`.
pub fn missing_binaries(path_var: &str) -> Vec<&'static str> {
    OVS_BINARIES
        .iter()
        .copied()
        .filter(|b| which(b, path_var).is_none())
        .collect()
}

/// Whether the tun device exists as a character device.
pub fn tun_present(dev: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(dev.join("net/tun"))
        .map(|m| m.file_type().is_char_device())
        .unwrap_or(false)
}

/// Why the process seems not to share the host's network namespace, if it seems so.
///
/// When we are not PID 1 of our PID namespace, PID 1's netns is compared with ours (a plain
/// process in its own namespace, as in tests). As PID 1 of a container there is nothing to compare
/// with (and some sandboxes hide PID 1's link), so we look at the devices instead: a Docker bridge network gives `lo` and one veth
/// (`eth0`, whose peer lives elsewhere: iflink != ifindex) and nothing else.
pub fn private_netns_reason(proc_root: &Path, sys_root: &Path) -> Option<String> {
    if std::process::id() != 1 {
        let ours = std::fs::read_link(proc_root.join("self/ns/net"));
        let init = std::fs::read_link(proc_root.join("1/ns/net"));
        // PID 1's link is unreadable from some sandboxes: then the devices decide.
        if let (Ok(ours), Ok(init)) = (ours, init) {
            return (ours != init).then(|| {
                format!(
                    "this process's network namespace ({}) is not PID 1's ({})",
                    ours.display(),
                    init.display()
                )
            });
        }
    }
    let devices = net_devices(sys_root)?;
    let others: Vec<&NetDevice> = devices.iter().filter(|d| d.name != "lo").collect();
    let looks_private = others.len() <= 1 && others.iter().all(|d| d.peer_elsewhere);
    looks_private.then(|| {
        let names: Vec<&str> = others.iter().map(|d| d.name.as_str()).collect();
        format!(
            "only loopback and {} are visible, as in a container's own network",
            if names.is_empty() {
                "nothing else".to_string()
            } else {
                names.join(", ")
            }
        )
    })
}

struct NetDevice {
    name: String,
    peer_elsewhere: bool,
}

fn net_devices(sys_root: &Path) -> Option<Vec<NetDevice>> {
    let read = |dir: &Path, file: &str| std::fs::read_to_string(dir.join(file)).ok();
    let entries = std::fs::read_dir(sys_root.join("class/net")).ok()?;
    Some(
        entries
            .flatten()
            .map(|entry| {
                let dir = entry.path();
                let ifindex = read(&dir, "ifindex");
                let iflink = read(&dir, "iflink");
                NetDevice {
                    name: entry.file_name().to_string_lossy().into_owned(),
                    peer_elsewhere: ifindex.is_some() && ifindex != iflink,
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn which_finds_only_executables() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("ovsdb-tool");
        fs::write(&exe, "#!/bin/sh\n").unwrap();
        let path_var = dir.path().to_str().unwrap();
        assert!(
            which("ovsdb-tool", path_var).is_none(),
            "not executable yet"
        );
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(which("ovsdb-tool", path_var), Some(exe));
        assert_eq!(
            missing_binaries(path_var),
            vec!["ovsdb-server", "ovs-vswitchd"]
        );
    }

    #[test]
    fn tun_must_be_a_char_device() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!tun_present(dir.path()));
        fs::create_dir_all(dir.path().join("net")).unwrap();
        fs::write(dir.path().join("net/tun"), "").unwrap();
        assert!(!tun_present(dir.path()), "a regular file is not the device");
        assert!(tun_present(Path::new("/dev")) == Path::new("/dev/net/tun").exists());
    }

    fn fake_dev(sys: &Path, name: &str, ifindex: u32, iflink: u32) {
        let dir = sys.join("class/net").join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("ifindex"), format!("{ifindex}\n")).unwrap();
        fs::write(dir.join("iflink"), format!("{iflink}\n")).unwrap();
    }

    #[test]
    fn device_heuristic_spots_a_bridge_network() {
        let dir = tempfile::tempdir().unwrap();
        fake_dev(dir.path(), "lo", 1, 1);
        fake_dev(dir.path(), "eth0", 7, 8);
        let devices = net_devices(dir.path()).unwrap();
        let others: Vec<_> = devices.iter().filter(|d| d.name != "lo").collect();
        assert_eq!(others.len(), 1);
        assert!(others[0].peer_elsewhere);
        fake_dev(dir.path(), "enp1s0", 2, 2);
        let devices = net_devices(dir.path()).unwrap();
        assert!(devices
            .iter()
            .any(|d| d.name == "enp1s0" && !d.peer_elsewhere));
    }
}
