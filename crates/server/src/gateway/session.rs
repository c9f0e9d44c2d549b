//! One WebSocket session's reader: the handshake (`auth` frame or header), then reading frames,
//! answering them through the outbox, and watching heartbeats and floods.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use confab_domain::limits::SlidingCount;
use confab_protocol::frames::Auth;
use confab_protocol::objects::FloodClose;
use confab_protocol::{ClientFrame, ClientRequest, CloseCode, ErrorCode, Limits, ServerFrame};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;

use super::{handlers, writer};
use crate::actions;
use crate::error::ApiError;
use crate::hub::{Out, Outbox, Ready, Session, SessionTx, SyncAsk};
use crate::metrics;
use crate::state::{AppState, Caller, now_ms};

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Serves one upgraded connection until it ends. Not an `async fn`: an async fn keeps its
/// arguments in its state for its whole life, and the whole socket is large; only its two
/// halves (two pointers) go into the session's state.
pub fn run(
    app: AppState,
    socket: WebSocket,
    caller: Option<Caller>,
) -> impl Future<Output = ()> + Send {
    let (sink, stream) = socket.split();
    session(app, sink, stream, caller)
}

async fn session(
    app: AppState,
    sink: SplitSink<WebSocket, Message>,
    mut stream: SplitStream<WebSocket>,
    caller: Option<Caller>,
) {
    metrics::connection_opened();
    let handshake = match caller {
        Some(c) => Ok((c, None)),
        // Boxed, as every step but the read loop: a future is as large as its largest step,
        // and an idle connection should only carry the read loop's size for its whole life.
        None => Box::pin(first_frame_auth(&app, &mut stream)).await,
    };
    match handshake {
        Ok((caller, sync)) => serve(app, caller, sync, sink, stream).await,
        Err(Some(error)) => Box::pin(refuse(sink, error)).await,
        Err(None) => {}
    }
    metrics::connection_closed();
}

/// Tells a client its `auth` failed and closes (4001).
async fn refuse(mut sink: SplitSink<WebSocket, Message>, error: ApiError) {
    let _ = sink
        .send(Message::Text(error.frame(None).to_json().into()))
        .await;
    let _ = sink.send(close_message(CloseCode::UNAUTHORIZED)).await;
    metrics::connection_kicked(CloseCode::UNAUTHORIZED);
}

/// Waits for the `auth` frame; `Err(None)` when the client went away.
async fn first_frame_auth(
    app: &AppState,
    stream: &mut SplitStream<WebSocket>,
) -> Result<(Caller, Option<BTreeMap<String, u64>>), Option<ApiError>> {
    let deadline = Duration::from_millis(app.config.auth_timeout_ms);
    let frame = loop {
        match tokio::time::timeout(deadline, stream.next()).await {
            Err(_) => {
                return Err(Some(ApiError::new(
                    ErrorCode::Unauthorized,
                    "no auth frame in time",
                )));
            }
            Ok(None | Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return Err(None),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(Message::Text(t)))) => break t,
            Ok(Some(Ok(Message::Binary(_)))) => {
                return Err(Some(ApiError::new(
                    ErrorCode::Unauthorized,
                    "the first frame must be auth",
                )));
            }
        }
    };
    match ClientRequest::parse(&frame) {
        Ok(ClientRequest {
            frame: ClientFrame::Auth(Auth { token, sync }),
            ..
        }) => {
            let caller = app.authenticate(Some(&token)).await.map_err(|e| {
                // A store outage is not the client's fault; anything else is a bad token.
                if e.code == ErrorCode::Unavailable {
                    e
                } else {
                    ApiError::unauthorized()
                }
            })?;
            Ok((caller, sync))
        }
        _ => Err(Some(ApiError::new(
            ErrorCode::Unauthorized,
            "the first frame must be auth",
        ))),
    }
}

