//! `POST /v1/users`, `POST /v1/sessions`, `DELETE /v1/sessions`, and tokens on every call.

use std::time::Duration;

use confab_client::protocol::Visibility;
use confab_client::{ClientError, ConnectAuth, HttpClient, Method, WsClient, build};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::*;

async fn register_raw(http: &HttpClient, name: &str, password: &str) -> confab_client::RawResponse {
    call(
        http,
        Method::POST,
        "/v1/users",
        Some(json!({"name": name, "password": password})),
    )
    .await
}

async fn login_raw(http: &HttpClient, name: &str, password: &str) -> confab_client::RawResponse {
    call(
        http,
        Method::POST,
        "/v1/sessions",
        Some(json!({"name": name, "password": password})),
    )
    .await
}

/// The status of a WebSocket upgrade authenticated by `token` in the header, when refused.
async fn upgrade_refusal(app: &TestApp, token: &str) -> u16 {
    match WsClient::connect(&app.base, ConnectAuth::Bearer(token.to_owned())).await {
        Ok(_) => panic!("the upgrade was accepted"),
        Err(ClientError::UpgradeRefused { status, .. }) => status,
        Err(e) => panic!("expected an HTTP refusal of the upgrade, got {e}"),
    }
}

#[tokio::test]
async fn registering_answers_201_with_exactly_an_id_and_the_name() {
    let app = spawn_app().await;
    let raw = register_raw(&app.http(), "ada", "password123").await;
    assert_eq!(raw.status, 201, "{}", raw.text());
    let body = json(&raw);
    assert_eq!(keys(&body), set(&["id", "name"]));
    assert_eq!(body["name"], "ada");
    let id = body["id"].as_str().expect("id is a string");
    assert!((1..=64).contains(&id.len()), "id of 1 to 64 bytes: {id:?}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)),
        "id is URL-safe: {id:?}"
    );
    let bob = register_raw(&app.http(), "bob", "password123").await;
    assert_ne!(json(&bob)["id"], body["id"], "ids are unique");
    app.stop().await;
}

#[tokio::test]
async fn a_taken_name_is_a_conflict() {
    let app = spawn_app().await;
    let http = app.http();
    assert_eq!(register_raw(&http, "ada", "password123").await.status, 201);
    assert_error(
        &register_raw(&http, "ada", "another-password").await,
        409,
        "conflict",
    );
    // Folding makes `ADA` the same name.
    assert_error(
        &register_raw(&http, "ADA", "password123").await,
        409,
        "conflict",
    );
    app.stop().await;
}

