//! One WebSocket session, in one task: the handshake (`auth` frame or header), then a loop
//! that reads the client's frames (answering through the outbox), delivers what the outbox
//! holds, and keeps the heartbeat. One task, not a reader and a writer: an idle connection then
//! costs one small future and no buffers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use confab_domain::limits::SlidingCount;
use confab_protocol::frames::Auth;
use confab_protocol::objects::FloodClose;
use confab_protocol::{ClientFrame, ClientRequest, CloseCode, ErrorCode, Limits, ServerFrame};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use super::handlers;
use super::writer::{CLOSE_WAIT, Stop, Writer, close_reason};
use super::ws::{Conn, Incoming, ReadError};
use crate::actions;
use crate::error::ApiError;
use crate::hub::{Out, Outbox, Ready, Session, SessionTx, SyncAsk};
use crate::metrics;
use crate::state::{AppState, Caller, now_ms};

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Serves one connection from its upgrade until it ends. What a session keeps for its whole
/// life lives in this one future, the task's only state: the steps before and after the loop
/// are boxed, and nothing long-lived is passed on by value (an `async fn` stores its arguments
/// apart from its locals, so a value handed down would be held twice).
pub async fn run(app: AppState, upgrade: OnUpgrade, caller: Option<Box<Caller>>) {
    let upgraded = match upgrade.await {
        Ok(upgraded) => upgraded,
        Err(e) => {
            tracing::debug!(error = %e, "websocket upgrade failed");
            return;
        }
    };
    let c = &app.config;
    let heartbeat = Duration::from_millis(c.heartbeat_ms);
    let conn = Conn::new(TokioIo::new(upgraded), c.max_frame);
    let outbox = Arc::new(Outbox::new(c.outbox));
    // Three heartbeats: the silence after which a client is gone, reading or writing.
    let silence = heartbeat.saturating_mul(3);
    let mut w = Writer::new(conn, outbox, app.events.clone(), c.outbox, silence);
    metrics::connection_opened();
    let handshake = match caller {
        Some(c) => Ok((c, None)),
        None => Box::pin(first_frame_auth(&app, &mut w.conn)).await,
    };
    let (caller, sync) = match handshake {
        Ok(ok) => ok,
        Err(error) => {
            if let Some(error) = error {
                Box::pin(refuse(&mut w.conn, error)).await;
            }
            metrics::connection_closed();
            return;
        }
    };
    let tx = new_session(&app, *caller, &w.outbox);
    Box::pin(opened(&app, &tx)).await;
    // A failure here is queued (an error frame and a close), so the loop sends it.
    let _ = Box::pin(start(&app, &tx, sync)).await;
    let stop = serve_loop(&app, &tx, &mut w, heartbeat, silence).await;
    w.outbox.writer_gone();
    app.hub.remove_session(&tx);
    Box::pin(closed(&app, &tx)).await;
    if let Stop::Closed(code) = stop {
        if code != CloseCode::NORMAL {
            metrics::connection_kicked(code);
        }
        Box::pin(w.close(code)).await;
    }
    metrics::connection_closed();
}

/// The session as the hub sees it.
fn new_session(app: &AppState, caller: Caller, outbox: &Arc<Outbox>) -> SessionTx {
    let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
    Arc::new(Session {
        id,
        sid: Arc::from(format!("s_{}_{id}", app.node_id)),
        user: caller.user,
        token_hash: Arc::from(caller.token_hash),
        outbox: outbox.clone(),
    })
}

/// Tells a client its `auth` failed and closes (4001).
async fn refuse(conn: &mut Conn, error: ApiError) {
    conn.queue_text(&error.frame(None).to_json());
    let code = CloseCode::UNAUTHORIZED;
    conn.close(code, close_reason(code), CLOSE_WAIT).await;
    metrics::connection_kicked(CloseCode::UNAUTHORIZED);
}

