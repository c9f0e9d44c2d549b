//! Tests of the client against scripted stub servers on 127.0.0.1:0 (not the real server).

use std::time::Duration;

use confab_protocol::{ErrorCode, ServerFrame};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::{ClientError, ConnectAuth, ConnectOptions, HttpClient, Method, WsClient};

const T: Duration = Duration::from_secs(5);

const READY: &str = r#"{"type":"ready","session_id":"s_1","user":{"id":"u_1","name":"ada"},
 "rooms":[{"id":"r_1","name":"general","visibility":"public","owner":"u_1",
 "created_ts":1,"member_count":1,"last_seq":41,"read_seq":40}],"heartbeat_ms":25000,
 "limits":{"max_body":4000,"max_frame":65536,"rate_per_s":10,"burst":20,
 "flood_close":{"count":50,"window_ms":10000}}}"#;

const MSG: &str = r#"{"type":"msg","room":"r_1","seq":42,"id":"e","kind":"text",
 "from":{"id":"u_1","name":"ada"},"body":"hi","ts":5,"client_id":"c1"}"#;

async fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", l.local_addr().expect("addr"));
    (l, base)
}

fn text(m: Message) -> Value {
    serde_json::from_str(m.to_text().expect("text")).expect("json")
}

#[tokio::test]
async fn a_request_gets_its_reply_and_other_frames_are_kept_in_order() {
    let (l, base) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.expect("accept");
        #[allow(clippy::result_large_err)] // the callback's type is tungstenite's
        let check = |req: &Request, resp: Response| {
            assert_eq!(req.headers()["authorization"], "Bearer tok");
            assert_eq!(req.headers()["origin"], "http://example.test");
            Ok(resp)
        };
        let mut ws = tokio_tungstenite::accept_hdr_async(tcp, check)
            .await
            .expect("upgrade");
        ws.send(Message::text(READY)).await.expect("ready");
        let req = text(ws.next().await.expect("frame").expect("ok"));
        assert_eq!(req["type"], "send");
        ws.send(Message::text(MSG)).await.expect("msg");
        let ack = json!({"type":"ack","ref":req["ref"],"room":"r_1","seq":42,"id":"e","ts":5,
            "client_id":"c1"});
        ws.send(Message::text(ack.to_string())).await.expect("ack");
        // A ping must be answered while the client reads.
        ws.send(Message::Ping(b"p".to_vec().into()))
            .await
            .expect("ping");
        match ws.next().await.expect("frame").expect("ok") {
            Message::Pong(p) => assert_eq!(&p[..], b"p"),
            other => panic!("expected pong, got {other:?}"),
        }
        ws.send(Message::text(r#"{"type":"pong"}"#))
            .await
            .expect("pong");
        let close = CloseFrame {
            code: 4009.into(),
            reason: "slow".into(),
        };
        ws.send(Message::Close(Some(close))).await.expect("close");
        // The client completes the closing handshake.
        let reply = ws.next().await.expect("reply").expect("ok");
        assert!(matches!(reply, Message::Close(Some(ref f)) if u16::from(f.code) == 4009));
    });
    let opts = ConnectOptions::default().with_origin("http://example.test");
    let (mut ws, ready) = WsClient::connect_with(&base, ConnectAuth::Bearer("tok".into()), &opts)
        .await
        .expect("connects");
    assert_eq!(ready.rooms[0].last_seq, 41);
    let ack = ws.send_wait("r_1", "c1", "hi", T).await.expect("acked");
    assert_eq!(ack.seq, 42);
    let stashed = ws.next_frame(T).await.expect("stashed msg");
    assert!(matches!(stashed, ServerFrame::Msg(ref e) if e.seq == 42));
    let pong = ws.next_frame(T).await.expect("pong after the ping");
    assert!(matches!(pong, ServerFrame::Pong { .. }));
    assert_eq!(ws.next_close(T).await, Some((4009, "slow".to_string())));
    let err = ws.next_frame(T).await.expect_err("closed");
    assert_eq!(err.close_code(), Some(4009));
    server.await.expect("server");
}

