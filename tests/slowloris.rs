//! Tier 2: the real appliance's listener under one local slowloris client (issue 14 item 1):
//! more half-sent request heads than it has connection slots, each reopened as soon as it is
//! cut. The image's HEALTHCHECK (`ovs-appliance healthcheck`, 2 s) must keep passing.

mod common;

use common::*;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ATTACKERS: usize = 320;

/// Holds half a request head on the appliance's listener, reopening it when cut.
async fn hold(cuts: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = tokio::net::TcpStream::connect("127.0.0.1:9476").await else {
            tokio::time::sleep(Duration::from_millis(1)).await;
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

#[test]
fn the_healthcheck_passes_while_a_slowloris_client_holds_more_heads_than_there_are_slots() {
    if !require_real_ovs() {
        return;
    }
    let mut app = Appliance::new("datapath = \"netdev\"\n");
    app.start_ready();
    let ns = app.netns.name.clone();
    wait_for(Duration::from_secs(20), "/healthz 200", || {
        (http::get(&ns, 9476, "/healthz")?.status == 200).then_some(())
    });
    let (cuts, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let attacker = {
        let (cuts, stop) = (cuts.clone(), stop.clone());
        let path = format!("/run/netns/{ns}");
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap();
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let tasks: Vec<_> = (0..ATTACKERS)
                    .map(|_| tokio::spawn(hold(cuts.clone(), stop.clone())))
                    .collect();
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                for t in tasks {
                    t.abort();
                }
            });
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let (mut passed, mut slowest) = (0, Duration::ZERO);
    for _ in 0..20 {
        let began = Instant::now();
        let out = run(
            Command::new("ip").args(["netns", "exec", &ns, BIN, "healthcheck"]),
            Duration::from_secs(10),
        );
        slowest = slowest.max(began.elapsed());
        passed += usize::from(out.status.success());
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    attacker.join().unwrap();
    eprintln!(
        "healthcheck under {ATTACKERS} half-sent heads: {passed} of 20 passed, slowest {slowest:?} ({} cuts)",
        cuts.load(Ordering::Relaxed)
    );
    assert!(app.still_running());
    assert_eq!(passed, 20, "{passed} of 20 healthchecks passed");
}
