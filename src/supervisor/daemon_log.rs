//! The daemons' output re-emitted as our log: one thread per pipe reads it line by line and
//! turns each line into a tracing event with `daemon`, `pid` and `module` fields.
//!
//! A message the daemon repeats is logged once, then counted (`repeats`); the reading thread
//! waits for the pipe no longer than the count's window, so the count is said in time.
//!
//! The reading thread must always be ready to read: a daemon blocks in its write to the pipe
//! when the pipe is full, and a blocked ovs-vswitchd forwards no traffic. So lines are read
//! whatever they hold (invalid UTF-8 is replaced, not a reason to stop reading), a line longer
//! than `MAX_LINE` is cut, and the events go to `logsink`, which never blocks.

use super::daemon::Daemon;
use super::repeats::{Out, Repeats, REPEAT_WINDOW};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

/// Longer lines are cut here (a debug-level JSON-RPC dump can be megabytes long).
pub const MAX_LINE: usize = 16 * 1024;

/// Starts the thread that forwards one pipe of `daemon` until the pipe closes.
pub fn forward(daemon: Daemon, pid: u32, pipe: OwnedFd) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(format!("log-{}", daemon.name()))
        .spawn(move || {
            let mut lines = Lines::new(File::from(pipe));
            let mut repeats = Repeats::new(REPEAT_WINDOW);
            let say = |out: Out| emit(daemon.name(), pid, &out);
            loop {
                let wait = repeats
                    .deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()));
                match lines.next(wait) {
                    Next::Line(line) => repeats.line(Instant::now(), line, say),
                    Next::Timeout => repeats.tick(Instant::now(), say),
                    Next::End => {
                        repeats.finish(say);
                        break;
                    }
                }
            }
        })
        .map(|_| ())
}

/// What `Lines::next` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Line(String),
    /// Nothing complete arrived within the timeout.
    Timeout,
    /// The pipe closed (the daemon exited) and every line was returned.
    End,
}

/// Complete lines from a pipe, each at most `MAX_LINE` bytes.
pub struct Lines<R> {
    input: R,
    buf: Vec<u8>,
    /// Inside a line already cut: skip to its end.
    skipping: bool,
    ended: bool,
}

impl<R: Read + AsFd> Lines<R> {
    pub fn new(input: R) -> Lines<R> {
        Lines {
            input,
            buf: Vec::new(),
            skipping: false,
            ended: false,
        }
    }

    /// The next line (without its newline). With a timeout, waits at most that long for it.
    pub fn next(&mut self, timeout: Option<Duration>) -> Next {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let rest = self.buf.split_off(i + 1);
                let mut line = std::mem::replace(&mut self.buf, rest);
                line.pop();
                if std::mem::take(&mut self.skipping) {
                    continue;
                }
                return Next::Line(String::from_utf8_lossy(&line).into_owned());
            }
            if self.buf.len() >= MAX_LINE {
                let mut line = std::mem::take(&mut self.buf);
                if std::mem::replace(&mut self.skipping, true) {
                    continue;
                }
                line.truncate(MAX_LINE);
                let text = String::from_utf8_lossy(&line);
                return Next::Line(format!("{text} [cut at {MAX_LINE} bytes]"));
            }
            if self.ended {
                let line = std::mem::take(&mut self.buf);
                if line.is_empty() || std::mem::take(&mut self.skipping) {
                    return Next::End;
                }
                return Next::Line(String::from_utf8_lossy(&line).into_owned());
            }
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if !readable(&self.input, left) {
                    return Next::Timeout;
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.input.read(&mut chunk) {
                Ok(0) => self.ended = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => self.ended = true,
            }
        }
    }
}

/// Whether `fd` has data (or its end) within `timeout`.
fn readable(fd: &impl AsFd, timeout: Duration) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, timeout) {
        Ok(n) => n > 0,
        // EINTR: wake the caller, who computes the timeout again.
        Err(_) => false,
    }
}