#[tokio::test]
async fn a_refused_auth_frame_is_an_api_error_and_the_close_code_is_seen() {
    let (l, base) = listener().await;
    let server = tokio::spawn(async move {
        for _ in 0..2 {
            let (tcp, _) = l.accept().await.expect("accept");
            let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
            let auth = text(ws.next().await.expect("frame").expect("ok"));
            assert_eq!(auth["type"], "auth");
            assert_eq!(auth["sync"]["r_1"], 3);
            let err = r#"{"type":"error","code":"unauthorized","message":"bad token"}"#;
            ws.send(Message::text(err)).await.expect("error");
            let close = CloseFrame {
                code: 4001.into(),
                reason: "".into(),
            };
            ws.send(Message::Close(Some(close))).await.expect("close");
        }
    });
    let sync = [("r_1".to_string(), 3)].into();
    let auth = ConnectAuth::Frame {
        token: "bad".into(),
        sync: Some(sync),
    };
    let err = WsClient::connect(&base, auth.clone())
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Some(ErrorCode::Unauthorized));
    assert_eq!(err.status(), Some(401));

    let mut ws = WsClient::open(&base, None, &ConnectOptions::default())
        .await
        .expect("opens");
    let ConnectAuth::Frame { token, sync } = auth else {
        unreachable!()
    };
    ws.send_frame(crate::connect::auth_frame(&token, sync.as_ref()))
        .await
        .expect("sent");
    assert_eq!(ws.next_close(T).await.map(|c| c.0), Some(4001));
    assert!(matches!(
        ws.next_frame(T).await,
        Ok(ServerFrame::Error {
            code: ErrorCode::Unauthorized,
            ..
        })
    ));
    server.await.expect("server");
}

/// A stub that answers one HTTP request with `response` and returns the request's head.
async fn http_stub(head: &str, body: &str) -> (String, tokio::task::JoinHandle<String>) {
    let response = format!("{head}content-length: {}\r\n\r\n{body}", body.len());
    let (l, base) = listener().await;
    let task = tokio::spawn(async move {
        let (mut tcp, _) = l.accept().await.expect("accept");
        let mut buf = vec![0u8; 8192];
        let n = tcp.read(&mut buf).await.expect("read");
        tcp.write_all(response.as_bytes()).await.expect("write");
        tcp.shutdown().await.ok();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    (base, task)
}

#[tokio::test]
async fn a_refused_upgrade_reports_its_status_and_code() {
    let (base, task) = http_stub(
        "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\n",
        r#"{"error":{"code":"forbidden","message":"no"}}"#,
    )
    .await;
    let err = WsClient::open(&base, Some("t"), &ConnectOptions::default())
        .await
        .expect_err("refused");
    assert!(
        matches!(err, ClientError::UpgradeRefused { status: 403, .. }),
        "{err:?}"
    );
    let head = task.await.expect("stub");
    assert!(head.starts_with("GET /v1/ws HTTP/1.1"), "{head}");
}

#[tokio::test]
async fn an_http_error_body_and_retry_after_become_a_typed_error() {
    let (base, task) = http_stub(
        "HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\n",
        r#"{"error":{"code":"rate_limited","message":"x"}}"#,
    )
    .await;
    let http = HttpClient::new(&base).with_token("tok");
    let err = http.publish("r 1", "c1", "hi").await.expect_err("limited");
    assert!(
        matches!(
            err,
            ClientError::Api {
                status: 429,
                code: ErrorCode::RateLimited,
                retry_after_ms: Some(1000),
                ..
            }
        ),
        "{err:?}"
    );
    let head = task.await.expect("stub");
    assert!(
        head.starts_with("POST /v1/rooms/r%201/messages HTTP/1.1"),
        "{head}"
    );
    assert!(
        head.to_lowercase().contains("authorization: bearer tok"),
        "{head}"
    );
}

#[tokio::test]
async fn raw_calls_return_any_status_with_headers_and_body() {
    let (base, task) = http_stub("HTTP/1.1 204 No Content\r\nx-test: yes\r\n", "").await;
    let raw = HttpClient::new(&base)
        .raw(Method::DELETE, "/v1/sessions", None)
        .await
        .expect("answered");
    assert_eq!(raw.status, 204);
    assert_eq!(raw.headers["x-test"], "yes");
    assert!(raw.body.is_empty());
    task.await.expect("stub");
}

#[tokio::test]
async fn a_frame_that_is_not_a_known_server_frame_is_a_decode_error_not_a_panic() {
    let (l, base) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.expect("accept");
        let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
        for bad in ["not json", r#"{"type":"nope"}"#, r#"{"type":"pong"}"#] {
            ws.send(Message::text(bad)).await.expect("send");
        }
        ws.send(Message::binary(vec![1, 2])).await.expect("send");
        // Dropping the socket without a close frame.
    });
    let mut ws = WsClient::open(&base, None, &ConnectOptions::default())
        .await
        .expect("opens");
    assert!(matches!(
        ws.next_frame(T).await,
        Err(ClientError::Decode { .. })
    ));
    assert!(matches!(
        ws.next_frame(T).await,
        Err(ClientError::Decode { .. })
    ));
    assert!(matches!(
        ws.next_frame(T).await,
        Ok(ServerFrame::Pong { .. })
    ));
    assert!(matches!(
        ws.next_frame(T).await,
        Err(ClientError::Decode { .. })
    ));
    server.await.expect("server");
    let (code, _) = ws.next_close(T).await.expect("ended");
    assert_eq!(code, crate::ws::ABNORMAL_CLOSE);
}
