//! JSON-RPC 1.0 over a unix stream, as OVS speaks it (RFC 7047 section 4): one background task
//! owns the socket, matches replies to requests by id, answers the peer's echo requests, and routes
//! notifications (monitor updates, lock events) to subscribers.
//!
//! Used by the OVSDB [`Client`](super::Client) and by [`crate::unixctl::Conn`]. It knows nothing
//! of databases; the callers give meaning to methods and params.

use std::collections::HashMap;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot, watch};

use super::framing::{FrameError, Framer, DEFAULT_MAX_VALUE_BYTES};

/// The most bytes queued for a peer that does not read them. Past this the connection is
/// dropped: a peer that sent echo requests and never read the replies grew our queue by 236 MB
/// in 5 s (issue 14). As large as the largest message we accept, so no transaction we could
/// send is refused for its size alone.
pub(crate) const MAX_QUEUED_OUT: usize = DEFAULT_MAX_VALUE_BYTES;

/// A notification (a request with a null id) from the peer.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub method: String,
    pub params: Vec<Value>,
}

/// Which notifications a subscriber receives: those whose method is in the kind's family and whose
/// first param equals `id` (the monitor id for updates, the lock name for lock events).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RouteKey {
    kind: &'static str,
    id: String,
}

impl RouteKey {
    pub(crate) fn monitor(id: &Value) -> RouteKey {
        RouteKey {
            kind: "monitor",
            id: id.to_string(),
        }
    }

    pub(crate) fn lock(name: &str) -> RouteKey {
        RouteKey {
            kind: "lock",
            id: Value::from(name).to_string(),
        }
    }

    fn of(n: &Notification) -> Option<RouteKey> {
        let kind = match n.method.as_str() {
            "update" | "update2" | "update3" => "monitor",
            "locked" | "stolen" => "lock",
            _ => return None,
        };
        Some(RouteKey {
            kind,
            id: n.params.first()?.to_string(),
        })
    }
}

/// Why a call got no result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CallError {
    /// The connection is gone; the string says why.
    Closed(String),
    /// The reply's "error" member.
    Remote(Value),
}

type Reply = oneshot::Sender<Result<Value, Value>>;
type Subscriber = mpsc::UnboundedSender<Notification>;

enum Command {
    Call {
        method: String,
        params: Value,
        reply: Reply,
        /// Registered before the request is written, so no notification can outrun it.
        subscribe: Option<(RouteKey, Subscriber)>,
    },
    Unsubscribe(RouteKey),
    /// Drop the socket now (a failed keepalive probe), failing every pending call.
    Close,
}

/// Handle to the connection task. Cloning is cheap; the task ends when every handle is dropped
/// or the socket closes, and then every pending call fails with [`CallError::Closed`].
#[derive(Clone, Debug)]
pub(crate) struct Rpc {
    cmd: mpsc::UnboundedSender<Command>,
    closed: watch::Receiver<Option<String>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Call { method, .. } => write!(f, "Call({method})"),
            Command::Unsubscribe(k) => write!(f, "Unsubscribe({k:?})"),
            Command::Close => f.write_str("Close"),
        }
    }
}

impl Rpc {
    /// Starts the task on an already connected stream. Must be called inside a tokio runtime.
    pub(crate) fn start(stream: UnixStream) -> Rpc {
        let (cmd, cmd_rx) = mpsc::unbounded_channel();
        let (closed_tx, closed) = watch::channel(None);
        let (rd, wr) = stream.into_split();
        let task = Task {
            rd,
            wr,
            cmd_rx,
            framer: Framer::default(),
            next_id: 0,
            st: TaskState {
                out: Vec::new(),
                sent: 0,
                pending: HashMap::new(),
                routes: HashMap::new(),
            },
        };
        tokio::spawn(async move {
            let reason = task.run().await;
            tracing::debug!(%reason, "json-rpc connection closed");
            // Receivers may all be gone; nothing to tell then.
            let _ = closed_tx.send(Some(reason));
        });
        Rpc { cmd, closed }
    }

    /// Sends a request and waits for its reply.
    pub(crate) async fn call(&self, method: &str, params: Value) -> Result<Value, CallError> {
        self.call_subscribed(method, params, None).await
    }

    /// Like [`Rpc::call`], and routes matching notifications to `subscribe` from before the request
    /// is on the wire.
    pub(crate) async fn call_subscribed(
        &self,
        method: &str,
        params: Value,
        subscribe: Option<(RouteKey, Subscriber)>,
    ) -> Result<Value, CallError> {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Call {
            method: method.to_string(),
            params,
            reply,
            subscribe,
        };
        if self.cmd.send(cmd).is_err() {
            return Err(CallError::Closed(self.close_reason().await));
        }
        match rx.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(CallError::Remote(e)),
            // The task dropped the sender: it has ended, or is ending.
            Err(_) => Err(CallError::Closed(self.close_reason().await)),
        }
    }

    /// Stops routing notifications for `key`.
    pub(crate) fn unsubscribe(&self, key: RouteKey) {
        let _ = self.cmd.send(Command::Unsubscribe(key));
    }

    /// Closes the connection even while other handles exist.
    pub(crate) fn close(&self) {
        let _ = self.cmd.send(Command::Close);
    }

    /// Resolves once the connection has closed, with the reason.
    pub(crate) async fn closed(&self) -> String {
        self.close_reason().await
    }

    /// True once the connection task has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.borrow().is_some() || self.cmd.is_closed()
    }

    async fn close_reason(&self) -> String {
        let mut rx = self.closed.clone();
        let reason = match rx.wait_for(Option::is_some).await {
            Ok(r) => r.clone().unwrap_or_default(),
            Err(_) => "connection task ended".to_string(),
        };
        reason
    }
}

