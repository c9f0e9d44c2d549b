//! The error model: shapes and statuses, size limits, malformed input, the order in which failed
//! rules answer, the rate limit, unknown endpoints.

use confab_client::protocol::{ServerFrame, Visibility};
use confab_client::{HttpClient, Method, RawResponse, build};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::*;

/// Burst 2, then one a second.
fn tight(c: &mut confab_server::Config) {
    c.rate_per_s = 1;
    c.burst = 2;
}

async fn publish_raw(http: &HttpClient, room: &str, client_id: &str, body: &str) -> RawResponse {
    call(
        http,
        Method::POST,
        &messages_path(room),
        Some(json!({"client_id": client_id, "body": body})),
    )
    .await
}

/// Asserts a 429 with a `Retry-After` header (whole seconds, at least 1) and a matching
/// `retry_after_ms` in the error object.
#[track_caller]
fn assert_rate_limited(raw: &RawResponse) {
    let error = assert_error(raw, 429, "rate_limited");
    let ms = error["retry_after_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("retry_after_ms is a number: {error}"));
    assert!(
        (1..=1000).contains(&ms),
        "at 1/s a token is at most 1 s away: {ms}"
    );
    let header = raw
        .headers
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .expect("ASCII");
    let secs: u64 = header.parse().expect("Retry-After in whole seconds");
    assert!(
        secs >= 1 && secs * 1000 >= ms,
        "Retry-After {secs} s covers {ms} ms"
    );
}

/// A JSON publish body of exactly `size` bytes.
fn publish_body_of(size: usize) -> Vec<u8> {
    let head = br#"{"client_id":"big","body":""#;
    let tail = br#""}"#;
    let mut body = head.to_vec();
    body.resize(size - tail.len(), b'a');
    body.extend_from_slice(tail);
    assert_eq!(body.len(), size);
    body
}

#[tokio::test]
async fn every_error_code_answers_with_its_status_and_a_json_error_object() {
    let app = spawn_with(tight).await;
    let (ada, _) = app.user("ada").await;
    let (bob, _) = app.user("bob").await;
    let r = room(&ada, "general", Visibility::Public).await;
    let anonymous = app.http();
    let cases: Vec<(&str, RawResponse, u16, &str)> = vec![
        (
            "malformed JSON",
            ada.raw_bytes(Method::POST, "/v1/rooms", None, b"{".to_vec())
                .await
                .expect("answer"),
            400,
            "bad_request",
        ),
        (
            "no token",
            call(&anonymous, Method::GET, "/v1/rooms", None).await,
            401,
            "unauthorized",
        ),
        (
            "not a member",
            publish_raw(&bob, &r.id, "c", "hi").await,
            403,
            "forbidden",
        ),
        (
            "no such room",
            call(&ada, Method::POST, "/v1/rooms/r_nope/join", None).await,
            404,
            "not_found",
        ),
        (
            "a taken name",
            call(
                &anonymous,
                Method::POST,
                "/v1/users",
                Some(json!({"name": "ada", "password": "password123"})),
            )
            .await,
            409,
            "conflict",
        ),
        (
            "a body over 64 KiB",
            ada.raw_bytes(
                Method::POST,
                &messages_path(&r.id),
                Some("application/json"),
                publish_body_of(65_537),
            )
            .await
            .expect("answer"),
            413,
            "too_large",
        ),
    ];
    for (what, raw, status, code) in cases {
        assert_eq!(raw.status, status, "{what}: {}", raw.text());
        assert_error(&raw, status, code);
    }
    publish_raw(&ada, &r.id, "c1", "1").await;
    publish_raw(&ada, &r.id, "c2", "2").await;
    assert_rate_limited(&publish_raw(&ada, &r.id, "c3", "3").await);
    app.stop().await;
}

#[tokio::test]
async fn a_request_body_over_64_kib_is_413_too_large_and_64_kib_exactly_is_read() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let r = room(&ada, "general", Visibility::Public).await;
    let path = messages_path(&r.id);
    // 64 KiB exactly is read (and its 65,000-character body is then too long: 400).
    let raw = ada
        .raw_bytes(
            Method::POST,
            &path,
            Some("application/json"),
            publish_body_of(65_536),
        )
        .await
        .expect("answer");
    assert_error(&raw, 400, "bad_request");
    // One byte more, on every call with a body, with or without a token, is 413.
    let big = publish_body_of(65_537);
    for http in [&ada, &app.http(), &ada.with_token("not-a-token")] {
        for path in [
            path.as_str(),
            "/v1/users",
            "/v1/sessions",
            "/v1/rooms",
            "/v1/dms",
            &format!("/v1/rooms/{}/members", r.id),
        ] {
            let raw = http
                .raw_bytes(Method::POST, path, Some("application/json"), big.clone())
                .await
                .expect("answer");
            assert_eq!(raw.status, 413, "{path}: {}", raw.text());
            assert_error(&raw, 413, "too_large");
        }
    }
    // Much larger bodies too.
    let huge = publish_body_of(1 << 20);
    let raw = ada
        .raw_bytes(Method::POST, &path, Some("application/json"), huge)
        .await
        .expect("answer");
    assert_error(&raw, 413, "too_large");
    assert_eq!(log(&ada, &r.id).await.len(), 1, "nothing stored");
    app.stop().await;
}

