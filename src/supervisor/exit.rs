//! How a child ended, decoded from waitpid, and described the way a shell would.

use nix::sys::wait::WaitStatus;
use std::fmt;

/// The end of a child process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called exit with this code.
    Code(i32),
    /// A signal ended it (its number).
    Signal(i32),
}

impl ExitStatus {
    /// Decodes a waitpid result; `None` for stops and continues, which are not an end.
    pub fn from_wait(status: WaitStatus) -> Option<Self> {
        match status {
            WaitStatus::Exited(_, code) => Some(Self::Code(code)),
            WaitStatus::Signaled(_, signal, _) => Some(Self::Signal(signal as i32)),
            _ => None,
        }
    }

    /// The status a shell reports: the code, or 128 + the signal number.
    pub fn shell_code(self) -> i32 {
        match self {
            Self::Code(code) => code,
            Self::Signal(signal) => 128 + signal,
        }
    }

    pub fn success(self) -> bool {
        self == Self::Code(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Code(code) => write!(f, "exited with status {code}"),
            Self::Signal(signal) => {
                let name = nix::sys::signal::Signal::try_from(signal)
                    .map(|s| s.as_str())
                    .unwrap_or("unknown signal");
                write!(f, "killed by {name} (signal {signal})")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::unistd::Pid;

    #[test]
    fn decodes_exit_and_signal() {
        let pid = Pid::from_raw(42);
        assert_eq!(
            ExitStatus::from_wait(WaitStatus::Exited(pid, 3)),
            Some(ExitStatus::Code(3))
        );
        let killed = WaitStatus::Signaled(pid, Signal::SIGKILL, false);
        assert_eq!(ExitStatus::from_wait(killed), Some(ExitStatus::Signal(9)));
        assert_eq!(ExitStatus::from_wait(WaitStatus::StillAlive), None);
        assert_eq!(
            ExitStatus::from_wait(WaitStatus::Stopped(pid, Signal::SIGSTOP)),
            None
        );
    }

    #[test]
    fn shell_codes_follow_128_plus_signal() {
        assert_eq!(ExitStatus::Code(0).shell_code(), 0);
        assert_eq!(ExitStatus::Code(77).shell_code(), 77);
        assert_eq!(ExitStatus::Signal(9).shell_code(), 137);
        assert_eq!(ExitStatus::Signal(15).shell_code(), 143);
        assert!(ExitStatus::Code(0).success());
        assert!(!ExitStatus::Signal(15).success());
    }

    #[test]
    fn describes_signals_by_name() {
        assert_eq!(
            ExitStatus::Signal(9).to_string(),
            "killed by SIGKILL (signal 9)"
        );
        assert_eq!(ExitStatus::Code(1).to_string(), "exited with status 1");
    }
}
