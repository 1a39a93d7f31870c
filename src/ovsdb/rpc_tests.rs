//! Tests of the connection task against a scripted peer on a socketpair: echo in both
//! directions, replies out of order, values split and batched, and failure on close or garbage.

use super::*;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reads one JSON value from the peer side.
async fn read_msg(peer: &mut UnixStream, framer: &mut Framer) -> Value {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(v) = framer.next_value().unwrap() {
            return v;
        }
        let n = peer.read(&mut buf).await.unwrap();
        assert!(n > 0, "client closed");
        framer.push(&buf[..n]);
    }
}

fn pair() -> (Rpc, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    (Rpc::start(a), b)
}

#[tokio::test]
async fn answers_server_echo_and_ignores_unknown_ids() {
    let (_rpc, mut peer) = pair();
    let mut f = Framer::default();
    peer.write_all(
        br#"{"id":"x","method":"echo","params":[1,"a"]}{"id":99,"result":1,"error":null}"#,
    )
    .await
    .unwrap();
    let reply = read_msg(&mut peer, &mut f).await;
    assert_eq!(reply, json!({"id": "x", "result": [1, "a"], "error": null}));
    peer.write_all(br#"{"id":7,"method":"frob","params":[]}"#)
        .await
        .unwrap();
    let reply = read_msg(&mut peer, &mut f).await;
    assert_eq!(reply["id"], json!(7));
    assert!(reply["error"].is_string());
}

#[tokio::test]
async fn out_of_order_replies_reach_their_callers() {
    let (rpc, mut peer) = pair();
    let calls: Vec<_> = (0..3)
        .map(|i| {
            let rpc = rpc.clone();
            tokio::spawn(async move { rpc.call("m", json!([i])).await })
        })
        .collect();
    let mut f = Framer::default();
    let mut reqs = Vec::new();
    for _ in 0..3 {
        reqs.push(read_msg(&mut peer, &mut f).await);
    }
    // Reply in reverse, all in one write, the last one split across two writes.
    let mut text = String::new();
    for r in reqs.iter().rev() {
        text.push_str(&json!({"id": r["id"], "result": r["params"][0], "error": null}).to_string());
    }
    let (a, b) = text.split_at(text.len() - 5);
    peer.write_all(a.as_bytes()).await.unwrap();
    peer.write_all(b.as_bytes()).await.unwrap();
    for (i, c) in calls.into_iter().enumerate() {
        assert_eq!(c.await.unwrap(), Ok(json!(i)));
    }
}

#[tokio::test]
async fn error_reply_is_remote_error() {
    let (rpc, mut peer) = pair();
    let call = tokio::spawn(async move { rpc.call("m", json!([])).await });
    let req = read_msg(&mut peer, &mut Framer::default()).await;
    let reply = json!({"id": req["id"], "result": null, "error": {"error": "unknown database"}});
    peer.write_all(reply.to_string().as_bytes()).await.unwrap();
    let got = call.await.unwrap();
    assert_eq!(
        got,
        Err(CallError::Remote(json!({"error": "unknown database"})))
    );
}

#[tokio::test]
async fn pending_calls_fail_on_close_and_on_garbage() {
    for ending in [&b""[..], &b"}garbage"[..]] {
        let (rpc, mut peer) = pair();
        let call = {
            let rpc = rpc.clone();
            tokio::spawn(async move { rpc.call("m", json!([])).await })
        };
        read_msg(&mut peer, &mut Framer::default()).await;
        peer.write_all(ending).await.unwrap();
        drop(peer);
        assert!(matches!(call.await.unwrap(), Err(CallError::Closed(_))));
        assert!(matches!(
            rpc.call("again", json!([])).await,
            Err(CallError::Closed(_))
        ));
        assert!(rpc.is_closed());
    }
}

#[tokio::test]
async fn notifications_are_routed_by_id() {
    let (rpc, mut peer) = pair();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mon = json!("mon-1");
    let call = {
        let rpc = rpc.clone();
        let key = RouteKey::monitor(&mon);
        tokio::spawn(async move {
            rpc.call_subscribed("monitor", json!([]), Some((key, tx)))
                .await
        })
    };
    let req = read_msg(&mut peer, &mut Framer::default()).await;
    let msgs = [
        json!({"id": null, "method": "update2", "params": ["other", {}]}),
        json!({"id": req["id"], "result": {}, "error": null}),
        json!({"id": null, "method": "update2", "params": ["mon-1", {"T": {}}]}),
        json!({"id": null, "method": "locked", "params": ["mon-1"]}),
    ];
    for m in &msgs {
        peer.write_all(m.to_string().as_bytes()).await.unwrap();
    }
    call.await.unwrap().unwrap();
    let n = rx.recv().await.unwrap();
    assert_eq!(
        (n.method.as_str(), &n.params[1]),
        ("update2", &json!({"T": {}}))
    );
    drop(peer);
    assert!(
        rx.recv().await.is_none(),
        "lock event must not reach a monitor route"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// The long run over the decoder: arbitrary bytes, and arbitrary JSON messages, never panic.
    #[test]
    fn decoding_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        msgs in prop::collection::vec(crate::ovsdb::datum::tests::json_value(), 0..4),
    ) {
        let mut f = Framer::default();
        f.push(&bytes);
        while let Ok(Some(_)) = f.next_value() {}
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut routes = HashMap::new();
        routes.insert(RouteKey::monitor(&json!("m")), tx);
        let mut t = TaskState { pending: HashMap::new(), routes, out: Vec::new(), sent: 0 };
        for m in msgs {
            t.on_message(m);
        }
    }
}
