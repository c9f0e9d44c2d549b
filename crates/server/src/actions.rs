//! The operations both the HTTP API and the WebSocket gateway perform, with the checks in the
//! protocol's order: malformed, then authentication (done by the caller), then visibility and
//! permission, then the rate limit; then the store commits and the result goes on the bus.

use std::time::Instant;

use confab_cache::Rate;
use confab_domain::rules::{self, TargetFacts};
use confab_domain::text::{ClientMsgId, Emoji, MessageBody, Password, RoomName, UserName};
use confab_protocol::{ErrorCode, Event, EventKind, Room, ServerFrame, UserRef, Visibility};
use confab_store::{Append, Appended, Change, EventRange, Page, RoomInfo};

use crate::auth;
use crate::bus_msg::{self, BusMsg, Control};
use crate::error::ApiError;
use crate::hub::SessionId;
use crate::metrics;
use crate::state::{AppState, Caller, now_ms};

/// A write a member makes to a room's log.
#[derive(Debug, Clone)]
pub enum Write {
    Send { client_id: String, body: String },
    Edit { target: u64, body: String },
    Delete { target: u64 },
    React { target: u64, body: String },
}

/// Creates an account.
pub async fn register(app: &AppState, name: &str, password: &str) -> Result<UserRef, ApiError> {
    let name = UserName::parse(name)?;
    let password = Password::parse(password)?;
    let hash = app
        .hasher
        .run(move || auth::hash_password(password.expose()))
        .await
        .ok_or_else(busy_hashing)?
        .map_err(|e| ApiError::internal(&e))?;
    Ok(app.store.create_user(&name, &hash).await?)
}

fn busy_hashing() -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        "too many sign-ups and log-ins at once; retry shortly",
    )
}

/// Checks a name and password and issues a token: `(secret, user, expires_ts)`.
pub async fn login(
    app: &AppState,
    name: &str,
    password: &str,
) -> Result<(String, UserRef, i64), ApiError> {
    let wrong = || ApiError::new(ErrorCode::Unauthorized, "wrong name or password");
    // A malformed name cannot exist; it is answered like any unknown name.
    let record = match UserName::parse(name) {
        Ok(n) => app.store.user_by_name(n.as_str()).await?,
        Err(_) => None,
    };
    let phc = record.as_ref().map(|r| r.password_hash.clone());
    let password = password.to_owned();
    let ok = app
        .hasher
        .run(move || auth::verify_password(phc.as_deref(), &password))
        .await
        .ok_or_else(busy_hashing)?;
    let Some(record) = record.filter(|_| ok) else {
        return Err(wrong());
    };
    let token = auth::new_token();
    let expires_ts = now_ms().saturating_add((app.config.token_ttl_s as i64).saturating_mul(1000));
    app.store
        .create_token(&token.hash, &record.user.id, expires_ts)
        .await?;
    Ok((token.secret, record.user, expires_ts))
}

/// Revokes the caller's token and closes its live sessions on every node.
pub async fn logout(app: &AppState, caller: &Caller) -> Result<(), ApiError> {
    app.store.revoke_token(&caller.token_hash).await?;
    let msg = Control::Revoked {
        user: caller.user.id.clone(),
        token_hash: caller.token_hash.clone(),
    };
    publish(
        app,
        &bus_msg::user_topic(&caller.user.id),
        BusMsg::Control(msg),
    )
    .await;
    Ok(())
}

/// The room if the user may read and write it: members only (403 public, 404 private).
pub async fn visible_room(
    app: &AppState,
    user: &UserRef,
    room: &str,
) -> Result<RoomInfo, ApiError> {
    if !confab_domain::text::is_valid_id(room) {
        return Err(ApiError::no_room());
    }
    let info = app.store.room(room).await?.ok_or_else(ApiError::no_room)?;
    let member = app.store.membership(room, &user.id).await?.is_some();
    rules::may_use(&info.facts(), member)?;
    Ok(info)
}

