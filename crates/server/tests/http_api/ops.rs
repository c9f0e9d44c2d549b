//! `/healthz`, `/readyz` and `/metrics`.

use confab_client::protocol::{ServerFrame, Visibility};
use confab_client::{Method, build};

use crate::helpers::*;
use crate::*;

#[tokio::test]
async fn healthz_answers_200_without_a_token() {
    let app = spawn_app().await;
    assert_eq!(app.http().healthz().await.expect("healthz"), 200);
    app.stop().await;
}

#[tokio::test]
async fn readyz_answers_200_while_serving_and_503_unavailable_while_draining() {
    let mut app = spawn_with(|c| c.shutdown_grace_ms = 5_000).await;
    let http = app.http();
    assert_eq!(http.readyz().await.expect("readyz"), 200);
    let (ada, _) = app.user("ada").await;
    // A live session keeps the node draining (up to the grace period) until it goes.
    let (mut ws, _) = app.ws(&ada).await;
    app.signal_stop();
    wait_for(&mut ws, "reconnect", |f| {
        matches!(f, ServerFrame::Reconnect { .. })
    })
    .await;
    let raw = call(&http, Method::GET, "/readyz", None).await;
    assert_error(&raw, 503, "unavailable");
    assert_eq!(http.healthz().await.expect("healthz while draining"), 200);
    ws.close(1000, "bye").await.expect("close");
    app.stop().await;
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_connections_events_frames_and_commit_latency() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let r = room(&ada, "general", Visibility::Public).await;
    let (mut ws, _) = app.ws(&ada).await;
    ada.publish(&r.id, "c1", "hello").await.expect("publish");
    let reply = ws
        .request(build::send(&r.id, "c2", "hi"), WAIT)
        .await
        .expect("ack");
    assert!(matches!(reply, ServerFrame::Ack { .. }));
    // Both messages were delivered to the session (frames were written).
    let mut got = 0;
    while got < 2 {
        next_msg(&mut ws).await;
        got += 1;
    }
    let raw = call(&app.http(), Method::GET, "/metrics", None).await;
    assert_eq!(raw.status, 200);
    let content_type = raw
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = raw.text();
    let value = |prefix: &str| -> f64 {
        text.lines()
            .filter(|l| !l.starts_with('#') && l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    for name in [
        "confab_connections",
        "confab_events_appended_total",
        "confab_frames_delivered_total",
        "confab_commit_seconds",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} in the metrics:\n{text}"
        );
    }
    assert!(value("confab_connections ") >= 1.0, "a live connection");
    assert!(value("confab_events_appended_total{") >= 2.0);
    assert!(
        value("confab_frames_delivered_total") >= 3.0,
        "ready and two msgs"
    );
    assert!(value("confab_commit_seconds_count") >= 2.0);
    assert!(text.contains("confab_commit_seconds_bucket"), "a histogram");
    app.stop().await;
}
