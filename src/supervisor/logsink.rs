//! Where every log line of the appliance goes (its own events and the daemons' re-emitted
//! lines): a queue bounded in lines and bytes, drained to stdout (or stderr) by one thread, so
//! no thread that logs ever waits on whoever reads our output.
//!
//! Why (issue 13): with blocking writes, a reader of stdout that stalled (Docker's blocking log
//! mode with a slow driver, a pipe to a stuck process) blocked the thread forwarding
//! ovs-vswitchd's stderr, then ovs-vswitchd itself in a write to that pipe (it stopped answering
//! `version` and forwarding control traffic), and the supervisor's runtime in its next log call
//! (`/healthz` went silent). Now a full queue drops the line and counts it: a warning says how
//! many were lost when output resumes, and `ovs_appliance_log_lines_dropped_total` counts them
//! all. Error events have a reserve beyond the limits, so they are the last to go.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How much the queue holds before it drops lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub lines: usize,
    pub bytes: usize,
}

impl Limits {
    /// About a minute of ovs-vswitchd at debug level under load, and a burst of 10,000 ports
    /// being added at info level, with little memory at stake.
    pub const DEFAULT: Limits = Limits {
        lines: 16_384,
        bytes: 4 << 20,
    };
}

/// Lines dropped by every sink of this process, for the metric.
static DROPPED_TOTAL: AtomicU64 = AtomicU64::new(0);

/// Log lines dropped so far because the output did not keep up (or failed).
pub fn lines_dropped_total() -> u64 {
    DROPPED_TOTAL.load(Ordering::Relaxed)
}

thread_local! {
    /// Set on the writer thread: its own lines (the drop report) are never dropped, and there is
    /// one at a time, so they cannot grow the queue without bound.
    static WRITER_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// How a line may use the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Room {
    /// Up to the limits.
    Normal,
    /// Up to the limits plus a quarter: errors outlast everything else.
    Reserve,
}

#[derive(Default)]
struct Queue {
    lines: VecDeque<Vec<u8>>,
    bytes: usize,
    /// Dropped since the last report.
    unreported: u64,
    /// The writer holds a batch it has not finished writing.
    writing: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a line or a report is waiting.
    more: Condvar,
    /// Signalled when the writer finished a batch.
    written: Condvar,
    limits: Limits,
    dropped: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding this lock leaves the queue consistent (pushes and pops are
        // single steps): keep logging.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, line: Vec<u8>, room: Room) {
        if line.is_empty() {
            return;
        }
        let (max_lines, max_bytes) = match room {
            Room::Normal => (self.limits.lines, self.limits.bytes),
            Room::Reserve => (
                self.limits.lines + self.limits.lines / 4,
                self.limits.bytes + self.limits.bytes / 4,
            ),
        };
        let unlimited = WRITER_THREAD.with(Cell::get);
        let mut q = self.lock();
        let fits = q.lines.len() < max_lines && q.bytes + line.len() <= max_bytes;
        if unlimited || fits {
            q.bytes += line.len();
            q.lines.push_back(line);
            drop(q);
            self.more.notify_one();
        } else {
            q.unreported += 1;
            drop(q);
            self.count_dropped(1);
        }
    }

    fn count_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        DROPPED_TOTAL.fetch_add(n, Ordering::Relaxed);
    }
}

/// What the writer thread calls when lines were dropped, with their number, after it wrote what
/// was queued before them. It runs on the writer thread, whose lines are never dropped.
pub type Report = Box<dyn Fn(&LogSink, u64) + Send>;

/// The default report: a warning through tracing, so it has the format of every other line.
pub fn report_with_tracing() -> Report {
    Box::new(|_, n| {
        tracing::warn!(
            dropped = n,
            total = lines_dropped_total(),
            "dropped {n} log lines: the reader of the appliance's output did not keep up"
        )
    })
}

/// The sending side: a tracing `MakeWriter`, cheap to clone.
#[derive(Clone)]
pub struct LogSink {
    shared: Arc<Shared>,
}

/// Waits, when dropped, for what is queued to be written (briefly: a stalled reader must not
/// keep the process from exiting).
pub struct FlushGuard {
    shared: Arc<Shared>,
    timeout: Duration,
}