/// The socket side of the connection task.
struct Task {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    framer: Framer,
    next_id: u64,
    st: TaskState,
}

/// The message-handling side, free of I/O so it can be driven by tests.
struct TaskState {
    /// Bytes queued for the socket, of which the first `sent` are written. Reading and writing
    /// are driven from one select so a large outgoing transaction never stops us from reading
    /// (and so never deadlocks with a server that is itself blocked writing to us); the queue
    /// is bounded by `MAX_QUEUED_OUT`.
    out: Vec<u8>,
    sent: usize,
    pending: HashMap<u64, Reply>,
    routes: HashMap<RouteKey, Subscriber>,
}

impl Task {
    /// Runs until the socket closes or all handles are dropped; returns why it stopped.
    async fn run(mut self) -> String {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            tokio::select! {
                r = self.rd.read(&mut buf) => match r {
                    Ok(0) => return "connection closed by peer".to_string(),
                    Ok(n) => {
                        if let Err(e) = self.on_bytes(&buf[..n]) {
                            return e;
                        }
                    }
                    Err(e) => return format!("read failed: {e}"),
                },
                w = self.wr.write(self.st.unsent()), if !self.st.unsent().is_empty() => match w {
                    Ok(n) => self.st.wrote(n),
                    Err(e) => return format!("write failed: {e}"),
                },
                cmd = self.cmd_rx.recv() => match cmd {
                    Some(Command::Close) => return "closed by client".to_string(),
                    Some(cmd) => self.on_command(cmd),
                    None => {
                        // Every handle is gone: flush what was queued (best effort) and stop.
                        let _ = self.wr.write_all(self.st.unsent()).await;
                        return "client dropped".to_string();
                    }
                },
            }
            if self.st.unsent().len() > MAX_QUEUED_OUT {
                return format!(
                    "the peer does not read: more than {MAX_QUEUED_OUT} bytes queued for it"
                );
            }
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Call {
                method,
                params,
                reply,
                subscribe,
            } => {
                if reply.is_closed() {
                    return; // The caller gave up (timeout) before we sent anything.
                }
                if let Some((key, sub)) = subscribe {
                    self.st.routes.insert(key, sub);
                }
                self.next_id += 1;
                let id = self.next_id;
                self.st.pending.insert(id, reply);
                self.st
                    .queue(&json!({"method": method, "params": params, "id": id}));
            }
            Command::Unsubscribe(key) => {
                self.st.routes.remove(&key);
            }
            Command::Close => {}
        }
    }

    fn on_bytes(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.framer.push(bytes);
        while let Some(msg) = self.framer.next_value().map_err(|e| match e {
            FrameError::TooLarge { .. } | FrameError::TooManyValues { .. } => {
                format!("refused a message from the peer: {e}")
            }
            _ => format!("malformed JSON from peer: {e}"),
        })? {
            self.st.on_message(msg);
        }
        Ok(())
    }
}

impl TaskState {
    fn unsent(&self) -> &[u8] {
        &self.out[self.sent..]
    }

    /// `n` more bytes were written. The written head is dropped once it is half the buffer, not
    /// at each write: draining a queue of many MiB a socket buffer at a time was quadratic.
    fn wrote(&mut self, n: usize) {
        self.sent += n;
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        } else if self.sent >= self.out.len() / 2 {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
    }

    fn queue(&mut self, msg: &Value) {
        // Serialising a Value into a Vec cannot fail.
        serde_json::to_writer(&mut self.out, msg).expect("serialise JSON value");
    }

    fn on_message(&mut self, mut msg: Value) {
        let id = msg.get_mut("id").map(Value::take).unwrap_or(Value::Null);
        if let Some(method) = msg.get("method").and_then(Value::as_str) {
            let method = method.to_string();
            // Taken, not cloned: a monitor update can be tens of MiB once parsed.
            let params = match msg.get_mut("params").map(Value::take) {
                Some(Value::Array(a)) => a,
                _ => Vec::new(),
            };
            let method = method.as_str();
            if id.is_null() {
                self.on_notification(Notification {
                    method: method.to_string(),
                    params,
                });
            } else {
                self.on_request(method, params, id);
            }
            return;
        }
        let Some(reply) = id.as_u64().and_then(|id| self.pending.remove(&id)) else {
            tracing::debug!(%id, "reply to unknown request id ignored");
            return;
        };
        let result = match msg.get_mut("error").map(Value::take) {
            Some(e) if !e.is_null() => Err(e),
            _ => Ok(msg
                .get_mut("result")
                .map(Value::take)
                .unwrap_or(Value::Null)),
        };
        // The caller may have timed out and dropped its receiver.
        let _ = reply.send(result);
    }

    /// Requests from the peer: ovsdb-server sends "echo" as a keepalive probe and drops the
    /// connection if it goes unanswered (RFC 7047 section 4.1.11).
    fn on_request(&mut self, method: &str, params: Vec<Value>, id: Value) {
        let reply = if method == "echo" {
            json!({"result": params, "error": null, "id": id})
        } else {
            json!({"result": null, "error": format!("unknown method {method}"), "id": id})
        };
        self.queue(&reply);
    }

    fn on_notification(&mut self, n: Notification) {
        let Some(key) = RouteKey::of(&n) else {
            tracing::debug!(method = %n.method, "unrouted notification ignored");
            return;
        };
        let Some(sub) = self.routes.get(&key) else {
            tracing::debug!(method = %n.method, "notification for no subscriber ignored");
            return;
        };
        if sub.send(n).is_err() {
            // The subscriber's stream was dropped: stop routing to it.
            self.routes.remove(&key);
        }
    }
}

#[cfg(test)]
#[path = "rpc_tests.rs"]
mod tests;