/// Creates a room; the caller owns it and is its first member.
pub async fn create_room(
    app: &AppState,
    user: &UserRef,
    name: &str,
    visibility: Visibility,
) -> Result<Room, ApiError> {
    let name = RoomName::parse(name)?;
    let change = app.store.create_room(user, &name, visibility).await?;
    Ok(announce(app, change).await)
}

/// Joins a public room (a member joining again changes nothing).
pub async fn join(app: &AppState, user: &UserRef, room: &str) -> Result<Room, ApiError> {
    valid_room_id(room)?;
    let change = app.store.join(room, user).await?;
    Ok(announce(app, change).await)
}

/// Leaves a room.
pub async fn leave(app: &AppState, user: &UserRef, room: &str) -> Result<(), ApiError> {
    valid_room_id(room)?;
    let change = app.store.leave(room, user).await?;
    announce(app, change).await;
    Ok(())
}

/// The owner adds a user, named by name or id.
pub async fn add_member(
    app: &AppState,
    actor: &UserRef,
    room: &str,
    target: &str,
) -> Result<(), ApiError> {
    let info = visible_room(app, actor, room).await?;
    // Owner-only and no-DM are permission rules: they answer before an unknown user does.
    rules::may_add(&info.facts(), &actor.id, true, false)?;
    let target = find_user(app, target).await?;
    let change = app.store.add_member(room, actor, &target).await?;
    announce(app, change).await;
    Ok(())
}

/// The owner removes a member, named by name or id.
pub async fn remove_member(
    app: &AppState,
    actor: &UserRef,
    room: &str,
    target: &str,
) -> Result<(), ApiError> {
    visible_room(app, actor, room).await?;
    let target = find_user(app, target)
        .await
        .map_err(|_| ApiError::new(ErrorCode::NotFound, "no such member"))?;
    let change = app.store.remove_member(room, actor, &target).await?;
    announce(app, change).await;
    Ok(())
}

/// The DM between the caller and another user (created on first ask).
pub async fn open_dm(app: &AppState, user: &UserRef, other: &str) -> Result<Room, ApiError> {
    let other = find_user(app, other).await?;
    if other.id == user.id {
        return Err(ApiError::bad_request(
            "a direct conversation needs another user",
        ));
    }
    let change = app.store.open_dm(user, &other).await?;
    let mut room = announce(app, change).await;
    room.read_seq = None;
    Ok(room)
}

async fn find_user(app: &AppState, name_or_id: &str) -> Result<UserRef, ApiError> {
    if name_or_id.is_empty() || name_or_id.len() > 64 {
        return Err(ApiError::new(ErrorCode::NotFound, "no such user"));
    }
    app.store
        .find_user(name_or_id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such user"))
}

fn valid_room_id(room: &str) -> Result<(), ApiError> {
    if confab_domain::text::is_valid_id(room) {
        Ok(())
    } else {
        Err(ApiError::no_room())
    }
}

/// Publishes a membership change: its events, and to each affected user the subscription change.
async fn announce(app: &AppState, change: Change) -> Room {
    for event in &change.events {
        publish_event(app, event).await;
        let user = event.from.id.clone();
        let msg = match event.kind {
            EventKind::Join => {
                let room = Room {
                    last_seq: change.room.last_seq.max(event.seq),
                    read_seq: Some(event.seq),
                    ..change.room.clone()
                };
                Control::Subscribed {
                    user: user.clone(),
                    room,
                    seq: event.seq,
                }
            }
            EventKind::Leave => Control::Removed {
                user: user.clone(),
                room: change.room.id.clone(),
                seq: event.seq,
            },
            _ => continue,
        };
        publish(app, &bus_msg::user_topic(&user), BusMsg::Control(msg)).await;
    }
    let mut room = change.room;
    room.read_seq = None;
    room
}

/// A page of history, after the visibility check; from the cache's recent events when they
/// reach the room's newest seq the check just read.
pub async fn history(
    app: &AppState,
    user: &UserRef,
    room: &str,
    (range, limit): (EventRange, u32),
) -> Result<Page, ApiError> {
    let info = visible_room(app, user, room).await?;
    let known = info.room.last_seq;
    Ok(app.events.page(room, range, limit, known).await?)
}

/// Which page a history request asks for: `limit` 1–100 (default 50), `before` or `after`
/// but not both. Checked before authentication, as a malformed request answers first.
pub fn history_page(
    before: Option<u64>,
    after: Option<u64>,
    limit: Option<u64>,
) -> Result<(EventRange, u32), ApiError> {
    let limit = limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1 to 100"));
    }
    let range = match (before, after) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("give `before` or `after`, not both"));
        }
        (Some(b), None) => EventRange::Before(b),
        (None, Some(a)) => EventRange::After(a),
        (None, None) => EventRange::Newest,
    };
    Ok((range, limit as u32))
}

