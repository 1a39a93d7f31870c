//! The open-file limit the daemons inherit. ovs-vswitchd needs about three descriptors per
//! bridge and one per handler thread for each port (ovs-ctl's own estimate), and aborts when it
//! runs out: under `ulimit -n 64` with 200 ports it died of SIGABRT in a loop. ovs-ctl raises the
//! soft limit to 65535; so does the appliance, as far as the hard limit allows (raising the soft
//! limit needs no privilege), and it says so when even the hard limit is too low.

use super::{Finding, Level};
use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// The soft limit ovs-ctl sets.
pub const TARGET: u64 = 65535;

/// RLIMIT_NOFILE as (soft, hard).
pub type Limit = (u64, u64);

/// Raises the soft limit toward [`TARGET`], never above the hard one. Returns the limit before
/// and after (equal when nothing needed raising or it could not be raised).
pub fn raise() -> nix::Result<(Limit, Limit)> {
    let before = getrlimit(Resource::RLIMIT_NOFILE)?;
    let want = raised(before);
    if want != before {
        setrlimit(Resource::RLIMIT_NOFILE, want.0, want.1)?;
    }
    Ok((before, getrlimit(Resource::RLIMIT_NOFILE)?))
}

/// The limit `raise` aims for from `now`.
pub fn raised((soft, hard): Limit) -> Limit {
    (soft.max(TARGET.min(hard)), hard)
}

/// Descriptors ovs-vswitchd needs for `bridges` bridges and `ports` ports (bond members and each
/// bridge's own port counted) with `cpus` handler threads, plus room for the control and OVSDB
/// connections and what the datapath opens.
pub fn needed(bridges: usize, ports: usize, cpus: usize) -> u64 {
    let per_port = cpus.max(1) as u64 + 2;
    256 + 3 * bridges as u64 + per_port * ports as u64
}

/// [`needed`] for the bridges and ports `config` names, with this machine's CPUs.
pub fn needed_for(config: &crate::config::Config) -> u64 {
    let ports: usize = config
        .bridges
        .iter()
        .map(|b| {
            1 + b
                .ports
                .iter()
                .map(|p| p.interfaces.len().max(1))
                .sum::<usize>()
        })
        .sum();
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    needed(config.bridges.len(), ports, cpus)
}

/// The report line for a limit that went from `before` to `after`, for `need` descriptors.
pub fn finding(before: Limit, after: Limit, need: u64) -> Finding {
    let raised = if after.0 > before.0 {
        format!(" (raised from {})", before.0)
    } else {
        String::new()
    };
    if after.0 >= need {
        return Finding {
            level: Level::Ok,
            message: format!(
                "open files: limit {}{raised}, hard {}; the configured ports need about {need}",
                after.0, after.1
            ),
        };
    }
    Finding {
        level: Level::Warn,
        message: format!(
            "open files: limit {}{raised} and hard limit {} are below the ~{need} ovs-vswitchd needs \
             for the configured ports: it will abort when it runs out (docker run --ulimit \
             nofile={TARGET}:{TARGET}, compose `ulimits: nofile: {TARGET}`, systemd \
             LimitNOFILE={TARGET})",
            after.0, after.1
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_65535_or_the_hard_limit() {
        assert_eq!(raised((64, 4096)), (4096, 4096));
        assert_eq!(raised((1024, 1_048_576)), (TARGET, 1_048_576));
        assert_eq!(raised((64, 64)), (64, 64), "the hard limit is the ceiling");
        assert_eq!(
            raised((200_000, 1_048_576)),
            (200_000, 1_048_576),
            "never lowered"
        );
    }

    #[test]
    fn too_low_a_limit_is_a_warning_naming_the_flag() {
        let need = needed(1, 201, 2);
        assert!(need > 64 && need < 4096, "{need}");
        let low = finding((64, 64), (64, 64), need);
        assert_eq!(low.level, Level::Warn);
        assert!(
            low.message.contains("--ulimit nofile=65535:65535"),
            "{}",
            low.message
        );
        let ok = finding((64, 4096), (4096, 4096), need);
        assert_eq!(ok.level, Level::Ok);
        assert!(ok.message.contains("raised from 64"), "{}", ok.message);
    }
}
