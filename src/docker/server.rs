//! The driver's unix socket and its HTTP/1.1: POST only, one request per connection, request
//! heads and bodies bounded, at most [`MAX_CONNECTIONS`] at once (more wait in the kernel's
//! accept queue), and every connection cut after [`CONNECTION_LIFETIME`].

use super::driver::Driver;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::sync::Semaphore;

/// Docker's plugin requests are small JSON documents; a megabyte is far beyond any of them.
pub const MAX_BODY: usize = 1 << 20;
pub const MAX_CONNECTIONS: usize = 64;
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longer than the slowest request: the database connection (10 s), the apply wait (10 s),
/// and its turn behind the other changing requests.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// How long an endpoint whose veth is in this namespace (not in a container) may stay so
/// after a start before it is taken for one Docker could not tell us had ended.
const IDLE_GRACE: Duration = Duration::from_secs(5);
const CONTENT: &str = "application/vnd.docker.plugins.v1.2+json";

/// The bound socket; its file is removed when this is dropped (if it is still ours).
pub struct Listener {
    listener: UnixListener,
    path: PathBuf,
    inode: u64,
}

impl Listener {
    /// Binds `path` (mode 0660), making its directory. A socket file left by a process that is
    /// gone is replaced; one that still accepts connections is another driver's: an error.
    pub fn bind(path: &Path) -> Result<Listener, String> {
        let dir = path.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the plugins directory {}: {e}", dir.display()))?;
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(format!(
                    "{} is in use by another running driver; stop it, or give this one another [docker] network_driver",
                    path.display()
                ));
            }
            std::fs::remove_file(path)
                .map_err(|e| format!("cannot remove the stale socket {}: {e}", path.display()))?;
        }
        let listener = UnixListener::bind(path)
            .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
        let meta =
            std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660));
        Ok(Listener {
            listener,
            path: path.to_path_buf(),
            inode: meta.ino(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Only our own file: another appliance may have replaced it since.
        if std::fs::metadata(&self.path).is_ok_and(|m| m.ino() == self.inode) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Serves Docker until the task is dropped; repairs the driver's rows each time a daemon
/// (re)starts (`ready` changes). Returns only on an accept error.
pub async fn serve(
    listener: Listener,
    driver: Arc<Driver>,
    mut ready: tokio::sync::watch::Receiver<u64>,
) -> Result<(), String> {
    tracing::info!(socket = %listener.path.display(), "docker driver: serving Docker's remote network driver protocol");
    let repairs = {
        let driver = driver.clone();
        tokio::spawn(async move {
            loop {
                if *ready.borrow_and_update() > 0 {
                    match driver.repair().await {
                        Ok(idle) if !idle.is_empty() => {
                            // Join follows CreateEndpoint within milliseconds: still idle
                            // after this long, no container will take it.
                            tokio::time::sleep(IDLE_GRACE).await;
                            if let Err(e) = driver.remove_idle(&idle).await {
                                tracing::warn!(error = %e, "docker driver: removing idle endpoints failed");
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "docker driver: repair after a daemon start failed");
                        }
                    }
                }
                if ready.changed().await.is_err() {
                    return;
                }
            }
        })
    };
    let _repairs = AbortOnDrop(repairs);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = slots.clone().acquire_owned().await.expect("never closed");
        let (stream, _) = listener
            .listener
            .accept()
            .await
            .map_err(|e| format!("accept on {}: {e}", listener.path.display()))?;
        let driver = driver.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let driver = driver.clone();
                async move { Ok::<_, Infallible>(answer(req, &driver).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(16 * 1024)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_LIFETIME, conn).await {
                Ok(Err(e)) => tracing::debug!(%e, "docker driver: connection ended with an error"),
                Err(_) => {
                    tracing::warn!("docker driver: a connection reached its lifetime and was cut")
                }
                Ok(Ok(())) => {}
            }
        });
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT));
    resp
}

async fn answer(req: Request<Incoming>, driver: &Driver) -> Response<Full<Bytes>> {
    if req.method() != Method::POST {
        let body = super::api::err_body("the plugin protocol is POST only");
        return json(StatusCode::METHOD_NOT_ALLOWED, &body);
    }
    let method = req.uri().path().trim_start_matches('/').to_string();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let too_large = e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            let (status, text) = if too_large {
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the request body is over {MAX_BODY} bytes"),
                )
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    format!("reading the request body: {e}"),
                )
            };
            tracing::warn!(%method, %text, "docker driver: request refused");
            return json(status, &super::api::err_body(&text));
        }
    };
    tracing::debug!(%method, bytes = body.len(), "docker driver: request");
    let (status, reply) = driver.handle(&method, &body).await;
    json(status, &reply)
}