impl LogSink {
    /// Starts the writer thread on `out`.
    pub fn start<W: Write + Send + 'static>(
        out: W,
        limits: Limits,
        report: Report,
    ) -> std::io::Result<(LogSink, FlushGuard)> {
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            more: Condvar::new(),
            written: Condvar::new(),
            limits,
            dropped: AtomicU64::new(0),
        });
        let sink = LogSink {
            shared: shared.clone(),
        };
        let writer = sink.clone();
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer.drain(out, report))?;
        let guard = FlushGuard {
            shared,
            timeout: Duration::from_secs(2),
        };
        Ok((sink, guard))
    }

    /// Queues one complete line (with its newline), or drops and counts it when full.
    pub fn push(&self, line: Vec<u8>) {
        self.shared.push(line, Room::Normal);
    }

    /// Lines this sink dropped.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// The writer thread: writes batches, reports drops after the lines queued before them.
    fn drain<W: Write>(&self, mut out: W, report: Report) {
        WRITER_THREAD.with(|w| w.set(true));
        let shared = &self.shared;
        loop {
            let (batch, unreported) = {
                let mut q = shared.lock();
                while q.lines.is_empty() && q.unreported == 0 {
                    q = shared.more.wait(q).unwrap_or_else(|e| e.into_inner());
                }
                q.bytes = 0;
                q.writing = true;
                (
                    std::mem::take(&mut q.lines),
                    std::mem::take(&mut q.unreported),
                )
            };
            let mut buf = Vec::with_capacity(batch.iter().map(Vec::len).sum());
            for line in &batch {
                buf.extend_from_slice(line);
            }
            if out.write_all(&buf).and_then(|()| out.flush()).is_err() {
                // Nobody can read a report about it either (EPIPE stays): count only.
                shared.count_dropped(batch.len() as u64);
            }
            shared.lock().writing = false;
            shared.written.notify_all();
            if unreported > 0 {
                report(self, unreported);
            }
        }
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        let deadline = Instant::now() + self.timeout;
        let mut q = self.shared.lock();
        while !q.lines.is_empty() || q.writing {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            q = match self.shared.written.wait_timeout(q, left) {
                Ok((q, _)) => q,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

/// One event's text, pushed as one line when tracing drops the writer.
pub struct LineWriter<'a> {
    sink: &'a LogSink,
    buf: Vec<u8>,
    room: Room,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        let line = std::mem::take(&mut self.buf);
        self.sink.shared.push(line, self.room);
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSink {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            sink: self,
            buf: Vec::new(),
            room: Room::Normal,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        let room = if *meta.level() == tracing::Level::ERROR {
            Room::Reserve
        } else {
            Room::Normal
        };
        LineWriter {
            sink: self,
            buf: Vec::new(),
            room,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// An output that writes nothing until the test opens its gate, then collects everything.
    #[derive(Clone, Default)]
    struct Gated {
        open: Arc<(Mutex<bool>, Condvar)>,
        text: Arc<Mutex<Vec<u8>>>,
    }

    impl Gated {
        fn open(&self) {
            *self.open.0.lock().unwrap() = true;
            self.open.1.notify_all();
        }
        fn text(&self) -> String {
            String::from_utf8(self.text.lock().unwrap().clone()).unwrap()
        }
    }

    impl Write for Gated {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            let (open, cv) = &*self.open;
            let mut g = open.lock().unwrap();
            while !*g {
                g = cv.wait(g).unwrap();
            }
            self.text.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn report_as_text() -> Report {
        Box::new(|sink, n| sink.push(format!("dropped {n}\n").into_bytes()))
    }

    fn line(i: usize) -> Vec<u8> {
        format!("line {i}\n").into_bytes()
    }

    #[test]
    fn a_stalled_output_never_blocks_a_writer_and_drops_are_reported_where_they_happened() {
        let out = Gated::default();
        let limits = Limits {
            lines: 10,
            bytes: 1 << 20,
        };
        let (sink, _guard) = LogSink::start(out.clone(), limits, report_as_text()).unwrap();
        // The writer thread takes the first line and blocks in write: ten more fit the queue.
        sink.push(line(0));
        wait_until(|| sink.shared.lock().writing);
        let (done_tx, done_rx) = mpsc::channel();
        let pusher = sink.clone();
        std::thread::spawn(move || {
            for i in 1..=1000 {
                pusher.push(line(i));
            }
            done_tx.send(()).unwrap();
        });
        done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("pushes returned while the output was stalled");
        assert_eq!(sink.dropped(), 990);
        out.open();
        wait_until(|| out.text().contains("dropped"));
        sink.push(line(1001));
        wait_until(|| out.text().contains("line 1001\n"));
        let mut expected: String = (0..=10).map(|i| format!("line {i}\n")).collect();
        expected.push_str("dropped 990\nline 1001\n");
        assert_eq!(out.text(), expected);
        assert!(lines_dropped_total() >= 990);
    }

    #[test]
    fn the_byte_limit_holds_and_errors_have_a_reserve() {
        let out = Gated::default();
        let limits = Limits {
            lines: 1000,
            bytes: 100,
        };
        let (sink, _guard) = LogSink::start(out.clone(), limits, report_as_text()).unwrap();
        sink.push(b"first\n".to_vec());
        wait_until(|| sink.shared.lock().writing);
        sink.push(vec![b'a'; 60]);
        sink.push(vec![b'b'; 60]);
        assert_eq!(sink.dropped(), 1, "60 + 60 bytes > 100");
        sink.shared.push(vec![b'c'; 60], Room::Reserve);
        assert_eq!(
            sink.dropped(),
            1,
            "an error may use the reserve (125 bytes)"
        );
        sink.shared.push(vec![b'd'; 10], Room::Reserve);
        assert_eq!(sink.dropped(), 2, "the reserve is bounded too");
        out.open();
        wait_until(|| out.text().contains("dropped 2\n"));
        let text = out.text();
        assert!(text.contains(&"c".repeat(60)), "{text}");
        assert!(!text.contains("bbb") && !text.contains("ddd"), "{text}");
    }

    #[test]
    fn the_guard_waits_for_queued_lines_but_not_for_ever() {
        let out = Gated::default();
        out.open();
        let (sink, guard) = LogSink::start(out.clone(), Limits::DEFAULT, report_as_text()).unwrap();
        for i in 0..100 {
            sink.push(line(i));
        }
        drop(guard);
        assert!(out.text().ends_with("line 99\n"), "{}", out.text());

        let stalled = Gated::default();
        let (sink, mut guard) =
            LogSink::start(stalled.clone(), Limits::DEFAULT, report_as_text()).unwrap();
        guard.timeout = Duration::from_millis(200);
        sink.push(line(0));
        let started = Instant::now();
        drop(guard);
        assert!(started.elapsed() < Duration::from_secs(2));
        stalled.open();
    }

    #[test]
    fn tracing_events_become_one_line_each() {
        let out = Gated::default();
        out.open();
        let (sink, guard) = LogSink::start(out.clone(), Limits::DEFAULT, report_as_text()).unwrap();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(sink.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(daemon = "ovs-vswitchd", "hello");
            tracing::error!("bad");
        });
        drop(guard);
        let text = out.text();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("INFO") && text.contains("hello") && text.contains("ERROR"));
    }

    fn wait_until(mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
