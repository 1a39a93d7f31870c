//! The HTTP listener: `/metrics`, `/healthz`, `/readyz` over HTTP/1.1 (hyper), GET and HEAD
//! only. Other paths get 404, other methods 405.
//!
//! It must survive slow and malformed clients, since it runs inside PID 1: request headers must
//! arrive within `header_timeout` (a slowloris client is cut off), a connection lives at most
//! `connection_lifetime` (a client that never reads its response is cut off too), headers
//! are capped at 16 KiB, and at most `max_connections` are open at once. When all are taken, a
//! new connection takes the place of the one stuck longest (see `Slots`), so one client holding
//! many half-sent heads cannot keep probes out. It runs on a thread of its own
//! (`on_own_thread`), and renders `/metrics` on the blocking pool, so neither a flood of
//! connections nor a long render delays `/healthz` or the supervisor's own health checks.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};

/// A probe's answer: 200 when `ok`, else 503; `detail` is the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub ok: bool,
    pub detail: String,
}

/// What the endpoints answer.
pub trait Endpoints: Send + Sync + 'static {
    /// The scrape, text format 0.0.4.
    fn metrics(&self) -> String;
    fn health(&self) -> Probe;
    fn ready(&self) -> Probe;
}

/// How much a client may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub connection_lifetime: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(5),
            connection_lifetime: Duration::from_secs(60),
            // A connection costs a file descriptor and a few KiB; more of them means a
            // slowloris client needs more before eviction (`Slots`) has to choose.
            max_connections: 256,
        }
    }
}

