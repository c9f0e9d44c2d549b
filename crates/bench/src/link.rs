//! One simulated user's connection, whatever the target speaks: confab's protocol through the
//! project's own client crate, or Socket.IO through [`crate::sio`]. Both come down to the same
//! few things a load generator needs: send a message, and read events, acks and errors.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use confab_client::{
    ClientError, ConnectAuth, ConnectOptions, WsClient, WsReceiver, WsSender, build, with_ref,
};
use confab_protocol::{Event, ServerFrame};
use serde_json::Value;

use crate::sio::{SioRx, SioTx};
use crate::spec::{ConnSpec, Dialect};

/// Something read from a connection.
#[derive(Debug)]
pub enum Incoming {
    /// An event in a room (live or replayed).
    Msg(Event),
    /// A send was committed.
    Ack {
        client_id: Option<String>,
        room: String,
        seq: u64,
    },
    /// A request failed; `reference` is the `client_id` of the send it answers, if any.
    Error {
        reference: Option<String>,
        code: String,
        retry_after_ms: Option<u64>,
    },
    /// The node is draining: reconnect after this long.
    Reconnect { after_ms: u64 },
    /// A Socket.IO ping, to be answered with [`LinkTx::pong`].
    Ping,
    /// A frame that could not be decoded.
    Undecodable(String),
    /// Nothing arrived for a long while, or a frame the bench does not use.
    Other,
}

/// Why a connection ended.
#[derive(Debug)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
}

/// The writing half of a connection.
pub enum LinkTx {
    Confab(WsSender),
    Sio(SioTx),
}

/// The reading half of a connection.
pub enum LinkRx {
    Confab(WsReceiver),
    Sio(SioRx),
}

/// An open, authenticated connection and the seq each of its rooms starts from.
pub struct Opened {
    pub tx: LinkTx,
    pub rx: LinkRx,
    pub starts: Vec<(String, u64)>,
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Target {
    pub base_url: String,
    pub dialect: Dialect,
    pub timeout: Duration,
}

/// Opens a connection for `conn`, resuming from `sync` (room → last seq seen) when given.
pub async fn open(
    target: &Target,
    conn: &ConnSpec,
    bind: Option<IpAddr>,
    sync: Option<BTreeMap<String, u64>>,
) -> Result<Opened, String> {
    match target.dialect {
        Dialect::Confab => open_confab(target, conn, bind, sync).await,
        Dialect::Socketio => {
            let (tx, rx, starts) = crate::sio::open(
                conn.url.as_deref().unwrap_or(&target.base_url),
                &conn.name,
                &conn.rooms,
                bind,
                target.timeout,
            )
            .await?;
            Ok(Opened {
                tx: LinkTx::Sio(tx),
                rx: LinkRx::Sio(rx),
                starts,
            })
        }
    }
}

async fn open_confab(
    target: &Target,
    conn: &ConnSpec,
    bind: Option<IpAddr>,
    sync: Option<BTreeMap<String, u64>>,
) -> Result<Opened, String> {
    let mut options = ConnectOptions::default().with_timeout(target.timeout);
    if let Some(ip) = bind {
        options = options.with_bind(ip);
    }
    let auth = match sync {
        None => ConnectAuth::Bearer(conn.token.clone()),
        Some(sync) => ConnectAuth::Frame {
            token: conn.token.clone(),
            sync: Some(sync),
        },
    };
    let url = conn.url.as_deref().unwrap_or(&target.base_url);
    let (ws, ready) = WsClient::connect_with(url, auth, &options)
        .await
        .map_err(|e| describe(&e))?;
    let starts = ready
        .rooms
        .iter()
        .filter(|r| conn.rooms.contains(&r.id))
        .map(|r| (r.id.clone(), r.last_seq))
        .collect();
    let (tx, rx) = ws.split();
    Ok(Opened {
        tx: LinkTx::Confab(tx),
        rx: LinkRx::Confab(rx),
        starts,
    })
}

/// A short label for a client error, used as a report note.
pub fn describe(e: &ClientError) -> String {
    match e {
        ClientError::Api { code, .. } => format!("error {}", code.as_str()),
        ClientError::UpgradeRefused { status, .. } => format!("upgrade refused {status}"),
        ClientError::Transport(cause) => format!("transport: {cause}"),
        ClientError::Timeout(what) => format!("timeout: {what}"),
        ClientError::Closed { code, .. } => format!("closed {code}"),
        other => other.to_string(),
    }
}

impl LinkTx {
    /// Sends a message with `client_id` (which is also the request's `ref`).
    pub async fn send(&mut self, room: &str, client_id: &str, body: &str) -> Result<(), String> {
        match self {
            LinkTx::Confab(tx) => {
                let frame = with_ref(
                    build::send(room, client_id, body),
                    Some(Value::String(client_id.to_string())),
                );
                tx.send_frame(frame).await.map_err(|e| describe(&e))
            }
            LinkTx::Sio(tx) => tx.send(room, client_id, body).await,
        }
    }

    /// Answers a Socket.IO ping.
    pub async fn pong(&mut self) -> Result<(), String> {
        match self {
            LinkTx::Confab(_) => Ok(()),
            LinkTx::Sio(tx) => tx.pong().await,
        }
    }

    /// Starts a clean close.
    pub async fn close(&mut self) {
        match self {
            LinkTx::Confab(tx) => {
                let _ = tx.close(1000, "bench done").await;
            }
            LinkTx::Sio(tx) => tx.close().await,
        }
    }
}

impl LinkRx {
    /// The next thing read; `Err` once the connection is closed. Cancel-safe.
    pub async fn next(&mut self) -> Result<Incoming, Closed> {
        match self {
            LinkRx::Confab(rx) => match rx.recv().await {
                Ok(frame) => Ok(from_frame(frame)),
                Err(ClientError::Decode { message, .. }) => Ok(Incoming::Undecodable(message)),
                Err(e) => match rx.closed() {
                    Some((code, reason)) => Err(Closed {
                        code,
                        reason: reason.to_string(),
                    }),
                    None => Err(Closed {
                        code: 1006,
                        reason: describe(&e),
                    }),
                },
            },
            LinkRx::Sio(rx) => rx.next().await,
        }
    }
}

fn from_frame(frame: ServerFrame) -> Incoming {
    match frame {
        ServerFrame::Msg(ev) => Incoming::Msg(ev),
        ServerFrame::Ack {
            room,
            seq,
            client_id,
            ..
        } => Incoming::Ack {
            client_id,
            room,
            seq,
        },
        ServerFrame::Error {
            reference,
            code,
            retry_after_ms,
            ..
        } => Incoming::Error {
            reference: match reference {
                Some(Value::String(s)) => Some(s),
                _ => None,
            },
            code: code.as_str().to_string(),
            retry_after_ms,
        },
        ServerFrame::Reconnect { after_ms } => Incoming::Reconnect { after_ms },
        _ => Incoming::Other,
    }
}
