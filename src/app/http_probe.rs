//! `healthcheck`: one HTTP/1.1 GET over a plain TcpStream, for the image's HEALTHCHECK (the image
//! carries no curl). Healthy only on status 200, within one overall deadline.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The URL the metrics server answers on with the default `[metrics] listen`.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9476/healthz";
/// Connect, send and read together, as Docker's own check timeout would.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// An `http://host[:port][/path]` URL, split.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    /// `host:port`, as written (IPv6 in brackets), for connecting and the Host header.
    pub authority: String,
    pub path: String,
}

pub fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains(['@', ' ']) {
        return Err(format!("{url}: no usable host"));
    }
    let has_port = match authority.rfind(']') {
        Some(end) => authority[end..].contains(':'),
        None => authority.contains(':'),
    };
    let authority = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok(Target {
        authority,
        path: path.to_string(),
    })
}

/// GETs `url`; Ok with the status line on 200, Err with the reason otherwise.
pub fn probe(url: &str, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let mut stream = send(url, deadline)?;
    let line = read_status_line(&mut stream, deadline).map_err(|e| format!("{url}: {e}"))?;
    match status_code(&line) {
        Some(200) => Ok(line),
        Some(_) => Err(format!("{url}: {line}")),
        None => Err(format!("{url}: not an HTTP response: {line:?}")),
    }
}

/// The most of a body [`get`] reads: the probes' bodies are a few lines.
const MAX_BODY: usize = 64 * 1024;

/// GETs `url`; the status code and the body (up to 64 KiB, lossily UTF-8), whatever the code.
pub fn get(url: &str, timeout: Duration) -> Result<(u16, String), String> {
    let deadline = Instant::now() + timeout;
    let mut stream = send(url, deadline)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // The request says `Connection: close`: the body ends where the stream does.
    while buf.len() < MAX_BODY {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("{url}: timed out waiting for the response"));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("{url}: read: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let line = head.lines().next().unwrap_or_default();
    let code = status_code(line).ok_or_else(|| format!("{url}: not an HTTP response: {line:?}"))?;
    Ok((code, body.to_string()))
}

/// Connects to `url`'s host and sends the GET.
fn send(url: &str, deadline: Instant) -> Result<TcpStream, String> {
    let target = parse_url(url)?;
    let addrs: Vec<SocketAddr> = target
        .authority
        .to_socket_addrs()
        .map_err(|e| format!("{url}: cannot resolve {}: {e}", target.authority))?
        .collect();
    let mut stream = connect(&addrs, deadline).map_err(|e| format!("{url}: {e}"))?;
    stream
        .set_write_timeout(Some(left(deadline)))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ovs-appliance-healthcheck\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("{url}: send: {e}"))?;
    Ok(stream)
}

/// What is left of `deadline`, never zero (a zero timeout is an error to std).
fn left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

/// The first address that accepts. `localhost` may name ::1 first while the server listens on
/// 127.0.0.1 only.
fn connect(addrs: &[SocketAddr], deadline: Instant) -> Result<TcpStream, String> {
    let mut last = "no address".to_string();
    for addr in addrs {
        match TcpStream::connect_timeout(addr, left(deadline)) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("connect to {addr}: {e}"),
        }
    }
    Err(last)
}

/// Reads up to the first CRLF (at most 1 KiB), each read bounded by what is left of `deadline`.
fn read_status_line(stream: &mut TcpStream, deadline: Instant) -> Result<String, String> {
    let mut buf = Vec::with_capacity(128);
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < 1024 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timed out waiting for the response".into());
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    Ok(text.lines().next().unwrap_or_default().to_string())
}

/// `HTTP/1.1 200 OK` -> 200.
pub fn status_code(line: &str) -> Option<u16> {
    let mut parts = line.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn parses_urls() {
        let t = parse_url("http://127.0.0.1:9476/healthz").unwrap();
        assert_eq!(t.authority, "127.0.0.1:9476");
        assert_eq!(t.path, "/healthz");
        assert_eq!(
            parse_url("http://[::1]:80/x").unwrap().authority,
            "[::1]:80"
        );
        assert_eq!(parse_url("http://[::1]/x").unwrap().authority, "[::1]:80");
        assert_eq!(parse_url("http://localhost").unwrap().path, "/");
        assert!(parse_url("https://x/").is_err());
        assert!(parse_url("http:///x").is_err());
    }

    #[test]
    fn reads_status_codes() {
        assert_eq!(status_code("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(status_code("HTTP/1.0 503 Service Unavailable"), Some(503));
        assert_eq!(status_code("SSH-2.0-OpenSSH"), None);
    }

    /// A one-shot server that answers `reply` and hands back the request it read.
    fn serve(reply: &'static [u8]) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/healthz", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = vec![0u8; 1024];
            let n = s.read(&mut req).unwrap();
            if !reply.is_empty() {
                s.write_all(reply).unwrap();
            } else {
                std::thread::sleep(Duration::from_millis(600));
            }
            String::from_utf8_lossy(&req[..n]).into_owned()
        });
        (url, handle)
    }

    #[test]
    fn healthy_on_200_with_a_proper_request() {
        let (url, server) = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        assert_eq!(probe(&url, TIMEOUT).unwrap(), "HTTP/1.1 200 OK");
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /healthz HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("\r\nHost: 127.0.0.1:"), "{request}");
    }

    #[test]
    fn get_returns_the_code_and_body_whatever_the_code() {
        let (url, server) = serve(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 14\r\n\r\novsdb-server: down\n",
        );
        let (code, body) = get(&url, TIMEOUT).unwrap();
        assert_eq!((code, body.as_str()), (503, "ovsdb-server: down\n"));
        server.join().unwrap();
    }

    #[test]
    fn unhealthy_on_503() {
        let (url, server) = serve(b"HTTP/1.1 503 Service Unavailable\r\n\r\n");
        let err = probe(&url, TIMEOUT).unwrap_err();
        assert!(err.contains("503"), "{err}");
        server.join().unwrap();
    }

    #[test]
    fn unhealthy_when_nothing_listens() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = probe(&format!("http://127.0.0.1:{port}/healthz"), TIMEOUT).unwrap_err();
        assert!(err.contains("connect"), "{err}");
    }

    #[test]
    fn gives_up_at_the_deadline() {
        let (url, server) = serve(b"");
        let start = Instant::now();
        let err = probe(&url, Duration::from_millis(300)).unwrap_err();
        assert!(start.elapsed() < Duration::from_millis(550), "{err}");
        assert!(err.contains("timed out") || err.contains("read"), "{err}");
        server.join().unwrap();
    }
}
