//! Metrics: one typed function per measurement, labels bounded (never a room or user id).

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Counter, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once; later calls reuse it.
pub fn install() {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("confab_commit_seconds".into()),
                &[
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0,
                ],
            )
            .ok()?;
        builder.install_recorder().ok()
    });
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    HANDLE
        .get()
        .and_then(Option::as_ref)
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

/// A WebSocket connection was accepted.
pub fn connection_opened() {
    gauge!("confab_connections").increment(1.0);
    counter!("confab_connections_total").increment(1);
}

/// A WebSocket connection ended.
pub fn connection_closed() {
    gauge!("confab_connections").decrement(1.0);
}

/// A connection was closed by the server, by close code.
pub fn connection_kicked(code: u16) {
    counter!("confab_connections_closed_total", "code" => code.to_string()).increment(1);
}

/// Events committed to the store, by kind.
pub fn events_appended(kind: &'static str) {
    counter!("confab_events_appended_total", "kind" => kind).increment(1);
}

/// Time from asking the store to commit to its answer.
pub fn commit_latency(elapsed: Duration) {
    histogram!("confab_commit_seconds").record(elapsed.as_secs_f64());
}

/// A page of room events read from the cache (`hit`) or from the store.
pub fn recent_read(hit: bool) {
    let source = if hit { "cache" } else { "store" };
    counter!("confab_recent_reads_total", "source" => source).increment(1);
}

/// Frames written to WebSocket connections.
pub fn frames_delivered(n: u64) {
    // Counted at every flush, the hottest path: the registry lookup (hash and compare the
    // name, ~2% of fan-out CPU) is done once. Sessions exist only after `install`.
    static FRAMES: OnceLock<Counter> = OnceLock::new();
    FRAMES
        .get_or_init(|| counter!("confab_frames_delivered_total"))
        .increment(n);
}

/// An HTTP request answered, by route template and status class.
pub fn http_request(route: &str, status: u16) {
    let class = match status {
        200..=299 => "2xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    counter!("confab_http_requests_total", "route" => route.to_owned(), "status" => class)
        .increment(1);
}