#[tokio::test]
async fn a_name_is_folded_to_lower_case_on_sign_up_and_log_in() {
    let app = spawn_app().await;
    let http = app.http();
    let user = http.register("Ada", "password123").await.expect("register");
    assert_eq!(user.name, "ada");
    for name in ["ada", "ADA", "aDa"] {
        let session = http.login(name, "password123").await.expect("login");
        assert_eq!(session.user, user, "logging in as {name}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_name_outside_1_to_32_of_the_allowed_characters_is_a_bad_request() {
    let app = spawn_app().await;
    let http = app.http();
    let too_long = "a".repeat(33);
    for name in [
        "",
        too_long.as_str(),
        "a b",
        "émile",
        "ada!",
        "ada/x",
        "tab\t",
        "ada@example",
        "名前",
    ] {
        let raw = register_raw(&http, name, "password123").await;
        assert_error(&raw, 400, "bad_request");
    }
    let longest = "b".repeat(32);
    for name in ["a", longest.as_str(), "a_b.c-9", "0.0"] {
        let raw = register_raw(&http, name, "password123").await;
        assert_eq!(raw.status, 201, "{name:?}: {}", raw.text());
        assert_eq!(json(&raw)["name"], name);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_password_must_be_8_to_256_bytes() {
    let app = spawn_app().await;
    let http = app.http();
    let cases: [(&str, String, bool); 8] = [
        ("u1", "a".repeat(7), false),
        ("u2", "a".repeat(8), true),
        ("u3", "a".repeat(256), true),
        ("u4", "a".repeat(257), false),
        ("u5", String::new(), false),
        // Bytes, not characters: 4 × `é` is 8 bytes, 129 × `é` is 258.
        ("u6", "é".repeat(4), true),
        ("u7", format!("{}a", "é".repeat(3)), false),
        ("u8", "é".repeat(129), false),
    ];
    for (name, password, ok) in cases {
        let raw = register_raw(&http, name, &password).await;
        if ok {
            assert_eq!(raw.status, 201, "{} bytes: {}", password.len(), raw.text());
            http.login(name, &password)
                .await
                .expect("the password works");
        } else {
            assert_error(&raw, 400, "bad_request");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_sign_up_or_log_in_body_that_is_not_name_and_password_is_a_bad_request() {
    let app = spawn_app().await;
    let http = app.http();
    http.register("ada", "password123").await.expect("register");
    for path in ["/v1/users", "/v1/sessions"] {
        for body in [
            json!({"name": "ada"}),
            json!({"password": "password123"}),
            json!({"name": "ada", "password": "password123", "admin": true}),
            json!({"name": 7, "password": "password123"}),
            json!({"name": "ada", "password": null}),
            json!(["ada", "password123"]),
            json!("ada"),
        ] {
            let raw = call(&http, Method::POST, path, Some(body.clone())).await;
            let error = assert_error(&raw, 400, "bad_request");
            if body.get("admin").is_some() {
                let message = error["message"].as_str().unwrap_or_default();
                assert!(message.contains("admin"), "names the field: {message}");
            }
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn logging_in_answers_200_with_a_token_the_user_and_an_expiry_30_days_ahead_in_utc() {
    let app = spawn_app().await;
    let http = app.http();
    let user = http.register("ada", "password123").await.expect("register");
    let raw = login_raw(&http, "ada", "password123").await;
    assert_eq!(raw.status, 200, "{}", raw.text());
    let body = json(&raw);
    assert_eq!(keys(&body), set(&["token", "user", "expires_at"]));
    assert_eq!(keys(&body["user"]), set(&["id", "name"]));
    assert_eq!(body["user"]["id"], user.id.as_str());
    assert_eq!(body["user"]["name"], "ada");
    let token = body["token"].as_str().expect("token");
    assert!(
        token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "64 hex characters: {token:?}"
    );
    let expires_at = body["expires_at"].as_str().expect("expires_at is a string");
    assert!(expires_at.ends_with('Z'), "UTC: {expires_at}");
    let expires = humantime::parse_rfc3339(expires_at)
        .unwrap_or_else(|e| panic!("{expires_at} is not RFC 3339: {e}"));
    let expires_ms = expires
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis() as i64;
    let thirty_days = 30 * 24 * 3600 * 1000;
    assert!(
        (expires_ms - (now_ms() + thirty_days)).abs() < 120_000,
        "{expires_at} is about 30 days from now"
    );
    // The token works.
    let rooms = http
        .with_token(token)
        .rooms()
        .await
        .expect("the token works");
    assert!(rooms.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_name_get_the_same_401() {
    let app = spawn_app().await;
    let http = app.http();
    http.register("ada", "password123").await.expect("register");
    let wrong_password = login_raw(&http, "ada", "password124").await;
    let unknown_name = login_raw(&http, "bob", "password123").await;
    let malformed_name = login_raw(&http, "no such name!", "password123").await;
    assert_error(&wrong_password, 401, "unauthorized");
    for other in [&unknown_name, &malformed_name] {
        assert_eq!(other.status, wrong_password.status);
        assert_eq!(
            other.body,
            wrong_password.body,
            "the same answer: {} vs {}",
            other.text(),
            wrong_password.text()
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn each_log_in_is_a_new_token_and_logging_out_revokes_only_that_one() {
    let app = spawn_app().await;
    let http = app.http();
    http.register("ada", "password123").await.expect("register");
    let one = http.login("ada", "password123").await.expect("login");
    let two = http.login("ada", "password123").await.expect("login");
    assert_ne!(one.token, two.token);
    let (one, two) = (http.with_token(&one.token), http.with_token(&two.token));
    let raw = call(&one, Method::DELETE, "/v1/sessions", None).await;
    assert_eq!(raw.status, 204, "{}", raw.text());
    assert!(raw.body.is_empty(), "204 has no body");
    assert_eq!(failure(one.rooms().await).0, 401);
    two.rooms().await.expect("the other token still works");
    app.stop().await;
}

#[tokio::test]
async fn after_logging_out_the_token_is_401_on_every_call_and_on_a_websocket_upgrade() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (bob, bob_ref) = app.user("bob").await;
    let r = room(&ada, "general", Visibility::Public).await;
    let mine = room(&bob, "bob's", Visibility::Public).await;
    bob.join(&r.id).await.expect("join");
    bob.logout().await.expect("logout");
    let room_path = |what: &str| format!("/v1/rooms/{}/{what}", r.id);
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/v1/rooms".into(), None),
        (Method::GET, "/v1/rooms/public".into(), None),
        (Method::GET, "/v1/rooms/public?q=gen&limit=5".into(), None),
        (
            Method::POST,
            "/v1/rooms".into(),
            Some(json!({"name": "x", "visibility": "public"})),
        ),
        (Method::POST, room_path("join"), None),
        (Method::POST, room_path("leave"), None),
        (Method::POST, format!("/v1/rooms/{}/leave", mine.id), None),
        (
            Method::POST,
            format!("/v1/rooms/{}/members", mine.id),
            Some(json!({"user": "ada"})),
        ),
        (
            Method::DELETE,
            format!("/v1/rooms/{}/members/{}", mine.id, bob_ref.id),
            None,
        ),
        (Method::GET, room_path("messages"), None),
        (Method::GET, room_path("messages?after=0&limit=10"), None),
        (
            Method::POST,
            room_path("messages"),
            Some(json!({"client_id": "c1", "body": "hi"})),
        ),
        (Method::POST, "/v1/dms".into(), Some(json!({"user": "ada"}))),
        (Method::DELETE, "/v1/sessions".into(), None),
    ];
    for (method, path, body) in calls {
        let raw = call(&bob, method.clone(), &path, body).await;
        assert_eq!(raw.status, 401, "{method} {path}: {}", raw.text());
        assert_error(&raw, 401, "unauthorized");
    }
    let token = bob.token().expect("token").to_owned();
    assert_eq!(upgrade_refusal(&app, &token).await, 401);
    // Nothing the revoked token asked for happened.
    let log = log(&ada, &r.id).await;
    assert_eq!(log.len(), 2, "only ada's and bob's joins: {log:?}");
    app.stop().await;
}

#[tokio::test]
async fn logging_out_closes_that_tokens_live_sessions_with_4001() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let other = app.http().with_token(
        app.http()
            .login("ada", "password123")
            .await
            .expect("login")
            .token,
    );
    let (mut ws, _) = app.ws(&ada).await;
    let (mut kept, _) = app.ws(&other).await;
    ada.logout().await.expect("logout");
    let (code, _) = ws
        .next_close(WAIT)
        .await
        .expect("the session is closed in time");
    assert_eq!(code, 4001);
    let pong = kept
        .request(build::ping(), WAIT)
        .await
        .expect("a session of another token stays open");
    assert!(matches!(
        pong,
        confab_client::protocol::ServerFrame::Pong { .. }
    ));
    app.stop().await;
}

#[tokio::test]
async fn an_expired_token_is_401_over_http_and_on_a_websocket_upgrade() {
    let app = spawn_with(|c| c.token_ttl_s = 0).await;
    let http = app.http();
    http.register("ada", "password123").await.expect("register");
    let session = http.login("ada", "password123").await.expect("login");
    // The token expires the millisecond it is issued; let that millisecond pass.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let ada = http.with_token(&session.token);
    assert_error(
        &call(&ada, Method::GET, "/v1/rooms", None).await,
        401,
        "unauthorized",
    );
    assert_error(
        &call(
            &ada,
            Method::POST,
            "/v1/rooms",
            Some(json!({"name": "general"})),
        )
        .await,
        401,
        "unauthorized",
    );
    assert_eq!(upgrade_refusal(&app, &session.token).await, 401);
    app.stop().await;
}

#[tokio::test]
async fn a_missing_or_invalid_bearer_token_is_401() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let token = ada.token().expect("token").to_owned();
    let long = "f".repeat(300);
    let headers: [Option<String>; 8] = [
        None,
        Some(String::new()),
        Some("Bearer".into()),
        Some("Bearer ".into()),
        Some(format!("Basic {token}")),
        Some(format!("Bearer {}", "0".repeat(64))),
        Some(format!("Bearer {}x", &token[..63])),
        Some(format!("Bearer {long}")),
    ];
    let anonymous = app.http();
    for header in headers {
        let mut req = anonymous.request(Method::GET, "/v1/rooms");
        if let Some(h) = &header {
            req = req.header("authorization", h);
        }
        let raw = HttpClient::send_raw(req).await.expect("answer");
        assert_eq!(raw.status, 401, "{header:?}: {}", raw.text());
        assert_error(&raw, 401, "unauthorized");
    }
    let refused = ada.with_token("not-a-token");
    assert_eq!(failure(refused.rooms().await).0, 401);
    assert_eq!(upgrade_refusal(&app, "not-a-token").await, 401);
    ada.rooms().await.expect("the real token works");
    app.stop().await;
}
