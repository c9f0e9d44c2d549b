//! Building a node from its configuration, serving, and draining on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::ws::Utf8Bytes;
use axum::serve::ListenerExt;
use confab_bus::Delivery;
use confab_protocol::{CloseCode, ServerFrame};
use rand::RngExt;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::hub::Out;
use crate::state::{AppState, State};
use crate::{api, metrics};

/// A node that is bound and ready to serve.
pub struct App {
    listener: TcpListener,
    state: AppState,
    inbox: mpsc::Receiver<Delivery>,
}

impl App {
    /// Opens the store, bus and cache the configuration names and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        config.check()?;
        metrics::install();
        if config.store.is_empty() {
            std::fs::create_dir_all(&config.data_dir).with_context(|| {
                format!("cannot create data directory {}", config.data_dir.display())
            })?;
        }
        let options = config.store_options();
        let store_url = config.store_url();
        let store = confab_store::connect(&store_url, &options)
            .await
            .with_context(|| format!("cannot open store {}", redact(&store_url)))?;
        let (bus, inbox) = confab_bus::connect(&config.bus)
            .await
            .context("cannot connect to the bus")?;
        let cache = confab_cache::connect(&config.cache)
            .await
            .context("cannot connect to the cache")?;
        let listener =
            bind(&config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let node_id = format!("{:x}", rand::rng().random::<u32>());
        tracing::info!(
            listen = %addr,
            store = %redact(&store_url),
            synchronous = %config.sqlite_synchronous,
            bus = %bus.describe(),
            cache = %cache.describe(),
            queue = "none (no background jobs yet)",
            node = %node_id,
            "confab node built"
        );
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
        let hasher =
            crate::auth::Hasher::new(threads, 256).context("cannot start hashing threads")?;
        let state = Arc::new(State::new(config, store, bus, cache, node_id, hasher));
        Ok(App {
            listener,
            state,
            inbox,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves until `shutdown` completes, then drains: `/readyz` turns 503, every session is
    /// told to reconnect (jittered), those left after the grace period are closed with 1012,
    /// the listener stops and the store is flushed.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let App {
            listener,
            state,
            inbox,
        } = self;
        let hub_task = state.hub.run(inbox);
        let repair_task = state
            .hub
            .start_repair(Duration::from_millis(state.config.repair_interval_ms));
        let cache_repair_task = state
            .events
            .start_repair(Duration::from_millis(state.config.repair_interval_ms));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let router = api::router(state.clone());
        let server = tokio::spawn(async move {
            // Nagle would hold a frame written right after another until the client's
            // (delayed, up to 40 ms) ACK: chat frames are small and must go at once.
            let listener = listener.tap_io(|tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "could not set TCP_NODELAY");
                }
            });
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                })
                .await
        });
        state.set_ready(true);
        tracing::info!("ready");
        shutdown.await;
        tracing::info!("draining");
        drain(&state).await;
        let _ = stop_tx.send(());
        match tokio::time::timeout(Duration::from_secs(5), server).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "server stopped with an error"),
            Err(_) => tracing::warn!("HTTP connections still open after 5 s; stopping anyway"),
            _ => {}
        }
        state.store.close().await;
        hub_task.abort();
        repair_task.abort();
        cache_repair_task.abort();
        tracing::info!("stopped; store flushed");
        Ok(())
    }
}

async fn drain(state: &AppState) {
    state.set_ready(false);
    let max = state.config.reconnect_max_ms;
    for s in state.hub.sessions() {
        let after_ms = rand::rng().random_range(0..=max);
        s.push(Out::Frame(Utf8Bytes::from(
            ServerFrame::Reconnect { after_ms }.to_json(),
        )));
    }
    let grace = Duration::from_millis(state.config.shutdown_grace_ms);
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline && !state.hub.sessions().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for s in state.hub.sessions() {
        s.push(Out::Close(CloseCode::RESTART));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while tokio::time::Instant::now() < deadline && !state.hub.sessions().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Binds with a large backlog (the default 128 overflows under connection storms).
fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    let addr: SocketAddr = addr
        .parse()
        .with_context(|| format!("`{addr}` is not an address like 127.0.0.1:8080"))?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket.listen(4096)?)
}

/// A URL with any password replaced, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_in_urls_are_not_logged() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("sqlite://./x.db"), "sqlite://./x.db");
    }
}
