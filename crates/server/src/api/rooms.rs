//! Rooms, members, messages and DMs under `/v1/rooms` and `/v1/dms`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use confab_domain::text::{ClientMsgId, MessageBody, RoomName};
use confab_protocol::Visibility;
use serde::Deserialize;
use serde_json::json;

use super::extract::{Bearer, Body};
use crate::actions::{self, Write};
use crate::error::ApiError;
use crate::state::AppState;

type Params = Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>;

fn params(q: Params) -> Result<HashMap<String, String>, ApiError> {
    q.map(|Query(m)| m)
        .map_err(|_| ApiError::bad_request("malformed query string"))
}

fn number(params: &HashMap<String, String>, key: &str) -> Result<Option<u64>, ApiError> {
    match params.get(key).map(String::as_str) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("`{key}` must be a non-negative integer"))),
    }
}

/// `{"rooms":[...]}`, each room's fields in protocol order.
#[derive(serde::Serialize)]
struct RoomList {
    rooms: Vec<confab_protocol::Room>,
}

/// `GET /v1/rooms`
pub async fn mine(
    State(app): State<AppState>,
    Bearer(token): Bearer,
) -> Result<Response, ApiError> {
    let caller = app.authenticate(token.as_deref()).await?;
    let rooms = app.store.rooms_of(&caller.user.id).await?;
    Ok(Json(RoomList { rooms }).into_response())
}

/// `GET /v1/rooms/public?q=&limit=`
pub async fn public(
    State(app): State<AppState>,
    Bearer(token): Bearer,
    q: Params,
) -> Result<Response, ApiError> {
    let p = params(q)?;
    let limit = number(&p, "limit")?.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1 to 100"));
    }
    let query = p.get("q").map(String::as_str).unwrap_or("");
    if query.chars().count() > 64 {
        return Err(ApiError::bad_request("q must be at most 64 characters"));
    }
    app.authenticate(token.as_deref()).await?;
    let rooms = app.store.public_rooms(query, limit as u32).await?;
    Ok(Json(RoomList { rooms }).into_response())
}

/// The body of `POST /v1/rooms`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRoom {
    name: String,
    #[serde(default = "public_by_default")]
    visibility: Visibility,
}

fn public_by_default() -> Visibility {
    Visibility::Public
}

/// `POST /v1/rooms`
pub async fn create(
    State(app): State<AppState>,
    Bearer(token): Bearer,
    body: Result<Body<NewRoom>, ApiError>,
) -> Result<Response, ApiError> {
    let Body(r) = body?;
    // A malformed request is answered before an unauthorized one.
    RoomName::parse(&r.name)?;
    let caller = app.authenticate(token.as_deref()).await?;
    let room = actions::create_room(&app, &caller.user, &r.name, r.visibility).await?;
    Ok((StatusCode::CREATED, Json(room)).into_response())
}

/// `POST /v1/rooms/{id}/join`
pub async fn join(
    State(app): State<AppState>,
    Bearer(token): Bearer,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = app.authenticate(token.as_deref()).await?;
    let room = actions::join(&app, &caller.user, &id).await?;
    Ok(Json(room).into_response())
}

/// `POST /v1/rooms/{id}/leave`
pub async fn leave(
    State(app): State<AppState>,
    Bearer(token): Bearer,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let caller = app.authenticate(token.as_deref()).await?;
    actions::leave(&app, &caller.user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user named by name or id.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserArg {
    user: String,
}

/// `POST /v1/rooms/{id}/members`
pub async fn add_member(
    State(app): State<AppState>,
    Bearer(token): Bearer,
    Path(id): Path<String>,
    body: Result<Body<UserArg>, ApiError>,
) -> Result<StatusCode, ApiError> {
    let Body(u) = body?;
    let caller = app.authenticate(token.as_deref()).await?;
    actions::add_member(&app, &caller.user, &id, &u.user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/rooms/{id}/members`: `{"members":[{"id","name"}]}`, members only.
pub async fn members(
    State(app): State<AppState>,
    Bearer(token): Bearer,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = app.authenticate(token.as_deref()).await?;
    actions::visible_room(&app, &caller.user, &id).await?;
    let members = app.store.members(&id).await?;
    Ok(Json(json!({ "members": members })).into_response())
}

/// `DELETE /v1/rooms/{id}/members/{user}`
pub async fn remove_member(
    State(app): State<AppState>,
    Bearer(token): Bearer,
    Path((id, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let caller = app.authenticate(token.as_deref()).await?;
    actions::remove_member(&app, &caller.user, &id, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/rooms/{id}/messages?before=&after=&limit=`
pub async fn messages(
    State(app): State<AppState>,
    Bearer(token): Bearer,
    Path(id): Path<String>,
    q: Params,
) -> Result<Response, ApiError> {
    let p = params(q)?;
    let (before, after, limit) = (
        number(&p, "before")?,
        number(&p, "after")?,
        number(&p, "limit")?,
    );
    let page_wanted = actions::history_page(before, after, limit)?;
    let caller = app.authenticate(token.as_deref()).await?;
    let page = actions::history(&app, &caller.user, &id, page_wanted).await?;
    // A struct, not `json!`, so each event keeps its fields in protocol order.
    #[derive(serde::Serialize)]
    struct Events {
        events: Vec<confab_protocol::Event>,
        has_more: bool,
    }
    Ok(Json(Events {
        events: page.events,
        has_more: page.has_more,
    })
    .into_response())
}

/// The body of `POST /v1/rooms/{id}/messages`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    client_id: String,
    body: String,
}

/// `POST /v1/rooms/{id}/messages`: 201 when stored, 200 with the original for a repeat.
pub async fn publish(
    State(app): State<AppState>,
    Bearer(token): Bearer,
    Path(id): Path<String>,
    body: Result<Body<Publish>, ApiError>,
) -> Result<Response, ApiError> {
    let Body(m) = body?;
    // A malformed request is answered before an unauthorized one.
    let client_id = ClientMsgId::parse(m.client_id)?.as_str().to_owned();
    let body = MessageBody::parse(m.body, app.config.max_body)?.into_string();
    let caller = app.authenticate(token.as_deref()).await?;
    let a = actions::write(
        &app,
        &caller.user,
        &id,
        Write::Send { client_id, body },
        None,
    )
    .await?;
    let status = if a.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(json!({ "seq": a.event.seq, "id": a.event.id, "ts": a.event.ts })),
    )
        .into_response())
}

/// `POST /v1/dms`
pub async fn open_dm(
    State(app): State<AppState>,
    Bearer(token): Bearer,
    body: Result<Body<UserArg>, ApiError>,
) -> Result<Response, ApiError> {
    let Body(u) = body?;
    let caller = app.authenticate(token.as_deref()).await?;
    let room = actions::open_dm(&app, &caller.user, &u.user).await?;
    Ok(Json(room).into_response())
}
