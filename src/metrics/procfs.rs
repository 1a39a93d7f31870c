//! CPU time, resident memory, open descriptors and start time of a process, from
//! `<proc>/<pid>/stat` and `<proc>/<pid>/fd` (proc(5)). The /proc root is injected so tests
//! use a fake tree.

use std::path::Path;

/// One process's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcStats {
    /// utime + stime.
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub open_fds: u64,
    /// Clock ticks after boot at which the process started (field 22 of stat).
    pub start_ticks: u64,
}

/// The fields of `/proc/<pid>/stat` we use: utime, stime, starttime (ticks) and rss (pages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub utime: u64,
    pub stime: u64,
    pub starttime: u64,
    pub rss_pages: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may hold
/// spaces and parentheses itself, so fields are counted after the last ')'.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = text.get(text.rfind(')')? + 1..)?;
    // rest starts at field 3 (state): field n is at index n - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        starttime: field(22)?,
        rss_pages: field(24)?,
    })
}

/// Kernel constants the figures are scaled with.
#[derive(Debug, Clone, Copy)]
pub struct Units {
    pub ticks_per_second: u64,
    pub page_size: u64,
}

impl Units {
    pub fn of_this_host() -> Units {
        use nix::unistd::{sysconf, SysconfVar};
        let get = |v, default| {
            sysconf(v)
                .ok()
                .flatten()
                .and_then(|n| u64::try_from(n).ok())
                .filter(|n| *n > 0)
                .unwrap_or(default)
        };
        Units {
            ticks_per_second: get(SysconfVar::CLK_TCK, 100),
            page_size: get(SysconfVar::PAGE_SIZE, 4096),
        }
    }
}

/// Reads `pid` (or "self") under `proc_root`.
pub fn read(proc_root: &Path, pid: &str, units: Units) -> std::io::Result<ProcStats> {
    let dir = proc_root.join(pid);
    let text = std::fs::read_to_string(dir.join("stat"))?;
    let stat = parse_stat(&text).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unexpected {}", dir.join("stat").display()),
        )
    })?;
    let open_fds = std::fs::read_dir(dir.join("fd"))?.count() as u64;
    Ok(ProcStats {
        cpu_seconds: (stat.utime + stat.stime) as f64 / units.ticks_per_second as f64,
        resident_bytes: stat.rss_pages * units.page_size,
        open_fds,
        start_ticks: stat.starttime,
    })
}

/// Boot time in seconds since the epoch, from the `btime` line of `<proc>/stat`.
pub fn boot_time(proc_root: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(proc_root.join("stat")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (ovs-vswitchd) S 1 4242 4242 0 -1 4194560 9000 0 0 0 150 50 0 0 10 -10 \
                        8 0 12345 606116 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn parses_stat_fields() {
        let s = parse_stat(STAT).unwrap();
        assert_eq!(
            s,
            Stat {
                utime: 150,
                stime: 50,
                starttime: 12345,
                rss_pages: 2000
            }
        );
        // A command name with spaces and parentheses does not shift the fields.
        let odd = STAT.replace("(ovs-vswitchd)", "(a) b (c)");
        assert_eq!(parse_stat(&odd), Some(s));
        assert_eq!(parse_stat("1 (x) S 1"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn reads_a_fake_proc_tree() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("4242");
        std::fs::create_dir_all(p.join("fd")).unwrap();
        std::fs::write(p.join("stat"), STAT).unwrap();
        for fd in ["0", "1", "2"] {
            std::fs::write(p.join("fd").join(fd), "").unwrap();
        }
        std::fs::write(dir.path().join("stat"), "cpu 1 2 3\nbtime 1700000000\n").unwrap();
        let units = Units {
            ticks_per_second: 100,
            page_size: 4096,
        };
        let got = read(dir.path(), "4242", units).unwrap();
        assert_eq!(got.cpu_seconds, 2.0);
        assert_eq!(got.resident_bytes, 2000 * 4096);
        assert_eq!(got.open_fds, 3);
        assert_eq!(boot_time(dir.path()), Some(1_700_000_000));
        assert!(read(dir.path(), "1", units).is_err());
    }

    #[test]
    fn reads_itself() {
        let me = read(Path::new("/proc"), "self", Units::of_this_host()).unwrap();
        assert!(me.resident_bytes > 0 && me.open_fds > 0);
    }
}