/// Sends, edits, deletes or reacts: checks, takes a rate token, commits, publishes.
/// `session` is the WebSocket session writing, if any (None over HTTP).
pub async fn write(
    app: &AppState,
    user: &UserRef,
    room: &str,
    write: Write,
    session: Option<SessionId>,
) -> Result<Appended, ApiError> {
    let append = match write {
        Write::Send { client_id, body } => {
            let client_id = ClientMsgId::parse(client_id)?;
            let body = MessageBody::parse(body, app.config.max_body)?;
            Append::Text {
                client_id: client_id.as_str().to_owned(),
                body: body.into_string(),
            }
        }
        Write::Edit { target, body } => Append::Edit {
            target,
            body: MessageBody::parse(body, app.config.max_body)?.into_string(),
        },
        Write::Delete { target } => Append::Delete { target },
        Write::React { target, body } => Append::React {
            target,
            body: Emoji::parse(body)?.into_string(),
        },
    };
    // A session the hub delivers this room to is a member, so a plain send needs no read
    // first; the store checks membership again inside the commit, which decides.
    let member = session.is_some_and(|s| app.hub.delivers(s, room));
    if !(member && matches!(append, Append::Text { .. })) {
        let info = visible_room(app, user, room).await?;
        check_target(app, &info, user, room, &append).await?;
    }
    let rate = Rate {
        per_s: app.config.rate_per_s,
        burst: app.config.burst,
    };
    let key = format!("rate:{}", user.id);
    match app.cache.take_token(&key, rate, now_ms() as u64).await {
        Ok(Ok(())) => {}
        Ok(Err(wait_ms)) => return Err(ApiError::rate_limited(wait_ms)),
        // A lost cache must not stop chat: the limit is skipped while it is away.
        Err(e) => tracing::warn!(error = %e, "rate limit skipped: cache unavailable"),
    }
    commit(app, room, user, append, session).await
}

/// The target rules, checked before the rate token is taken (the store checks them again).
async fn check_target(
    app: &AppState,
    info: &RoomInfo,
    user: &UserRef,
    room: &str,
    append: &Append,
) -> Result<(), ApiError> {
    let target = match append {
        Append::Text { .. } => return Ok(()),
        Append::Edit { target, .. } | Append::Delete { target } | Append::React { target, .. } => {
            *target
        }
    };
    let page = app
        .events
        .page(room, EventRange::After(target.saturating_sub(1)), 1, 0)
        .await?;
    let found = page
        .events
        .into_iter()
        .find(|e| e.seq == target && target > 0);
    let t = found.map(|e| TargetFacts {
        is_text: e.kind == EventKind::Text,
        deleted: e.deleted,
        author: e.from.id,
    });
    match append {
        Append::Edit { .. } => rules::may_edit(t.as_ref(), &user.id)?,
        Append::Delete { .. } => rules::may_delete(&info.facts(), t.as_ref(), &user.id)?,
        _ => rules::may_react(t.as_ref())?,
    }
    Ok(())
}

