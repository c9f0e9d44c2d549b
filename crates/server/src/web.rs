//! The web client's files (`web/static/`), compiled into the binary and served at `/`.

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use include_dir::{Dir, include_dir};

use crate::error::ApiError;
use crate::state::AppState;

static FILES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../web/static");

/// `/` (the page) and `/{file}` (its scripts and styles).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { serve("index.html") }))
        .route(
            "/{file}",
            get(|Path(file): Path<String>| async move { serve(&file) }),
        )
}

fn serve(name: &str) -> Response {
    let Some(file) = FILES.get_file(name) else {
        return ApiError::new(confab_protocol::ErrorCode::NotFound, "no such endpoint")
            .into_response();
    };
    let kind = match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        file.contents(),
    )
        .into_response()
}
