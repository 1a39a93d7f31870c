//! The listener against well-behaved, slow and malformed clients, on 127.0.0.1 with a port the
//! kernel picks.

use super::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Fake {
    healthy: AtomicBool,
}

impl Endpoints for Fake {
    fn metrics(&self) -> String {
        "# TYPE x gauge\nx 1\n".into()
    }
    fn health(&self) -> Probe {
        let ok = self.healthy.load(Ordering::Relaxed);
        Probe {
            ok,
            detail: if ok { "ok\n" } else { "ovs-vswitchd: down\n" }.into(),
        }
    }
    fn ready(&self) -> Probe {
        Probe {
            ok: true,
            detail: "ready\n".into(),
        }
    }
}

async fn server(limits: Limits) -> (SocketAddr, Arc<Fake>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = Arc::new(Fake {
        healthy: AtomicBool::new(true),
    });
    tokio::spawn(serve(listener, fake.clone(), limits));
    (addr, fake)
}

fn quick() -> Limits {
    Limits {
        header_timeout: Duration::from_millis(300),
        connection_lifetime: Duration::from_secs(3),
        max_connections: 4,
    }
}

/// One request with `Connection: close`; the whole response as text.
async fn request(addr: SocketAddr, method: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .expect("response within 5 s")
        .unwrap();
    out
}

/// Reads until the peer closes; how long that took.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Duration {
    let began = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return began.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("connection still open after {limit:?}"),
        }
    }
}

#[tokio::test]
async fn routes_methods_and_probes() {
    let (addr, fake) = server(quick()).await;
    let r = request(addr, "GET", "/metrics").await;
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(
        r.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{r}"
    );
    assert!(r.ends_with("x 1\n"), "{r}");
    let head = request(addr, "HEAD", "/metrics").await;
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    let post = request(addr, "POST", "/metrics").await;
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    assert!(
        post.to_ascii_lowercase().contains("allow: get, head"),
        "{post}"
    );
    assert!(request(addr, "GET", "/").await.starts_with("HTTP/1.1 404"));
    assert!(request(addr, "GET", "/metrics/x")
        .await
        .starts_with("HTTP/1.1 404"));
    assert!(request(addr, "DELETE", "/nope")
        .await
        .starts_with("HTTP/1.1 404"));
    assert!(request(addr, "GET", "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    assert!(request(addr, "GET", "/readyz")
        .await
        .starts_with("HTTP/1.1 200"));
    fake.healthy.store(false, Ordering::Relaxed);
    let down = request(addr, "GET", "/healthz").await;
    assert!(
        down.starts_with("HTTP/1.1 503") && down.ends_with("ovs-vswitchd: down\n"),
        "{down}"
    );
}

#[tokio::test]
async fn a_slowloris_client_is_cut_off_and_others_are_served_meanwhile() {
    let (addr, _) = server(quick()).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    let drip = tokio::spawn(async move {
        // One header byte every 50 ms: never a complete head within the timeout.
        for b in
            b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        {
            if slow.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        slow
    });
    assert!(request(addr, "GET", "/metrics")
        .await
        .starts_with("HTTP/1.1 200"));
    let mut slow = drip.await.unwrap();
    // Cut off by the header timeout (300 ms), long before the 3 s lifetime.
    let took = closed_within(&mut slow, Duration::from_secs(2)).await;
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(request(addr, "GET", "/metrics")
        .await
        .starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn garbage_silence_and_huge_heads_do_not_hurt() {
    let (addr, _) = server(quick()).await;
    // Bytes that are no HTTP at all.
    let mut g = TcpStream::connect(addr).await.unwrap();
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let _ = g.write_all(&garbage).await;
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), g.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 400"),
        "{reply}"
    );
    // A client that connects and says nothing is closed by the header timeout.
    let mut quiet = TcpStream::connect(addr).await.unwrap();
    closed_within(&mut quiet, Duration::from_secs(2)).await;
    // A head larger than the limit.
    let mut big = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "GET /metrics HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = big.write_all(head.as_bytes()).await;
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), big.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 431"),
        "{reply}"
    );
    assert!(request(addr, "GET", "/metrics")
        .await
        .starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_and_service_resumes() {
    let limits = Limits {
        header_timeout: Duration::from_secs(1),
        connection_lifetime: Duration::from_secs(5),
        max_connections: 2,
    };
    let (addr, _) = server(limits).await;
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
        idle.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let took = closed_within(&mut extra, Duration::from_millis(500)).await;
    assert!(took < Duration::from_millis(500));
    // The idle ones hit the header timeout; then there is room again.
    for s in &mut idle {
        closed_within(s, Duration::from_secs(3)).await;
    }
    assert!(request(addr, "GET", "/metrics")
        .await
        .starts_with("HTTP/1.1 200"));
}