const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const TEXT_TYPE: &str = "text/plain; charset=utf-8";
/// hyper's smallest allowed read buffer; it bounds the request head.
const MAX_HEAD: usize = 16 * 1024;

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// The answer to one request; the body is never read.
pub fn respond(method: &Method, path: &str, ep: &dyn Endpoints) -> Response<Full<Bytes>> {
    let known = matches!(path, "/metrics" | "/healthz" | "/readyz");
    if !known {
        return text(StatusCode::NOT_FOUND, TEXT_TYPE, "not found\n".into());
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT_TYPE,
            "method not allowed\n".into(),
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let probe = |p: Probe| {
        let status = if p.ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        text(status, TEXT_TYPE, p.detail)
    };
    match path {
        "/metrics" => text(StatusCode::OK, METRICS_TYPE, ep.metrics()),
        "/healthz" => probe(ep.health()),
        _ => probe(ep.ready()),
    }
}

/// Serves connections from `listener` forever.
pub async fn serve(listener: TcpListener, ep: Arc<dyn Endpoints>, limits: Limits) {
    let freed = Arc::new(Notify::new());
    let slots = Arc::new(Mutex::new(Slots::new(
        limits.max_connections,
        freed.clone(),
    )));
    let renders = Arc::new(Semaphore::new(1));
    loop {
        wait_for_room(&slots, &freed).await;
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and the like: wait instead of spinning.
                tracing::warn!(%e, "metrics listener failed to accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (id, cut) = lock(&slots).admit(Instant::now());
        let conn = Conn {
            id,
            slots: slots.clone(),
        };
        tokio::spawn(conn.run(stream, peer, cut, ep.clone(), renders.clone(), limits));
    }
}

/// Returns once a connection may be accepted: a slot is free, or the stalest connection was
/// cut to make one. Until then new connections wait in the kernel's accept queue, in order. A
/// connection accepted and closed at once is back at once: one local client that reopened
/// every one it lost took each slot the moment it freed, and denied every scrape and probe
/// (issue 14: 0 of 40 answered, and 5 of 40 when newcomers could only take the place of
/// stalled ones); queued, a probe waits its turn behind that client's connections instead.
async fn wait_for_room(slots: &Mutex<Slots>, freed: &Notify) {
    loop {
        let room = lock(slots).room(Instant::now());
        let at = match room {
            Room::Free => return,
            Room::Cut(id) => {
                lock(slots).cut(id);
                return;
            }
            Room::After(at) => at,
        };
        tokio::select! {
            () = tokio::time::sleep_until(at.into()) => {}
            () = freed.notified() => {}
        }
    }
}

/// One admitted connection; its slot is given back when this is dropped.
struct Conn {
    id: u64,
    slots: Arc<Mutex<Slots>>,
}

impl Conn {
    async fn run(
        self,
        stream: TcpStream,
        peer: SocketAddr,
        cut: Arc<Notify>,
        ep: Arc<dyn Endpoints>,
        renders: Arc<Semaphore>,
        limits: Limits,
    ) {
        let (id, slots) = (self.id, self.slots.clone());
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            lock(&slots).answering(id, Instant::now());
            let (ep, renders) = (ep.clone(), renders.clone());
            let method = req.method().clone();
            let path = req.uri().path().to_string();
            async move { Ok::<_, Infallible>(answer(&method, &path, ep, &renders).await) }
        });
        // One request per connection: a connection is then either waiting for its head or
        // answering, which is what `Slots` judges it by (an idle keep-alive connection would
        // look like a slow head). Scrapers reconnect each time, which costs little.
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_buf_size(MAX_HEAD)
            .keep_alive(false)
            .serve_connection(TokioIo::new(stream), service);
        tokio::select! {
            ended = tokio::time::timeout(limits.connection_lifetime, conn) => match ended {
                Ok(Err(e)) => tracing::debug!(%peer, %e, "metrics connection ended with an error"),
                Err(_) => tracing::debug!(%peer, "metrics connection reached its lifetime"),
                Ok(Ok(())) => {}
            },
            () = cut.notified() => tracing::debug!(%peer, "metrics connection cut to make room for a new one"),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        lock(&self.slots).release(self.id);
    }
}

/// `respond`, with `/metrics` rendered on the blocking pool, one render at a time: a scrape of
/// a thousand interfaces must not hold up `/healthz` on this thread, and concurrent scrapes
/// wait for each other instead of each taking a thread.
async fn answer(
    method: &Method,
    path: &str,
    ep: Arc<dyn Endpoints>,
    renders: &Semaphore,
) -> Response<Full<Bytes>> {
    if path != "/metrics" || (method != Method::GET && method != Method::HEAD) {
        return respond(method, path, ep.as_ref());
    }
    let Ok(_permit) = renders.acquire().await else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT_TYPE,
            "shutting down\n".into(),
        );
    };
    match tokio::task::spawn_blocking(move || ep.metrics()).await {
        Ok(body) => text(StatusCode::OK, METRICS_TYPE, body),
        Err(e) => {
            tracing::error!(%e, "rendering /metrics failed");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                TEXT_TYPE,
                "rendering the metrics failed\n".into(),
            )
        }
    }
}

fn lock(slots: &Mutex<Slots>) -> std::sync::MutexGuard<'_, Slots> {
    slots.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connection that has waited this long for its request head is cut when a newcomer needs
/// its slot: a scraper or probe sends its head as it connects.
const HEAD_GRACE: Duration = Duration::from_millis(100);
/// A connection whose response has waited this long for its client to read it is cut when a
/// newcomer needs its slot.
const ANSWER_GRACE: Duration = Duration::from_secs(1);

/// What a connection is doing, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Connected; its request head is not complete yet.
    Head,
    /// Its request is being answered (rendered, or written to a client that reads slowly).
    Answer,
}

#[derive(Debug)]
struct Slot {
    phase: Phase,
    since: Instant,
    cut: Arc<Notify>,
}

/// Whether a new connection may be accepted now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Room {
    Free,
    /// Once this connection is cut.
    Cut(u64),
    /// Not before then (or a slot frees).
    After(Instant),
}

