//! Fake peers on a unix socket that try to exhaust the OVSDB client's memory (issue 14 item 6):
//! a reply of many small objects, and a peer that sends echo requests and never reads the
//! replies. Tier 1: no OVS needed.

use ovs_appliance::ovsdb::Client;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

/// The peak resident memory of this process so far, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// A peer that answers the first request with `[{"a":0},...]` of `objects` objects.
fn small_objects_peer(objects: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("db.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"{\"id\":1,\"error\":null,\"result\":[");
        let chunk = "{\"a\":0},".repeat(8192);
        let mut sent = 0;
        while sent < objects {
            if s.write_all(chunk.as_bytes()).is_err() {
                return;
            }
            sent += 8192;
        }
        let _ = s.write_all(b"{}]}");
        let _ = s.read(&mut buf);
    });
    (dir, sock)
}

#[tokio::test]
async fn a_reply_of_many_small_objects_is_refused_before_it_is_parsed() {
    let before = peak_rss();
    // 8 MB of text; about 700 MB once parsed.
    let (_dir, sock) = small_objects_peer(1 << 20);
    let c = Client::connect_unix(&sock).await.unwrap();
    let began = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(30), c.list_dbs())
        .await
        .expect("an answer within 30 s");
    let grew = peak_rss().saturating_sub(before);
    eprintln!(
        "8 MB reply of 1M small objects: {result:?} after {:?}; peak RSS grew {} MB",
        began.elapsed(),
        grew >> 20
    );
    let err = result.expect_err("refused");
    assert!(
        err.to_string().contains("memory once parsed"),
        "refused for its parsed size: {err}"
    );
    assert!(grew < 200 << 20, "peak RSS grew {} MB", grew >> 20);
}

#[tokio::test]
async fn a_peer_that_never_reads_its_echo_replies_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("db.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let flood = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let pad = "x".repeat(1000);
        let mut sent = 0u64;
        for i in 0u64.. {
            let req = format!("{{\"id\":\"e{i}\",\"method\":\"echo\",\"params\":[\"{pad}\"]}}");
            if s.write_all(req.as_bytes()).is_err() {
                break;
            }
            sent += req.len() as u64;
        }
        sent
    });
    let c = Client::connect_unix(&sock).await.unwrap();
    let began = Instant::now();
    let reason = tokio::time::timeout(Duration::from_secs(30), c.closed())
        .await
        .expect("the connection is dropped within 30 s");
    let sent = flood.join().unwrap();
    eprintln!(
        "echo flood: dropped after {:?} ({reason}); the peer sent {} MB",
        began.elapsed(),
        sent >> 20
    );
    assert!(reason.contains("does not read"), "{reason}");
}
