//! Extractors that turn malformed input into the protocol's `bad_request` / `too_large`.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use confab_protocol::ErrorCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body of type `T`; any content type is read as JSON.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::TooLarge, "request body over the size limit")
            } else {
                ApiError::bad_request("could not read the request body")
            }
        })?;
        // Every body is a JSON object: serde would also take a struct from an array of its
        // fields (`["ada","pw"]`), which the protocol does not allow.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        serde_json::from_slice(&bytes)
            .map(Body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// The bearer token, if any; checked later, after the body (malformed comes before unauthorized).
pub struct Bearer(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Bearer(
            crate::gateway::bearer(&parts.headers).map(str::to_owned),
        ))
    }
}