/// One daemon log line, parsed from the `%c|%p|%m` pattern.
#[derive(Debug, PartialEq, Eq)]
pub struct LogLine<'a> {
    pub module: &'a str,
    pub level: &'a str,
    pub message: &'a str,
}

pub fn parse_line(line: &str) -> Option<LogLine<'_>> {
    let mut parts = line.splitn(3, '|');
    let module = parts.next()?;
    let level = parts.next()?;
    let message = parts.next()?;
    let known = matches!(level, "EMER" | "ERR" | "WARN" | "INFO" | "DBG");
    (known && !module.contains(' ')).then_some(LogLine {
        module,
        level,
        message,
    })
}

fn emit(daemon: &str, pid: u32, out: &Out) {
    let (line, repeated) = match out {
        Out::Line(line) => (line, None),
        Out::Repeated { line, times } => (line, Some(*times)),
    };
    let Some(l) = parse_line(line) else {
        // Lines not in our pattern (a crash message from libc, say) still reach the log.
        tracing::warn!(target: "ovs", daemon, pid, "{line}");
        return;
    };
    let text = match repeated {
        None => std::borrow::Cow::Borrowed(l.message),
        Some(n) => format!("repeated {n} more times: {}", l.message).into(),
    };
    let module = l.module;
    match l.level {
        "EMER" | "ERR" => tracing::error!(target: "ovs", daemon, pid, module, repeated, "{text}"),
        "WARN" => tracing::warn!(target: "ovs", daemon, pid, module, repeated, "{text}"),
        "INFO" => tracing::info!(target: "ovs", daemon, pid, module, repeated, "{text}"),
        _ => tracing::debug!(target: "ovs", daemon, pid, module, repeated, "{text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn pipe() -> (File, File) {
        let (r, w) = nix::unistd::pipe().unwrap();
        (File::from(r), File::from(w))
    }

    #[test]
    fn parses_the_console_pattern() {
        assert_eq!(
            parse_line("bridge|INFO|ovs-vswitchd (Open vSwitch) 3.1.0"),
            Some(LogLine {
                module: "bridge",
                level: "INFO",
                message: "ovs-vswitchd (Open vSwitch) 3.1.0"
            })
        );
        let l = parse_line("netdev|WARN|a|b|c").unwrap();
        assert_eq!(l.message, "a|b|c");
        assert_eq!(parse_line("Segmentation fault"), None);
        assert_eq!(parse_line("some text|not a level|x"), None);
    }

    #[test]
    fn lines_survive_invalid_utf8_and_long_lines_are_cut() {
        let (r, mut w) = pipe();
        let mut lines = Lines::new(r);
        let writer = std::thread::spawn(move || {
            w.write_all(b"a|INFO|caf\xff\n").unwrap();
            w.write_all(&vec![b'x'; 3 * MAX_LINE]).unwrap();
            w.write_all(b"\nafter\nlast without newline").unwrap();
        });
        assert_eq!(lines.next(None), Next::Line("a|INFO|caf\u{fffd}".into()));
        match lines.next(None) {
            Next::Line(l) => {
                assert!(l.starts_with(&"x".repeat(MAX_LINE)), "{}", l.len());
                assert!(l.ends_with(" [cut at 16384 bytes]"), "{}", &l[MAX_LINE..]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(lines.next(None), Next::Line("after".into()));
        writer.join().unwrap();
        assert_eq!(lines.next(None), Next::Line("last without newline".into()));
        assert_eq!(lines.next(None), Next::End);
    }

    #[test]
    fn a_timeout_returns_without_a_line() {
        let (r, mut w) = pipe();
        let mut lines = Lines::new(r);
        w.write_all(b"half").unwrap();
        let started = std::time::Instant::now();
        assert_eq!(lines.next(Some(Duration::from_millis(50))), Next::Timeout);
        assert!(started.elapsed() >= Duration::from_millis(40));
        w.write_all(b" done\n").unwrap();
        assert_eq!(
            lines.next(Some(Duration::from_secs(5))),
            Next::Line("half done".into())
        );
        drop(w);
        assert_eq!(lines.next(Some(Duration::from_secs(5))), Next::End);
    }
}