/// Commits and publishes. Over HTTP in a task of its own, so a caller that goes away cannot
/// cancel the publish of a committed event; a WebSocket session's reader awaits its handlers
/// to the end, so it runs them in place (one task and one wake-up less per message).
async fn commit(
    app: &AppState,
    room: &str,
    user: &UserRef,
    append: Append,
    session: Option<SessionId>,
) -> Result<Appended, ApiError> {
    if session.is_some() {
        return commit_now(app, room, user, append).await;
    }
    let (app, room, user) = (app.clone(), room.to_owned(), user.clone());
    let task = tokio::spawn(async move { commit_now(&app, &room, &user, append).await });
    task.await.map_err(|e| ApiError::internal(&e))?
}

async fn commit_now(
    app: &AppState,
    room: &str,
    user: &UserRef,
    append: Append,
) -> Result<Appended, ApiError> {
    let started = Instant::now();
    let appended = app.store.append(room, user, append).await;
    metrics::commit_latency(started.elapsed());
    let appended = appended?;
    if !appended.duplicate {
        metrics::events_appended(appended.event.kind.as_str());
        publish_event(app, &appended.event).await;
    }
    Ok(appended)
}

/// Moves the read marker forward and tells the user's other sessions.
pub async fn read(
    app: &AppState,
    user: &UserRef,
    room: &str,
    seq: u64,
    session: &str,
) -> Result<(), ApiError> {
    visible_room(app, user, room).await?;
    if let Some(seq) = app.store.set_read(room, &user.id, seq).await? {
        let msg = Control::Read {
            user: user.id.clone(),
            room: room.to_owned(),
            seq,
            session: session.to_owned(),
        };
        publish(app, &bus_msg::user_topic(&user.id), BusMsg::Control(msg)).await;
    }
    Ok(())
}

/// Forwards a typing notice (the hub throttles it to one a second per user and room).
pub async fn typing(app: &AppState, user: &UserRef, room: &str) -> Result<(), ApiError> {
    visible_room(app, user, room).await?;
    if app.hub.typing_allowed(&user.id, room, now_ms() as u64) {
        let msg = Control::Typing {
            room: room.to_owned(),
            user: user.clone(),
        };
        publish(app, &bus_msg::room_topic(room), BusMsg::Control(msg)).await;
    }
    Ok(())
}

/// The ids of a room's members who are online.
pub async fn presence(app: &AppState, user: &UserRef, room: &str) -> Result<Vec<String>, ApiError> {
    visible_room(app, user, room).await?;
    let members: Vec<String> = app
        .store
        .members(room)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    app.cache
        .online(&members)
        .await
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, e.to_string()))
}

/// Tells members of the user's (small enough) rooms that the user came online or went offline.
pub async fn announce_presence(app: &AppState, user: &UserRef, online: bool) {
    let rooms = match app.store.rooms_of(&user.id).await {
        Ok(rooms) => rooms
            .into_iter()
            .filter(|r| r.member_count <= app.config.presence_max_members)
            .map(|r| r.id)
            .collect(),
        Err(e) => return tracing::warn!(error = %e, "presence not announced"),
    };
    let msg = Control::Presence {
        user: user.clone(),
        online,
        rooms,
    };
    publish(app, bus_msg::PRESENCE_TOPIC, BusMsg::Control(msg)).await;
}

/// Tells the cache, then the bus: a node that sees the event on the bus finds it cached.
async fn publish_event(app: &AppState, event: &Event) {
    let frame = ServerFrame::Msg(event.clone()).to_json();
    app.events.committed(event, &frame).await;
    publish(
        app,
        &bus_msg::room_topic(&event.room),
        BusMsg::Event {
            room: event.room.clone(),
            seq: event.seq,
            frame,
        },
    )
    .await;
}

async fn publish(app: &AppState, topic: &str, msg: BusMsg) {
    // A lost publish is repaired by receivers (gap fill from the store), so it is only logged.
    if let Err(e) = app.bus.publish(topic, msg.encode()).await {
        tracing::warn!(error = %e, topic, "bus publish failed");
    }
}
