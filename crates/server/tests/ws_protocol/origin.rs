//! The `Origin` check on the upgrade: no `Origin` and the request's own host are allowed by
//! default, configuration lists more or `*`, anything else is HTTP 403.

use confab_client::{ClientError, ConnectAuth, ConnectOptions, WsClient};

use crate::helpers::*;
use crate::util::*;

fn token(http: &confab_client::HttpClient) -> String {
    http.token().expect("a token").to_owned()
}

/// The upgrade's refusal status, or `None` if it was accepted.
pub async fn upgrade_status(
    app: &TestApp,
    bearer: Option<&str>,
    origin: Option<&str>,
) -> Option<u16> {
    let options = ConnectOptions {
        origin: origin.map(str::to_owned),
        ..ConnectOptions::default()
    };
    match WsClient::open(&app.base, bearer, &options).await {
        Ok(_) => None,
        Err(ClientError::UpgradeRefused { status, .. }) => Some(status),
        Err(e) => panic!("upgrade failed below HTTP: {e}"),
    }
}

#[tokio::test]
async fn an_upgrade_from_a_foreign_origin_is_refused_with_http_403() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let t = token(&ada);
    let port = app.base.rsplit(':').next().expect("port");
    for origin in [
        "http://evil.example".to_string(),
        format!("https://127.0.0.1:{port}"), // wrong scheme for ws://
        format!(
            "http://127.0.0.1:{}",
            port.parse::<u16>().expect("port") ^ 1
        ),
        "http://127.0.0.1".to_string(),
        "null".to_string(),
    ] {
        assert_eq!(
            upgrade_status(&app, Some(&t), Some(&origin)).await,
            Some(403),
            "origin {origin}"
        );
    }
    // Refused before authentication: no token at all is still 403 for a foreign origin.
    assert_eq!(
        upgrade_status(&app, None, Some("http://evil.example")).await,
        Some(403)
    );
    app.stop().await;
}

#[tokio::test]
async fn an_upgrade_from_the_same_origin_or_without_origin_is_accepted() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let t = token(&ada);
    for origin in [None, Some(app.base.clone())] {
        let options = ConnectOptions {
            origin: origin.clone(),
            ..ConnectOptions::default()
        };
        let (mut ws, ready) =
            WsClient::connect_with(&app.base, ConnectAuth::Bearer(t.clone()), &options)
                .await
                .unwrap_or_else(|e| panic!("origin {origin:?} refused: {e}"));
        assert_eq!(ready.user.name, "ada");
        assert_open(&mut ws).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn configured_allowed_origins_are_accepted_and_others_still_refused() {
    let app = spawn_with(|c| c.allowed_origins = vec!["https://chat.example".into()]).await;
    let (ada, _) = app.user("ada").await;
    let t = token(&ada);
    assert_eq!(
        upgrade_status(&app, Some(&t), Some("https://chat.example")).await,
        None
    );
    assert_eq!(
        upgrade_status(&app, Some(&t), Some(&app.base)).await,
        None,
        "same origin stays allowed"
    );
    assert_eq!(
        upgrade_status(&app, Some(&t), Some("https://other.example")).await,
        Some(403)
    );
    app.stop().await;
}

#[tokio::test]
async fn a_wildcard_in_allowed_origins_accepts_any_origin() {
    let app = spawn_with(|c| c.allowed_origins = vec!["*".into()]).await;
    let (ada, _) = app.user("ada").await;
    let options = ConnectOptions::default().with_origin("http://anything.example:1234");
    let (mut ws, _) = WsClient::connect_with(&app.base, ConnectAuth::Bearer(token(&ada)), &options)
        .await
        .expect("any origin is allowed");
    assert_open(&mut ws).await;
    app.stop().await;
}