/// The connection slots. When all are taken, the stalest connection makes room for the next
/// one: the one waiting longest for its head once it has waited `HEAD_GRACE`, else the one
/// whose answer has waited longest for its client once that is `ANSWER_GRACE`.
#[derive(Debug)]
struct Slots {
    max: usize,
    next_id: u64,
    taken: HashMap<u64, Slot>,
    /// Told when a slot is given back.
    freed: Arc<Notify>,
}

impl Slots {
    fn new(max: usize, freed: Arc<Notify>) -> Slots {
        Slots {
            max: max.max(1),
            next_id: 0,
            taken: HashMap::new(),
            freed,
        }
    }

    fn room(&self, now: Instant) -> Room {
        if self.taken.len() < self.max {
            return Room::Free;
        }
        let stalest = self
            .taken
            .iter()
            .min_by_key(|(id, s)| (s.phase != Phase::Head, s.since, **id));
        let Some((id, slot)) = stalest else {
            return Room::Free;
        };
        let grace = match slot.phase {
            Phase::Head => HEAD_GRACE,
            Phase::Answer => ANSWER_GRACE,
        };
        if now >= slot.since + grace {
            Room::Cut(*id)
        } else {
            Room::After(slot.since + grace)
        }
    }

    /// Takes the slot from connection `id`, which is told to go.
    fn cut(&mut self, id: u64) {
        if let Some(slot) = self.taken.remove(&id) {
            // notify_one keeps a permit: a connection cut before it first waits still goes.
            slot.cut.notify_one();
        }
    }

    /// A slot for a new connection (after `room` said there is one).
    fn admit(&mut self, now: Instant) -> (u64, Arc<Notify>) {
        self.next_id += 1;
        let cut = Arc::new(Notify::new());
        let slot = Slot {
            phase: Phase::Head,
            since: now,
            cut: cut.clone(),
        };
        self.taken.insert(self.next_id, slot);
        (self.next_id, cut)
    }

    fn answering(&mut self, id: u64, now: Instant) {
        if let Some(slot) = self.taken.get_mut(&id) {
            slot.phase = Phase::Answer;
            slot.since = now;
        }
    }

    fn release(&mut self, id: u64) {
        if self.taken.remove(&id).is_some() {
            self.freed.notify_one();
        }
    }
}

/// Binds `addr` (retrying every 5 s while it fails: switching traffic matters more than
/// metrics, so a taken port is an error in the log, not a reason to stop) and serves.
pub async fn bind_and_serve(addr: SocketAddr, ep: Arc<dyn Endpoints>, limits: Limits) {
    let mut logged = false;
    let listener = loop {
        match listen(addr) {
            Ok(l) => break l,
            Err(e) => {
                if !logged {
                    tracing::error!(%addr, %e, "failed to listen for metrics; retrying every 5 s");
                    logged = true;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    serve(listener, ep, limits).await
}

/// How many connections may wait in the kernel's accept queue for a slot (the kernel caps it
/// at net.core.somaxconn, 4096 by default). std's and mio's 128 was too few: a slowloris
/// client that kept 256 connections open overflowed it, and a probe's SYN was dropped and
/// resent a second later.
const ACCEPT_QUEUE: u32 = 4096;

/// A listener on `addr` with a long accept queue (`ACCEPT_QUEUE`).
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_QUEUE)
}

/// Runs `serve` on a thread of its own with a runtime of its own: a flood of connections then
/// costs that thread, never the supervisor's health checks and reconcile on the main one.
/// Resolves when that thread ends (it should not), with why.
pub fn on_own_thread(
    serve: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = Result<(), String>> {
    let (done, ended) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            let outcome = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("failed to start its runtime: {e}"))
                .map(|rt| rt.block_on(serve));
            let _ = done.send(outcome);
        });
    async move {
        spawned.map_err(|e| format!("failed to start its thread: {e}"))?;
        match ended.await {
            Ok(outcome) => outcome,
            // The sender went down with the thread: it panicked.
            Err(_) => Err("its thread panicked".into()),
        }
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
