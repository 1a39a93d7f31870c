//! Capability decisions: what each missing capability means for this run, and the flag that
//! grants it. Pure over a set of capabilities, so every case is tested without privileges.

use caps::{CapSet, Capability, CapsHashSet};

/// What the process holds, read once.
#[derive(Debug, Clone, Default)]
pub struct Privileges {
    pub effective: CapsHashSet,
    /// RLIMIT_MEMLOCK is unlimited, so --mlockall works even without CAP_IPC_LOCK.
    pub memlock_unlimited: bool,
}

impl Privileges {
    pub fn read() -> Result<Self, String> {
        let effective = caps::read(None, CapSet::Effective)
            .map_err(|e| format!("failed to read the effective capability set: {e}"))?;
        let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_MEMLOCK)
            .map_err(|e| format!("failed to read RLIMIT_MEMLOCK: {e}"))?;
        Ok(Self {
            effective,
            memlock_unlimited: soft == nix::sys::resource::RLIM_INFINITY,
        })
    }

    pub fn has(&self, cap: Capability) -> bool {
        self.effective.contains(&cap)
    }

    /// Whether ovs-vswitchd's `--mlockall` can succeed.
    pub fn can_lock_memory(&self) -> bool {
        self.has(Capability::CAP_IPC_LOCK) || self.memlock_unlimited
    }
}

/// The container flag that grants a capability: `CAP_NET_ADMIN` -> `--cap-add NET_ADMIN`.
pub fn flag_for(cap: Capability) -> String {
    let name = cap.to_string();
    format!("--cap-add {}", name.trim_start_matches("CAP_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(caps: &[Capability]) -> Privileges {
        Privileges {
            effective: caps.iter().copied().collect(),
            memlock_unlimited: false,
        }
    }

    #[test]
    fn flags_name_the_docker_option() {
        assert_eq!(flag_for(Capability::CAP_NET_ADMIN), "--cap-add NET_ADMIN");
        assert_eq!(flag_for(Capability::CAP_SYS_MODULE), "--cap-add SYS_MODULE");
        assert_eq!(flag_for(Capability::CAP_IPC_LOCK), "--cap-add IPC_LOCK");
    }

    #[test]
    fn memory_locking_needs_ipc_lock_or_unlimited_memlock() {
        assert!(!with(&[]).can_lock_memory());
        assert!(with(&[Capability::CAP_IPC_LOCK]).can_lock_memory());
        let mut unlimited = with(&[]);
        unlimited.memlock_unlimited = true;
        assert!(unlimited.can_lock_memory());
    }
}