/// The close frame for a code.
pub fn close_message(code: u16) -> Message {
    let reason = match code {
        CloseCode::UNAUTHORIZED => "unauthorized",
        CloseCode::FLOOD => "too many rate-limited requests",
        CloseCode::SLOW_CONSUMER => "too slow: reconnect and sync",
        CloseCode::TOO_LARGE => "message too large",
        CloseCode::RESTART => "node restarting: reconnect",
        CloseCode::GOING_AWAY => "no heartbeat",
        _ => "",
    };
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

async fn serve(
    app: AppState,
    caller: Caller,
    sync: Option<BTreeMap<String, u64>>,
    sink: SplitSink<WebSocket, Message>,
    stream: SplitStream<WebSocket>,
) {
    let outbox = Arc::new(Outbox::new(app.config.outbox));
    let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
    let tx = Arc::new(Session {
        id,
        sid: Arc::from(format!("s_{}_{id}", app.node_id)),
        user: caller.user.clone(),
        token_hash: Arc::from(caller.token_hash.as_str()),
        outbox: outbox.clone(),
    });
    let heartbeat = Duration::from_millis(app.config.heartbeat_ms);
    let writer = tokio::spawn(writer::run(
        sink,
        outbox,
        app.events.clone(),
        heartbeat,
        app.config.outbox,
    ));
    Box::pin(opened(&app, &tx)).await;
    let close_queued = match Box::pin(start(&app, &tx, sync)).await {
        Ok(()) => read_loop(&app, &tx, stream).await,
        Err(()) => true,
    };
    // A close queued behind its error frame must not be overtaken by this one (the writer
    // gives a close code priority over what is queued).
    if !close_queued {
        tx.close(1000);
    }
    app.hub.remove_session(&tx);
    Box::pin(closed(&app, &tx)).await;
    let _ = writer.await;
}

/// Registers the session with the hub and counts it online.
async fn opened(app: &AppState, tx: &SessionTx) {
    app.hub.add_session(tx).await;
    let came_online = app.cache.session_opened(&tx.user.id, &app.node_id).await;
    if came_online.unwrap_or(false) {
        actions::announce_presence(app, &tx.user, true).await;
    }
}

/// Counts the session offline.
async fn closed(app: &AppState, tx: &SessionTx) {
    let went_offline = app.cache.session_closed(&tx.user.id, &app.node_id).await;
    if went_offline.unwrap_or(false) {
        actions::announce_presence(app, &tx.user, false).await;
    }
}

/// Queues `ready` (and the `auth` sync), then attaches the session to its rooms.
async fn start(
    app: &AppState,
    tx: &SessionTx,
    sync: Option<BTreeMap<String, u64>>,
) -> Result<(), ()> {
    let rooms = match app.store.rooms_of(&tx.user.id).await {
        Ok(rooms) => rooms,
        Err(e) => {
            let e = ApiError::from(e);
            tx.push(Out::Frame(e.frame(None).to_json().into()));
            tx.push(Out::Close(CloseCode::RESTART));
            return Err(());
        }
    };
    let sync = sync.unwrap_or_default();
    let cursors: Vec<(Arc<str>, u64)> = rooms
        .iter()
        .map(|r| {
            let from = sync.get(&r.id).map_or(r.last_seq, |&s| s.min(r.last_seq));
            (Arc::from(r.id.as_str()), from)
        })
        .collect();
    let c = &app.config;
    let ready = ServerFrame::Ready {
        session_id: tx.sid.to_string(),
        user: tx.user.clone(),
        rooms,
        heartbeat_ms: c.heartbeat_ms,
        limits: Limits {
            max_body: c.max_body,
            max_frame: c.max_frame,
            rate_per_s: c.rate_per_s,
            burst: c.burst,
            flood_close: FloodClose {
                count: c.flood_count,
                window_ms: c.flood_window_ms,
            },
        },
    };
    let room_ids: Vec<Arc<str>> = cursors.iter().map(|(r, _)| r.clone()).collect();
    tx.push(Out::Ready(Box::new(Ready {
        frame: ready.to_json().into(),
        cursors,
    })));
    if !sync.is_empty() {
        tx.push(Out::Sync(Box::new(SyncAsk {
            reference: None,
            rooms: sync,
        })));
    }
    app.hub.attach_rooms(tx, &room_ids);
    // A leave committed between the read above and the attach was announced before this
    // session was in the room: read again and drop what is gone. Later leaves reach it as usual.
    if let Ok(now) = app.store.rooms_of(&tx.user.id).await {
        for room in room_ids
            .iter()
            .filter(|r| !now.iter().any(|n| *n.id == ***r))
        {
            app.hub.detach_room(tx, room);
        }
    }
    Ok(())
}

/// Reads until the session ends; true when its close is already decided (queued in the
/// outbox or set on `closer`).
async fn read_loop(app: &AppState, tx: &SessionTx, mut stream: SplitStream<WebSocket>) -> bool {
    let silence = Duration::from_millis(app.config.heartbeat_ms.saturating_mul(3));
    let mut last_heard = Instant::now();
    let mut floods = SlidingCount::default();
    loop {
        let next = tokio::select! {
            _ = tx.outbox.closed() => return true,
            next = tokio::time::timeout_at(last_heard + silence, stream.next()) => next,
        };
        let message = match next {
            Err(_) => {
                tx.close(CloseCode::GOING_AWAY);
                return true;
            }
            Ok(None) => return false,
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(e))) => return protocol_error(tx, e),
        };
        last_heard = Instant::now();
        let text = match message {
            Message::Text(t) => t,
            Message::Binary(_) => {
                reply_error(
                    tx,
                    None,
                    &ApiError::bad_request("binary frames are not accepted; send JSON text frames"),
                );
                continue;
            }
            Message::Close(_) => return false,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        let request = match ClientRequest::parse(&text) {
            Ok(r) => r,
            Err(e) => {
                reply_error(tx, e.reference, &ApiError::bad_request(e.message));
                continue;
            }
        };
        let reference = request.reference.clone();
        // Boxed: the handlers' state machines are large, and an idle session should not carry
        // their size for its whole life (memory per idle connection).
        if let Err(e) = Box::pin(handlers::handle(app, tx, request)).await {
            reply_error(tx, reference, &e);
            let flood = &app.config;
            if e.code == ErrorCode::RateLimited
                && floods.record(now_ms() as u64, flood.flood_count, flood.flood_window_ms)
            {
                tx.push(Out::Close(CloseCode::FLOOD));
                return true;
            }
        }
    }
}

fn reply_error(tx: &SessionTx, reference: Option<serde_json::Value>, e: &ApiError) {
    tx.push(Out::Frame(e.frame(reference).to_json().into()));
}

/// A read error: too large (1009) and bad UTF-8 (1007) are told to the client (true: the close
/// is queued); others just end.
fn protocol_error(tx: &SessionTx, e: axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let inner = e.into_inner();
    tracing::debug!(error = %inner, "websocket read error");
    match inner.downcast_ref::<WsError>() {
        Some(WsError::Capacity(_)) => {
            reply_error(
                tx,
                None,
                &ApiError::new(ErrorCode::TooLarge, "message over max_frame"),
            );
            tx.push(Out::Close(CloseCode::TOO_LARGE));
            true
        }
        Some(WsError::Utf8(_)) => {
            reply_error(
                tx,
                None,
                &ApiError::bad_request("text frames must be valid UTF-8"),
            );
            tx.push(Out::Close(1007));
            true
        }
        _ => false,
    }
}