#[tokio::test]
async fn malformed_json_is_400_on_every_call_that_takes_a_body() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let r = room(&ada, "general", Visibility::Public).await;
    let members = format!("/v1/rooms/{}/members", r.id);
    let paths = [
        "/v1/users",
        "/v1/sessions",
        "/v1/rooms",
        "/v1/dms",
        members.as_str(),
        &messages_path(&r.id),
    ];
    let bodies: [&[u8]; 8] = [
        b"",
        b"{",
        b"not json",
        b"{\"name\":\"ada\",}",
        b"null",
        b"[]",
        b"\xff\xfe",
        b"{\"a\":1} trailing",
    ];
    for path in paths {
        for body in bodies {
            let raw = ada
                .raw_bytes(Method::POST, path, Some("application/json"), body.to_vec())
                .await
                .expect("answer");
            assert_eq!(
                raw.status,
                400,
                "{path} {:?}: {}",
                String::from_utf8_lossy(body),
                raw.text()
            );
            assert_error(&raw, 400, "bad_request");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_body_is_read_as_json_whatever_its_content_type() {
    let app = spawn_app().await;
    let http = app.http();
    let body = br#"{"name":"ada","password":"password123"}"#.to_vec();
    for (name, content_type) in [("ada", Some("text/plain")), ("bob", None)] {
        let body = String::from_utf8_lossy(&body)
            .replace("ada", name)
            .into_bytes();
        let raw = http
            .raw_bytes(Method::POST, "/v1/users", content_type, body)
            .await
            .expect("answer");
        assert_eq!(raw.status, 201, "{content_type:?}: {}", raw.text());
    }
    app.stop().await;
}

#[tokio::test]
async fn a_malformed_request_is_400_even_without_a_token() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let r = room(&ada, "general", Visibility::Public).await;
    let members = format!("/v1/rooms/{}/members", r.id);
    let messages = messages_path(&r.id);
    for http in [app.http(), app.http().with_token("not-a-token")] {
        for path in ["/v1/rooms", "/v1/dms", members.as_str(), messages.as_str()] {
            let raw = http
                .raw_bytes(Method::POST, path, Some("application/json"), b"{".to_vec())
                .await
                .expect("answer");
            assert_eq!(raw.status, 400, "{path}: {}", raw.text());
            assert_error(&raw, 400, "bad_request");
        }
        for (path, body) in [
            (messages.as_str(), json!({"client_id": "c", "bdy": "typo"})),
            ("/v1/rooms", json!({"name": "x", "visibility": "secret"})),
            ("/v1/dms", json!({"who": "bob"})),
        ] {
            let raw = call(&http, Method::POST, path, Some(body)).await;
            assert_eq!(raw.status, 400, "{path}: {}", raw.text());
            assert_error(&raw, 400, "bad_request");
        }
        for query in [
            format!("{messages}?limit=0"),
            format!("{messages}?limit=101"),
            format!("{messages}?before=3&after=1"),
            format!("{messages}?after=x"),
            "/v1/rooms/public?limit=0".into(),
            "/v1/rooms/public?limit=abc".into(),
            format!("/v1/rooms/public?q={}", "q".repeat(65)),
        ] {
            let raw = call(&http, Method::GET, &query, None).await;
            assert_eq!(raw.status, 400, "{query}: {}", raw.text());
            assert_error(&raw, 400, "bad_request");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn an_invalid_message_or_room_name_is_400_even_without_a_token() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let r = room(&ada, "general", Visibility::Public).await;
    let messages = messages_path(&r.id);
    let too_long = "a".repeat(4001);
    let long_id = "c".repeat(65);
    for http in [app.http(), app.http().with_token("not-a-token")] {
        for (path, body) in [
            (messages.as_str(), json!({"client_id": "c", "body": ""})),
            (
                messages.as_str(),
                json!({"client_id": "c", "body": too_long}),
            ),
            (
                messages.as_str(),
                json!({"client_id": long_id, "body": "hi"}),
            ),
            (messages.as_str(), json!({"client_id": "", "body": "hi"})),
            ("/v1/rooms", json!({"name": ""})),
            ("/v1/rooms", json!({"name": "a".repeat(65)})),
        ] {
            let raw = call(&http, Method::POST, path, Some(body.clone())).await;
            assert_eq!(raw.status, 400, "{path} {body}: {}", raw.text());
            assert_error(&raw, 400, "bad_request");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn authentication_is_checked_before_visibility_and_permission() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let public = room(&ada, "general", Visibility::Public).await;
    let private = room(&ada, "secret", Visibility::Private).await;
    for http in [app.http(), app.http().with_token("not-a-token")] {
        for id in [public.id.as_str(), private.id.as_str(), "r_doesnotexist"] {
            let p = |what: &str| format!("/v1/rooms/{id}/{what}");
            let calls: Vec<(Method, String, Option<Value>)> = vec![
                (Method::POST, p("join"), None),
                (Method::POST, p("leave"), None),
                (Method::POST, p("members"), Some(json!({"user": "ada"}))),
                (Method::DELETE, p("members/ada"), None),
                (Method::GET, p("messages"), None),
                (
                    Method::POST,
                    p("messages"),
                    Some(json!({"client_id": "c", "body": "hi"})),
                ),
            ];
            for (method, path, body) in calls {
                let raw = call(&http, method.clone(), &path, body).await;
                assert_eq!(raw.status, 401, "{method} {path}: {}", raw.text());
                assert_error(&raw, 401, "unauthorized");
            }
        }
        let raw = call(
            &http,
            Method::POST,
            "/v1/dms",
            Some(json!({"user": "nobody"})),
        )
        .await;
        assert_error(&raw, 401, "unauthorized");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_third_publish_in_a_burst_of_two_is_429_with_retry_after() {
    let app = spawn_with(tight).await;
    let (ada, _) = app.user("ada").await;
    let r = room(&ada, "general", Visibility::Public).await;
    for i in 1..=2 {
        let raw = publish_raw(&ada, &r.id, &format!("c{i}"), "hi").await;
        assert_eq!(raw.status, 201, "{}", raw.text());
    }
    let raw = publish_raw(&ada, &r.id, "c3", "hi").await;
    assert_rate_limited(&raw);
    let (status, code) = failure(ada.publish(&r.id, "c4", "hi").await);
    assert_eq!((status, code.as_str()), (429, "rate_limited"));
    assert_eq!(
        log(&ada, &r.id).await.len(),
        3,
        "nothing stored past the limit"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_request_refused_for_another_reason_uses_no_rate_token() {
    let app = spawn_with(tight).await;
    let (ada, _) = app.user("ada").await;
    let (bob, _) = app.user("bob").await;
    let mine = room(&ada, "mine", Visibility::Public).await;
    let bobs_public = room(&bob, "bob's", Visibility::Public).await;
    let bobs_private = room(&bob, "bob's secret", Visibility::Private).await;
    for i in 0..3 {
        let c = format!("refused{i}");
        assert_error(
            &publish_raw(&ada, &bobs_public.id, &c, "hi").await,
            403,
            "forbidden",
        );
        assert_error(
            &publish_raw(&ada, &bobs_private.id, &c, "hi").await,
            404,
            "not_found",
        );
        assert_error(
            &publish_raw(&ada, "r_nope", &c, "hi").await,
            404,
            "not_found",
        );
        assert_error(
            &publish_raw(&ada, &mine.id, &c, "").await,
            400,
            "bad_request",
        );
    }
    // The whole burst is still there.
    for i in 1..=2 {
        let raw = publish_raw(&ada, &mine.id, &format!("c{i}"), "hi").await;
        assert_eq!(raw.status, 201, "{}", raw.text());
    }
    assert_rate_limited(&publish_raw(&ada, &mine.id, "c3", "hi").await);
    app.stop().await;
}

#[tokio::test]
async fn visibility_and_permission_answer_before_the_rate_limit() {
    let app = spawn_with(tight).await;
    let (ada, _) = app.user("ada").await;
    let (bob, _) = app.user("bob").await;
    let mine = room(&ada, "mine", Visibility::Public).await;
    let bobs_public = room(&bob, "bob's", Visibility::Public).await;
    let bobs_private = room(&bob, "bob's secret", Visibility::Private).await;
    publish_raw(&ada, &mine.id, "c1", "1").await;
    publish_raw(&ada, &mine.id, "c2", "2").await;
    assert_rate_limited(&publish_raw(&ada, &mine.id, "c3", "3").await);
    // Out of tokens, yet other failures answer as themselves.
    assert_error(
        &publish_raw(&ada, &bobs_public.id, "c4", "x").await,
        403,
        "forbidden",
    );
    assert_error(
        &publish_raw(&ada, &bobs_private.id, "c4", "x").await,
        404,
        "not_found",
    );
    assert_error(
        &publish_raw(&ada, "r_nope", "c4", "x").await,
        404,
        "not_found",
    );
    assert_error(
        &publish_raw(&ada, &mine.id, "c4", "").await,
        400,
        "bad_request",
    );
    assert_error(
        &publish_raw(&app.http(), &mine.id, "c4", "x").await,
        401,
        "unauthorized",
    );
    // The limit is per user: bob still has his burst.
    let raw = publish_raw(&bob, &bobs_public.id, "c1", "bob").await;
    assert_eq!(raw.status, 201, "{}", raw.text());
    app.stop().await;
}

#[tokio::test]
async fn the_http_publish_shares_one_rate_bucket_with_websocket_sends() {
    let app = spawn_with(tight).await;
    let (ada, _) = app.user("ada").await;
    let r = room(&ada, "general", Visibility::Public).await;
    let (mut ws, _) = app.ws(&ada).await;
    for i in 1..=2 {
        let reply = ws
            .request(build::send(&r.id, &format!("ws{i}"), "via ws"), WAIT)
            .await
            .expect("acked");
        assert!(matches!(reply, ServerFrame::Ack { .. }), "{reply:?}");
    }
    assert_rate_limited(&publish_raw(&ada, &r.id, "http1", "via http").await);
    app.stop().await;
}

#[tokio::test]
async fn a_retried_publish_takes_a_rate_token_like_any_send() {
    let app = spawn_with(tight).await;
    let (ada, _) = app.user("ada").await;
    let r = room(&ada, "general", Visibility::Public).await;
    assert_eq!(publish_raw(&ada, &r.id, "c1", "one").await.status, 201);
    assert_eq!(publish_raw(&ada, &r.id, "c1", "one").await.status, 200);
    assert_rate_limited(&publish_raw(&ada, &r.id, "c1", "one").await);
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_endpoint_is_404_not_found_as_json() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let r = room(&ada, "general", Visibility::Public).await;
    for (method, path) in [
        (Method::GET, "/v1/nope".to_owned()),
        (Method::POST, "/v1/nope".to_owned()),
        (Method::GET, "/v2/rooms".to_owned()),
        (Method::POST, format!("/v1/rooms/{}/nope", r.id)),
        (Method::GET, "/v1/rooms/a/b/c/d".to_owned()),
        (Method::GET, "/no-such-file.js".to_owned()),
    ] {
        for http in [&ada, &app.http()] {
            let raw = call(http, method.clone(), &path, None).await;
            assert_eq!(raw.status, 404, "{method} {path}: {}", raw.text());
            assert_error(&raw, 404, "not_found");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_known_path_with_the_wrong_method_is_405_with_a_bad_request_body() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let r = room(&ada, "general", Visibility::Public).await;
    for (method, path) in [
        (Method::GET, "/v1/users".to_owned()),
        (Method::PUT, "/v1/sessions".to_owned()),
        (Method::DELETE, "/v1/rooms".to_owned()),
        (Method::GET, format!("/v1/rooms/{}/join", r.id)),
        (Method::PATCH, messages_path(&r.id)),
        (Method::POST, "/healthz".to_owned()),
    ] {
        let raw = call(&ada, method.clone(), &path, None).await;
        assert_eq!(raw.status, 405, "{method} {path}: {}", raw.text());
        let error = json(&raw);
        assert_eq!(error["error"]["code"], "bad_request", "{error}");
        assert!(error["error"]["message"].is_string());
    }
    app.stop().await;
}

#[tokio::test]
async fn an_internal_error_answers_500_internal_and_names_no_internals() {
    let dir = tempfile::tempdir().expect("dir");
    let app = spawn_in(dir.path(), |_| {}).await;
    let (ada, _) = app.user("ada").await;
    room(&ada, "general", Visibility::Public).await;
    let token = ada.token().expect("token").to_owned();
    app.stop().await;
    // Break a row behind the server's back: a room with a visibility no build writes.
    let db = rusqlite::Connection::open(dir.path().join("confab.db")).expect("open db");
    db.execute("UPDATE rooms SET visibility = 'bogus'", [])
        .expect("corrupt");
    drop(db);
    let app = spawn_in(dir.path(), |_| {}).await;
    let r = app
        .http()
        .with_token(&token)
        .raw(Method::GET, "/v1/rooms", None)
        .await
        .expect("call");
    assert_eq!(r.status, 500);
    let body = r.json().expect("json");
    assert_eq!(body["error"]["code"], "internal");
    assert_eq!(body["error"]["message"], "internal error");
    assert!(
        !r.text().contains("bogus") && !r.text().contains("visibility"),
        "{}",
        r.text()
    );
    app.stop().await;
}
