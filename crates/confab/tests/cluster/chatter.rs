//! A client that keeps chatting through failures the way PROTOCOL.md tells clients to: it
//! reconnects with `auth` + `sync` from the last seq it saw, resends unacknowledged messages
//! with the same `client_id`, and checks that every room's seqs arrive once, in order, no gap.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use confab_client::protocol::{ErrorCode, ServerFrame};
use confab_client::{ClientError, ConnectAuth, WsClient, build, with_ref};
use serde_json::Value;
use tokio::time::Instant;

/// What one chatter saw.
#[derive(Debug, Default)]
pub struct Outcome {
    pub name: String,
    /// Every acknowledged message: (room, seq, client_id).
    pub acked: Vec<(String, u64, String)>,
    /// Per room, the seqs received, in arrival order, across every connection.
    pub seen: BTreeMap<String, Vec<u64>>,
    pub violations: Vec<String>,
    pub reconnects: u32,
    pub unavailable: u32,
    /// Messages sent but never acknowledged (must be empty when the cluster recovers).
    pub unacked: usize,
}

/// A user who sends to `rooms` in turn every `every` for `send_for`, connecting to `bases[0]`
/// first and going round the list on each reconnect.
pub struct Chatter {
    pub name: String,
    pub bases: Vec<String>,
    pub token: String,
    pub rooms: Vec<String>,
}

struct InFlight {
    room: String,
    sent: Instant,
}

impl Chatter {
    /// Chats, then keeps receiving until nothing is unacknowledged and `settle` has passed.
    pub async fn run(self, send_for: Duration, every: Duration, settle: Duration) -> Outcome {
        let mut out = Outcome {
            name: self.name.clone(),
            ..Outcome::default()
        };
        let start = Instant::now();
        let hard_stop = start + send_for + Duration::from_secs(45);
        let mut last: BTreeMap<String, u64> = BTreeMap::new();
        let mut in_flight: HashMap<String, InFlight> = HashMap::new();
        let mut n = 0u64;
        let mut first = true;
        let mut next_send = start;
        let mut quiet_since: Option<Instant> = None;
        let mut attempt = 0usize;
        'connect: while Instant::now() < hard_stop {
            let sync = if first { None } else { Some(last.clone()) };
            let auth = ConnectAuth::Frame {
                token: self.token.clone(),
                sync,
            };
            let base = &self.bases[attempt % self.bases.len()];
            attempt += 1;
            let mut ws =
                match tokio::time::timeout(Duration::from_secs(5), WsClient::connect(base, auth))
                    .await
                {
                    Ok(Ok((ws, ready))) => {
                        if first {
                            for r in ready.rooms {
                                last.insert(r.id, r.last_seq);
                            }
                            first = false;
                        }
                        ws
                    }
                    _ => {
                        out.reconnects += 1;
                        tokio::time::sleep(Duration::from_millis(
                            100 + u64::from(n as u32 % 7) * 50,
                        ))
                        .await;
                        continue;
                    }
                };
            // Unacknowledged messages are sent again with the same client_id: never stored twice.
            for (cid, f) in in_flight.iter_mut() {
                f.sent = Instant::now();
                if send(&mut ws, &f.room, cid).await.is_err() {
                    out.reconnects += 1;
                    continue 'connect;
                }
            }
            loop {
                let now = Instant::now();
                if now > hard_stop {
                    break 'connect;
                }
                let sending = now < start + send_for;
                if sending && now >= next_send {
                    let room = self.rooms[(n as usize) % self.rooms.len()].clone();
                    let cid = format!("{}-{n}", self.name);
                    n += 1;
                    next_send += every;
                    in_flight.insert(
                        cid.clone(),
                        InFlight {
                            room: room.clone(),
                            sent: now,
                        },
                    );
                    if send(&mut ws, &room, &cid).await.is_err() {
                        out.reconnects += 1;
                        continue 'connect;
                    }
                }
                // Resend anything unanswered for a second (e.g. refused as unavailable).
                for (cid, f) in in_flight
                    .iter_mut()
                    .filter(|(_, f)| now.duration_since(f.sent) > Duration::from_secs(1))
                {
                    f.sent = now;
                    if send(&mut ws, &f.room, cid).await.is_err() {
                        out.reconnects += 1;
                        continue 'connect;
                    }
                }
                match ws.next_frame(Duration::from_millis(20)).await {
                    Ok(ServerFrame::Msg(e)) => {
                        quiet_since = None;
                        let l = last
                            .entry(e.room.clone())
                            .or_insert(e.seq.saturating_sub(1));
                        if e.seq == *l + 1 {
                            *l = e.seq;
                            out.seen.entry(e.room.clone()).or_default().push(e.seq);
                        } else if e.seq <= *l {
                            out.violations.push(format!(
                                "{}: repeat {} in {} (last {})",
                                self.name, e.seq, e.room, l
                            ));
                        } else {
                            out.violations.push(format!(
                                "{}: gap before {} in {} (last {})",
                                self.name, e.seq, e.room, l
                            ));
                            *l = e.seq;
                        }
                    }
                    Ok(ServerFrame::Ack {
                        room,
                        seq,
                        client_id,
                        ..
                    }) => {
                        if let Some(cid) = client_id
                            && in_flight.remove(&cid).is_some()
                        {
                            out.acked.push((room, seq, cid));
                        }
                    }
                    Ok(ServerFrame::Error { code, .. }) => {
                        if code == ErrorCode::Unavailable {
                            out.unavailable += 1;
                        } else {
                            out.violations
                                .push(format!("{}: unexpected error {code:?}", self.name));
                        }
                    }
                    Ok(ServerFrame::Reconnect { after_ms }) => {
                        tokio::time::sleep(Duration::from_millis(after_ms)).await;
                        out.reconnects += 1;
                        continue 'connect;
                    }
                    Ok(_) => {}
                    Err(ClientError::Timeout(_)) => {
                        if !sending && in_flight.is_empty() {
                            let q = *quiet_since.get_or_insert(now);
                            if now.duration_since(q) >= settle {
                                break 'connect;
                            }
                        }
                    }
                    Err(_) => {
                        out.reconnects += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue 'connect;
                    }
                }
            }
        }
        out.unacked = in_flight.len();
        out
    }
}

/// Sends `cid` to `room` as a message whose `client_id`, body and `ref` are all `cid`.
async fn send(ws: &mut WsClient, room: &str, cid: &str) -> confab_client::Result<()> {
    ws.send_frame(with_ref(
        build::send(room, cid, cid),
        Some(Value::from(cid)),
    ))
    .await
}