/// Waits for the `auth` frame; `Err(None)` when the client went away.
async fn first_frame_auth(
    app: &AppState,
    conn: &mut Conn,
) -> Result<(Box<Caller>, Option<BTreeMap<String, u64>>), Option<ApiError>> {
    let deadline = Duration::from_millis(app.config.auth_timeout_ms);
    let first_text = async {
        loop {
            match conn.read().await {
                Ok(Incoming::Text(t)) => return Ok(t),
                Ok(Incoming::Ping(payload)) => {
                    conn.queue_pong(&payload);
                    conn.flush().await.map_err(|_| None)?;
                }
                Ok(Incoming::Pong) => {}
                Ok(Incoming::Binary) => {
                    return Err(Some(ApiError::new(
                        ErrorCode::Unauthorized,
                        "the first frame must be auth",
                    )));
                }
                Ok(Incoming::Close) | Err(_) => return Err(None),
            }
        }
    };
    let frame = match tokio::time::timeout(deadline, first_text).await {
        Ok(frame) => frame?,
        Err(_) => {
            return Err(Some(ApiError::new(
                ErrorCode::Unauthorized,
                "no auth frame in time",
            )));
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
            Ok((Box::new(caller), sync))
        }
        _ => Err(Some(ApiError::new(
            ErrorCode::Unauthorized,
            "the first frame must be auth",
        ))),
    }
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

/// What woke the session.
enum Step {
    Out(Result<Out, u16>),
    In(Result<Incoming, ReadError>),
    Tick,
}

/// Reads, delivers and keeps the heartbeat until the session ends; why it ended.
async fn serve_loop(
    app: &AppState,
    tx: &SessionTx,
    w: &mut Writer,
    heartbeat: Duration,
    silence: Duration,
) -> Stop {
    let mut last_heard = Instant::now();
    let mut next_ping = last_heard + heartbeat;
    // One timer, reset only when it fires: hearing from the client only moves the silence
    // deadline later, so a wake-up before it is checked and rearmed.
    let timer = tokio::time::sleep_until(next_ping);
    tokio::pin!(timer);
    let mut floods = SlidingCount::default();
    let mut reading = true;
    loop {
        // Not biased: a busy outbox must not starve reading (or the heartbeat).
        let step = tokio::select! {
            next = w.outbox.next() => Step::Out(next),
            read = w.conn.read(), if reading => Step::In(read),
            () = &mut timer => Step::Tick,
        };
        let done = match step {
            Step::Out(Err(code)) => Err(Stop::Closed(code)),
            // Boxed: handling is the largest state, needed only while it runs.
            Step::Out(Ok(out)) => Box::pin(w.batch(out)).await,
            Step::In(read) => {
                last_heard = Instant::now();
                match read {
                    Ok(message) => Box::pin(on_message(app, tx, w, message, &mut floods)).await,
                    Err(e) => {
                        reading = false;
                        read_failed(tx, e)
                    }
                }
            }
            Step::Tick => {
                let now = Instant::now();
                if now >= last_heard + silence {
                    Err(Stop::Closed(CloseCode::GOING_AWAY))
                } else {
                    if now >= next_ping {
                        w.conn.queue_ping();
                        next_ping = now + heartbeat;
                    }
                    timer.as_mut().reset(next_ping.min(last_heard + silence));
                    Ok(())
                }
            }
        };
        let flushed = match done {
            Ok(()) => w.flush().await,
            Err(stop) => Err(stop),
        };
        if let Err(stop) = flushed {
            return stop;
        }
    }
}

/// Handles one message from the client.
async fn on_message(
    app: &AppState,
    tx: &SessionTx,
    w: &mut Writer,
    message: Incoming,
    floods: &mut SlidingCount,
) -> Result<(), Stop> {
    let text = match message {
        Incoming::Text(t) => t,
        Incoming::Binary => {
            reply_error(
                tx,
                None,
                &ApiError::bad_request("binary frames are not accepted; send JSON text frames"),
            );
            return Ok(());
        }
        Incoming::Ping(payload) => {
            w.conn.queue_pong(&payload);
            return Ok(());
        }
        Incoming::Pong => return Ok(()),
        Incoming::Close => return Err(Stop::Closed(CloseCode::NORMAL)),
    };
    let request = match ClientRequest::parse(&text) {
        Ok(r) => r,
        Err(e) => {
            reply_error(tx, e.reference, &ApiError::bad_request(e.message));
            return Ok(());
        }
    };
    let reference = request.reference.clone();
    if let Err(e) = handlers::handle(app, tx, request).await {
        reply_error(tx, reference, &e);
        let flood = &app.config;
        if e.code == ErrorCode::RateLimited
            && floods.record(now_ms() as u64, flood.flood_count, flood.flood_window_ms)
        {
            tx.push(Out::Close(CloseCode::FLOOD));
        }
    }
    Ok(())
}

fn reply_error(tx: &SessionTx, reference: Option<serde_json::Value>, e: &ApiError) {
    tx.push(Out::Frame(e.frame(reference).to_json().into()));
}

/// A read error: too large (1009) and bad UTF-8 (1007) are told to the client behind what is
/// already queued; a broken frame closes at once (1002); a failed socket just ends.
fn read_failed(tx: &SessionTx, e: ReadError) -> Result<(), Stop> {
    tracing::debug!(error = %e, "websocket read ended");
    match e {
        ReadError::TooLarge => {
            reply_error(
                tx,
                None,
                &ApiError::new(ErrorCode::TooLarge, "message over max_frame"),
            );
            tx.push(Out::Close(CloseCode::TOO_LARGE));
            Ok(())
        }
        ReadError::BadUtf8 => {
            reply_error(
                tx,
                None,
                &ApiError::bad_request("text frames must be valid UTF-8"),
            );
            tx.push(Out::Close(CloseCode::BAD_UTF8));
            Ok(())
        }
        ReadError::Protocol(_) => Err(Stop::Closed(CloseCode::PROTOCOL_ERROR)),
        ReadError::Ended | ReadError::Io(_) => Err(Stop::Gone),
    }
}
