//! One handler per client frame: each checks, acts through `actions`, and queues its reply.

use confab_protocol::frames::{Delete, Edit, HistoryRequest, React, Read, RoomOnly, Send};
use confab_protocol::{ClientFrame, ClientRequest, Presence, ServerFrame};
use serde_json::Value;

use crate::actions::{self, Write};
use crate::error::ApiError;
use crate::hub::{Out, SessionTx, SyncAsk};
use crate::state::AppState;

/// Handles one parsed frame; an `Err` is answered with an `error` frame by the caller.
pub async fn handle(
    app: &AppState,
    tx: &SessionTx,
    request: ClientRequest,
) -> Result<(), ApiError> {
    let reference = request.reference;
    let user = &tx.user;
    let reply = match request.frame {
        ClientFrame::Auth(_) => return Err(ApiError::bad_request("already authenticated")),
        ClientFrame::Send(Send {
            room,
            client_id,
            body,
        }) => {
            let a = actions::write(
                app,
                user,
                &room,
                Write::Send { client_id, body },
                Some(tx.id),
            )
            .await?;
            ack(reference, a.event)
        }
        ClientFrame::Edit(Edit { room, target, body }) => ack(
            reference,
            actions::write(app, user, &room, Write::Edit { target, body }, Some(tx.id))
                .await?
                .event,
        ),
        ClientFrame::Delete(Delete { room, target }) => ack(
            reference,
            actions::write(app, user, &room, Write::Delete { target }, Some(tx.id))
                .await?
                .event,
        ),
        ClientFrame::React(React { room, target, body }) => ack(
            reference,
            actions::write(app, user, &room, Write::React { target, body }, Some(tx.id))
                .await?
                .event,
        ),
        ClientFrame::Sync(s) => {
            // The writer answers, in order with the live events it is sending.
            tx.push(Out::Sync(Box::new(SyncAsk {
                reference,
                rooms: s.rooms,
            })));
            return Ok(());
        }
        ClientFrame::History(HistoryRequest {
            room,
            before,
            after,
            limit,
        }) => {
            let wanted = actions::history_page(before, after, limit)?;
            let page = actions::history(app, user, &room, wanted).await?;
            ServerFrame::History {
                reference,
                room,
                events: page.events,
                has_more: page.has_more,
            }
        }
        ClientFrame::Join(RoomOnly { room }) => {
            actions::join(app, user, &room).await?;
            ServerFrame::Ok { reference }
        }
        ClientFrame::Leave(RoomOnly { room }) => {
            actions::leave(app, user, &room).await?;
            ServerFrame::Ok { reference }
        }
        ClientFrame::Typing(RoomOnly { room }) => return actions::typing(app, user, &room).await,
        ClientFrame::Read(Read { room, seq }) => {
            return actions::read(app, user, &room, seq, &tx.sid).await;
        }
        ClientFrame::Presence(RoomOnly { room }) => {
            let online = actions::presence(app, user, &room).await?;
            ServerFrame::Presence(Presence {
                reference,
                room: Some(room),
                online: Some(online),
                user: None,
                status: None,
            })
        }
        ClientFrame::Ping(_) => ServerFrame::Pong { reference },
    };
    tx.push(Out::Frame(reply.to_json().into()));
    Ok(())
}

fn ack(reference: Option<Value>, e: confab_protocol::Event) -> ServerFrame {
    ServerFrame::Ack {
        reference,
        room: e.room,
        seq: e.seq,
        id: e.id,
        ts: e.ts,
        client_id: e.client_id,
    }
}
