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
async fn a_connection_beyond_the_limit_cuts_the_stalest_head() {
    let limits = Limits {
        header_timeout: Duration::from_secs(3),
        connection_lifetime: Duration::from_secs(5),
        max_connections: 2,
    };
    let (addr, _) = server(limits).await;
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
        idle.push(s);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The limit is reached; a request still gets in, and the older half-sent head goes at
    // once, long before its header timeout.
    assert!(request(addr, "GET", "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    let took = closed_within(&mut idle[0], Duration::from_millis(500)).await;
    assert!(took < Duration::from_millis(500));
    // The other was not needed: it stays until its header timeout.
    let mut buf = [0u8; 16];
    let early = tokio::time::timeout(Duration::from_millis(300), idle[1].read(&mut buf)).await;
    assert!(early.is_err(), "the newer head was cut too: {early:?}");
    closed_within(&mut idle[1], Duration::from_secs(4)).await;
}

/// One request with `Connection: close` and a deadline; None when it was refused, cut or late.
async fn try_request(addr: SocketAddr, path: &str, limit: Duration) -> Option<String> {
    let attempt = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.ok()?;
        Some(out)
    };
    tokio::time::timeout(limit, attempt).await.ok().flatten()
}

/// A slowloris client's connection: half a request head, held until the server cuts it, then
/// opened again at once.
async fn hold_half_heads(addr: SocketAddr, cuts: Arc<std::sync::atomic::AtomicU64>) {
    loop {
        let Ok(mut s) = TcpStream::connect(addr).await else {
            tokio::task::yield_now().await;
            continue;
        };
        if s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n")
            .await
            .is_ok()
        {
            let mut buf = [0u8; 256];
            while let Ok(1..) = s.read(&mut buf).await {}
        }
        cuts.fetch_add(1, Ordering::Relaxed);
    }
}

/// Issue 14: one local client holding more half-sent request heads than the server has
/// connections, reopening each as it is cut, denied every scrape and probe (0 of 40). The
/// attacker runs on a thread of its own, as another process would.
async fn answered_under_slowloris(addr: SocketAddr, attackers: usize) -> (usize, usize, u64) {
    let cuts = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let attacker = {
        let cuts = cuts.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                for _ in 0..attackers {
                    tokio::spawn(hold_half_heads(addr, cuts.clone()));
                }
                let _ = stopped.await;
            });
        })
    };
    // Let it take every slot.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mut probes, mut answered) = (0, 0);
    for i in 0..40 {
        let path = ["/healthz", "/readyz", "/metrics", "/healthz"][i % 4];
        let began = Instant::now();
        let reply = try_request(addr, path, Duration::from_secs(2)).await;
        let ok = reply
            .as_ref()
            .is_some_and(|r| r.starts_with("HTTP/1.1 200"));
        if !ok {
            eprintln!("{path}: {reply:?} after {:?}", began.elapsed());
        }
        answered += usize::from(ok);
        if path != "/metrics" {
            probes += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    attacker.join().unwrap();
    (answered, probes, cuts.load(Ordering::Relaxed))
}

/// The listener as `Metrics::run` starts it: on a thread and runtime of its own.
async fn threaded_server(limits: Limits, ep: Arc<dyn Endpoints>) -> SocketAddr {
    let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = listener.into_std().unwrap();
    tokio::spawn(on_own_thread(async move {
        let listener = TcpListener::from_std(listener).unwrap();
        serve(listener, ep, limits).await
    }));
    addr
}

fn fake() -> Arc<Fake> {
    Arc::new(Fake {
        healthy: AtomicBool::new(true),
    })
}

#[tokio::test]
async fn probes_are_answered_while_a_slowloris_client_holds_every_slot() {
    let addr = threaded_server(Limits::default(), fake()).await;
    let (answered, probes, cuts) = answered_under_slowloris(addr, 128).await;
    eprintln!("slowloris, 128 half-sent heads, default limits: {answered} of 40 requests answered ({probes} probes; {cuts} cuts)");
    assert_eq!(answered, 40);
    // More half-sent heads than there are slots: newcomers take the place of the stalest.
    let limits = Limits {
        max_connections: 64,
        ..Limits::default()
    };
    let addr = threaded_server(limits, fake()).await;
    let (answered, probes, cuts) = answered_under_slowloris(addr, 256).await;
    eprintln!("slowloris, 256 half-sent heads, 64 slots: {answered} of 40 requests answered ({probes} probes; {cuts} cuts)");
    assert!(answered >= 38, "{answered} of 40");
}

#[test]
fn the_stalest_connection_makes_room_once_its_grace_is_over() {
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    let mut slots = Slots::new(3, Arc::new(Notify::new()));
    assert_eq!(slots.room(ms(0)), Room::Free);
    let (a, _) = slots.admit(ms(0));
    let (b, cut_b) = slots.admit(ms(10));
    let (c, _) = slots.admit(ms(20));
    // `a` sent its head and is being answered; `b` has waited longest for its head.
    slots.answering(a, ms(30));
    assert_eq!(slots.room(ms(50)), Room::After(ms(10) + HEAD_GRACE));
    assert_eq!(slots.room(ms(10) + HEAD_GRACE), Room::Cut(b));
    slots.cut(b);
    let told = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(Duration::from_millis(10), cut_b.notified()).await
        });
    assert!(told.is_ok(), "b is told to go");
    assert_eq!(slots.room(ms(200)), Room::Free);
    let (d, _) = slots.admit(ms(200));
    // Heads go before answers, however recent.
    assert_eq!(slots.room(ms(5000)), Room::Cut(c));
    slots.answering(c, ms(300));
    slots.answering(d, ms(400));
    // Only answers left: the one answered longest ago, after its grace.
    assert_eq!(slots.room(ms(500)), Room::After(ms(30) + ANSWER_GRACE));
    assert_eq!(slots.room(ms(30) + ANSWER_GRACE), Room::Cut(a));
    slots.release(a);
    assert_eq!(slots.room(ms(0)), Room::Free);
}

/// Renders slowly, as a scrape of thousands of interfaces does.
struct SlowRender;

impl Endpoints for SlowRender {
    fn metrics(&self) -> String {
        std::thread::sleep(Duration::from_millis(800));
        "x 1\n".into()
    }
    fn health(&self) -> Probe {
        Probe {
            ok: true,
            detail: "ok\n".into(),
        }
    }
    fn ready(&self) -> Probe {
        self.health()
    }
}

#[tokio::test]
async fn a_slow_render_does_not_delay_health() {
    let addr = threaded_server(Limits::default(), Arc::new(SlowRender)).await;
    let scrapes: Vec<_> = (0..3)
        .map(|_| tokio::spawn(try_request(addr, "/metrics", Duration::from_secs(5))))
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let began = Instant::now();
    let health = try_request(addr, "/healthz", Duration::from_secs(5)).await;
    let took = began.elapsed();
    eprintln!("/healthz during three 800 ms renders: {took:?}");
    assert!(health.is_some_and(|r| r.starts_with("HTTP/1.1 200")));
    assert!(took < Duration::from_millis(200), "{took:?}");
    for s in scrapes {
        assert!(s.await.unwrap().is_some_and(|r| r.ends_with("x 1\n")));
    }
}
