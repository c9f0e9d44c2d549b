//! Malformed input: every kind is `bad_request` and the connection stays open, except text
//! that is not UTF-8 (1007); and one session's garbage never disturbs another session.

use std::time::Duration;

use confab_client::protocol::{ErrorCode, ServerFrame};
use confab_client::{WsClient, build};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::helpers::*;
use crate::util::*;

/// Sends `text` as one text frame: it must get `bad_request` carrying `reference`, and the
/// connection must keep answering. Returns the error message.
async fn bad(ws: &mut WsClient, text: &str, reference: Option<Value>) -> String {
    ws.send_text(text).await.expect("send");
    let (r, code, message) = next_error(ws).await;
    assert_eq!(code, ErrorCode::BadRequest, "{text}: {message}");
    assert_eq!(r, reference, "the error's ref for {text}");
    assert_open(ws).await;
    message
}

/// Sends a text frame whose payload is `bytes` as they are (not necessarily UTF-8).
pub async fn send_raw_text(ws: &mut WsClient, bytes: Vec<u8>) {
    let frame = Frame::message(bytes, OpCode::Data(Data::Text), true);
    ws.sender()
        .send_message(Message::Frame(frame))
        .await
        .expect("send raw frame");
}

#[tokio::test]
async fn invalid_json_or_a_frame_that_is_not_an_object_is_bad_request_and_stays_open() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (mut a, _) = app.ws(&ada).await;
    for text in [
        "",
        " ",
        "{",
        r#"{"type":"ping""#,
        r#"{"type":"ping",}"#,
        "not json",
        "[1,2]",
        r#""ping""#,
        "42",
        "null",
        r#"{"type":"ping"} {"type":"ping"}"#,
    ] {
        bad(&mut a, text, None).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_or_missing_type_is_bad_request_with_the_frames_ref() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (mut a, _) = app.ws(&ada).await;
    let m = bad(&mut a, r#"{"type":"shout","ref":"r1"}"#, Some(json!("r1"))).await;
    assert!(m.contains("shout"), "{m}");
    bad(&mut a, r#"{"ref":2}"#, Some(json!(2))).await;
    bad(&mut a, r#"{"type":7,"ref":3}"#, Some(json!(3))).await;
    bad(&mut a, r#"{"type":"PING","ref":4}"#, Some(json!(4))).await;
    bad(&mut a, r#"{"type":"ready","ref":5}"#, Some(json!(5))).await;
    app.stop().await;
}

#[tokio::test]
async fn a_missing_or_ill_typed_field_is_bad_request_with_the_frames_ref() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (mut a, _) = app.ws(&ada).await;
    let frames = [
        r#"{"type":"send","room":"r","body":"hi","ref":"m1"}"#,
        r#"{"type":"send","client_id":"c","body":"hi","ref":"m2"}"#,
        r#"{"type":"edit","room":"r","target":3,"ref":"m3"}"#,
        r#"{"type":"read","room":"r","ref":"m4"}"#,
        r#"{"type":"sync","ref":"m5"}"#,
        r#"{"type":"send","room":1,"client_id":"c","body":"hi","ref":"t1"}"#,
        r#"{"type":"send","room":"r","client_id":"c","body":null,"ref":"t2"}"#,
        r#"{"type":"read","room":"r","seq":"three","ref":"t3"}"#,
        r#"{"type":"read","room":"r","seq":-1,"ref":"t4"}"#,
        r#"{"type":"read","room":"r","seq":1.5,"ref":"t5"}"#,
        r#"{"type":"edit","room":"r","target":true,"body":"x","ref":"t6"}"#,
        r#"{"type":"sync","rooms":[1,2],"ref":"t7"}"#,
        r#"{"type":"sync","rooms":{"r":"x"},"ref":"t8"}"#,
        r#"{"type":"history","room":"r","limit":"10","ref":"t9"}"#,
        r#"{"type":"join","room":["r"],"ref":"t10"}"#,
    ];
    for text in frames {
        let r: Value = serde_json::from_str::<Value>(text).expect("json")["ref"].clone();
        bad(&mut a, text, Some(r)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_field_is_bad_request_naming_the_field() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (mut a, _) = app.ws(&ada).await;
    let m = bad(
        &mut a,
        r#"{"type":"send","room":"r","client_id":"c","bdy":"hi","ref":1}"#,
        Some(json!(1)),
    )
    .await;
    assert!(m.contains("bdy"), "the message names the field: {m}");
    let m = bad(
        &mut a,
        r#"{"type":"ping","extra":true,"ref":2}"#,
        Some(json!(2)),
    )
    .await;
    assert!(m.contains("extra"), "{m}");
    app.stop().await;
}

#[tokio::test]
async fn a_ref_that_is_neither_a_short_string_nor_an_integer_is_bad_request_without_ref() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (mut a, _) = app.ws(&ada).await;
    let long = "x".repeat(65);
    for r in [
        json!({"a": 1}),
        json!([1]),
        json!(1.5),
        json!(true),
        json!(long),
    ] {
        let text = json!({"type": "ping", "ref": r}).to_string();
        bad(&mut a, &text, None).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn huge_numbers_are_bad_request_and_stay_open() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (mut a, _) = app.ws(&ada).await;
    // Out of even f64's range: the JSON itself is refused, so its ref cannot be read.
    for number in ["1e400", "-1e400"] {
        let text = format!(r#"{{"type":"read","room":"r","seq":{number},"ref":"n"}}"#);
        bad(&mut a, &text, None).await;
    }
    // Valid JSON, but no u64: the field is refused and the ref is kept.
    for number in [
        "1180591620717411303424", // 2^70
        "18446744073709551616",   // 2^64
        "1e19",
    ] {
        let text = format!(r#"{{"type":"read","room":"r","seq":{number},"ref":"n"}}"#);
        bad(&mut a, &text, Some(json!("n"))).await;
        let text = format!(r#"{{"type":"history","room":"r","limit":{number},"ref":"h"}}"#);
        bad(&mut a, &text, Some(json!("h"))).await;
    }
    // A huge number as the ref itself is no integer ref.
    bad(
        &mut a,
        r#"{"type":"ping","ref":1180591620717411303424}"#,
        None,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn deeply_nested_json_is_bad_request_and_stays_open() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (mut a, _) = app.ws(&ada).await;
    for depth in [129usize, 1_000, 20_000] {
        let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        bad(&mut a, &format!(r#"{{"type":"ping","x":{nested}}}"#), None).await;
        bad(&mut a, &nested, None).await;
    }
    for depth in [129usize, 5_000] {
        let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        bad(&mut a, &objects, None).await;
        let inside = format!(r#"{{"type":"sync","rooms":{{"r":{objects}}}}}"#);
        bad(&mut a, &inside, None).await;
    }
    // 128 levels is still fine as JSON: the frame is refused only for its unknown field.
    let ok_depth = format!("{}{}", "[".repeat(120), "]".repeat(120));
    let m = bad(
        &mut a,
        &format!(r#"{{"type":"ping","x":{ok_depth}}}"#),
        None,
    )
    .await;
    assert!(m.contains("unknown field"), "{m}");
    app.stop().await;
}

#[tokio::test]
async fn a_binary_frame_is_bad_request_and_stays_open() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (mut a, _) = app.ws(&ada).await;
    for data in [
        build::ping().to_string().into_bytes(),
        Vec::new(),
        vec![0xff; 100],
    ] {
        a.send_binary(data).await.expect("send");
        let (r, code, _) = next_error(&mut a).await;
        assert_eq!((r, code), (None, ErrorCode::BadRequest));
        assert_open(&mut a).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_gets_bad_request_then_close_1007() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    for payload in [
        b"\xff\xfe".to_vec(),
        [&br#"{"type":"ping","ref":""#[..], &[0xc3], &br#""}"#[..]].concat(),
        b"\xed\xa0\x80".to_vec(), // an encoded surrogate
    ] {
        let (mut a, _) = app.ws(&ada).await;
        send_raw_text(&mut a, payload.clone()).await;
        let (frames, code) = until_close(&mut a).await;
        assert_eq!(code, 1007, "payload {payload:?}");
        let errors: Vec<_> = frames
            .iter()
            .filter_map(|f| match f {
                ServerFrame::Error { code, .. } => Some(*code),
                _ => None,
            })
            .collect();
        assert_eq!(errors, vec![ErrorCode::BadRequest], "{frames:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_malformed_frame_never_disturbs_another_session() {
    let app = spawn_roomy().await;
    let p = pair(&app).await;
    let (mallory, _) = app.user("mallory").await;
    mallory.join(&p.room.id).await.expect("join");
    let (mut a, _) = app.ws(&p.ada).await;
    let (mut b, _) = app.ws(&p.bob).await;
    // Garbage from another user's session and from a second session of the sender's own user.
    let (mut m, _) = app.ws(&mallory).await;
    let (mut a_bad, _) = app.ws(&p.ada).await;
    let garbage = tokio::spawn(async move {
        let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
        let texts = [
            "{".to_string(),
            r#"{"type":"shout"}"#.to_string(),
            r#"{"type":"read","room":"r","seq":1e400}"#.to_string(),
            deep,
            r#"{"type":"send","room":"r","client_id":"c","bdy":"x"}"#.to_string(),
        ];
        for round in 0..20 {
            for (i, ws) in [&mut m, &mut a_bad].into_iter().enumerate() {
                ws.send_text(texts[(round + i) % texts.len()].clone())
                    .await
                    .expect("garbage");
                ws.send_binary(vec![0; 64]).await.expect("binary");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Finally mallory's session is closed for bad UTF-8.
        send_raw_text(&mut m, vec![0xc0, 0x80]).await;
        let (_, code) = until_close(&mut m).await;
        assert_eq!(code, 1007);
        assert_open(&mut a_bad).await;
    });
    for i in 0..20u64 {
        let ack = acked(
            &mut a,
            build::send(&p.room.id, &format!("c{i}"), &format!("m{i}")),
        )
        .await;
        let e = next_msg(&mut b).await;
        assert_eq!((e.seq, e.id), (ack.seq, ack.id));
        assert_eq!(e.seq, 4 + i, "bob gets every message in order");
    }
    garbage.await.expect("garbage task");
    acked(&mut b, build::send(&p.room.id, "after", "still fine")).await;
    assert_eq!(next_msg(&mut a).await.body.as_deref(), Some("m0"));
    app.stop().await;
}
