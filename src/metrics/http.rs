//! The HTTP listener: `/metrics`, `/healthz`, `/readyz` over HTTP/1.1 (hyper), GET and HEAD
//! only. Other paths get 404, other methods 405.
//!
//! It must survive slow and malformed clients, since it runs inside PID 1: request headers must
//! arrive within `header_timeout` (a slowloris client is cut off), a connection lives at most
//! `connection_lifetime` (a client that never reads its response is cut off too), headers
//! are capped at 16 KiB, and at most `max_connections` are served at once; beyond that new
//! connections are closed at once instead of queueing.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

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
            max_connections: 64,
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
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and the like: wait instead of spinning.
                tracing::warn!(%e, "metrics listener failed to accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many metrics connections; closing a new one");
            continue;
        };
        let ep = ep.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let r = respond(req.method(), req.uri().path(), ep.as_ref());
                async move { Ok::<_, Infallible>(r) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(limits.connection_lifetime, conn).await {
                Ok(Err(e)) => tracing::debug!(%peer, %e, "metrics connection ended with an error"),
                Err(_) => tracing::debug!(%peer, "metrics connection reached its lifetime"),
                Ok(Ok(())) => {}
            }
            drop(slot);
        });
    }
}

/// Binds `addr` (retrying every 5 s while it fails: switching traffic matters more than
/// metrics, so a taken port is an error in the log, not a reason to stop) and serves.
pub async fn bind_and_serve(addr: SocketAddr, ep: Arc<dyn Endpoints>, limits: Limits) {
    let mut logged = false;
    let listener = loop {
        match TcpListener::bind(addr).await {
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

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
