//! Repeats of one daemon message, counted instead of logged (issue 12: the in-band "cannot
//! find route for controller" warning came 71 times in 70 s). Pure: the caller passes the time.
//!
//! The key is the whole line in our console pattern `%c|%p|%m`: module, level and text (the
//! pattern carries no sequence number or time stamp to strip). The first occurrence passes;
//! "repeated N more times" comes when another message arrives or `REPEAT_WINDOW` after the
//! first. Errors (ERR, EMER) and lines outside the pattern (a crash message) always pass.

use super::daemon_log::parse_line;
use std::time::{Duration, Instant};

/// How long repeats of a message are counted before their number is said.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(30);

/// What to log for a daemon line.
#[derive(Debug, PartialEq, Eq)]
pub enum Out {
    Line(String),
    /// `line` came `times` more times after it was logged.
    Repeated {
        line: String,
        times: u64,
    },
}

/// Collapses repeats of one line.
#[derive(Debug)]
pub struct Repeats {
    window: Duration,
    last: Option<Last>,
}

#[derive(Debug)]
struct Last {
    line: String,
    until: Instant,
    times: u64,
}

impl Repeats {
    pub fn new(window: Duration) -> Repeats {
        Repeats { window, last: None }
    }

    /// When `tick` has something to say.
    pub fn deadline(&self) -> Option<Instant> {
        self.last.as_ref().map(|l| l.until)
    }

    pub fn line(&mut self, now: Instant, line: String, mut say: impl FnMut(Out)) {
        self.tick(now, &mut say);
        if let Some(last) = self.last.as_mut().filter(|l| l.line == line) {
            last.times += 1;
            return;
        }
        self.finish(&mut say);
        if collapsible(&line) {
            self.last = Some(Last {
                line: line.clone(),
                until: now + self.window,
                times: 0,
            });
        }
        say(Out::Line(line));
    }

    /// Ends the window once its time is up.
    pub fn tick(&mut self, now: Instant, say: impl FnMut(Out)) {
        if self.last.as_ref().is_some_and(|l| now >= l.until) {
            self.finish(say);
        }
    }

    /// Says how often the last line came again, if it did.
    pub fn finish(&mut self, mut say: impl FnMut(Out)) {
        if let Some(last) = self.last.take().filter(|l| l.times > 0) {
            say(Out::Repeated {
                line: last.line,
                times: last.times,
            });
        }
    }
}

/// Errors and lines outside the pattern are never collapsed.
fn collapsible(line: &str) -> bool {
    parse_line(line).is_some_and(|l| !matches!(l.level, "EMER" | "ERR"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collapse(window: u64, lines: &[(u64, &str)], end: Option<u64>) -> Vec<Out> {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut out = Vec::new();
        let mut r = Repeats::new(Duration::from_secs(window));
        for (t, line) in lines {
            r.line(at(*t), line.to_string(), |o| out.push(o));
        }
        match end {
            Some(t) => r.tick(at(t), |o| out.push(o)),
            None => r.finish(|o| out.push(o)),
        }
        out
    }

    fn line(s: &str) -> Out {
        Out::Line(s.into())
    }

    fn repeated(s: &str, times: u64) -> Out {
        Out::Repeated {
            line: s.into(),
            times,
        }
    }

    const ROUTE: &str = "in_band|WARN|cannot find route for controller (192.0.2.1)";

    #[test]
    fn repeats_are_counted_and_said_when_another_message_comes() {
        let other = "bridge|INFO|bridge br0: added interface p1 on port 1";
        let lines = [(0, ROUTE), (1, ROUTE), (2, ROUTE), (3, other), (4, ROUTE)];
        assert_eq!(
            collapse(30, &lines, None),
            [line(ROUTE), repeated(ROUTE, 2), line(other), line(ROUTE)]
        );
    }

    #[test]
    fn a_window_ends_on_time_and_the_next_repeat_starts_another() {
        let lines: Vec<(u64, &str)> = (0..71).map(|t| (t, ROUTE)).collect();
        assert_eq!(
            collapse(30, &lines, None),
            [
                line(ROUTE),
                repeated(ROUTE, 29),
                line(ROUTE),
                repeated(ROUTE, 29),
                line(ROUTE),
                repeated(ROUTE, 10)
            ]
        );
        // A tick at the window's end says it without waiting for another line.
        assert_eq!(
            collapse(30, &[(0, ROUTE), (5, ROUTE)], Some(30)),
            [line(ROUTE), repeated(ROUTE, 1)]
        );
        assert_eq!(collapse(30, &[(0, ROUTE)], Some(30)), [line(ROUTE)]);
    }

    #[test]
    fn errors_and_lines_outside_the_pattern_are_never_collapsed() {
        let err = "netdev|ERR|failed to open";
        let emer = "util|EMER|assertion failed";
        let crash = "Segmentation fault";
        let lines = [
            (0, err),
            (0, err),
            (0, emer),
            (0, emer),
            (0, crash),
            (0, crash),
        ];
        assert_eq!(
            collapse(30, &lines, None),
            [
                line(err),
                line(err),
                line(emer),
                line(emer),
                line(crash),
                line(crash)
            ]
        );
    }

    #[test]
    fn the_same_text_at_another_level_or_module_is_another_message() {
        let a = "bridge|WARN|x";
        let b = "bridge|INFO|x";
        let c = "netdev|WARN|x";
        assert_eq!(
            collapse(30, &[(0, a), (0, b), (0, c), (0, c)], None),
            [line(a), line(b), line(c), repeated(c, 1)]
        );
    }
}
