//! The HTTP API: routes, the bearer-token check, and the handlers, each a thin
//! layer over `runs` and `machine`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Request, State as With};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use futures_util::Stream;
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;
use utoipa::ToSchema;

use super::MAX_BODY;
use super::machine::{CoreSample, Machine};
use super::runs::{Cancel, Phase, Progress, Runs};
use crate::spec::RunSpec;
use crate::workload::io::same_token;

/// What every handler shares.
pub struct State {
    pub token: String,
    pub runs: Arc<Runs>,
    pub machine: Machine,
    pub cores: watch::Receiver<CoreSample>,
}

type Shared = Arc<State>;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/api/v1/machine", get(machine))
        .route("/api/v1/runs", get(list).post(create))
        .route("/api/v1/runs/{id}", get(one).delete(cancel))
        .route("/api/v1/runs/{id}/events", get(events))
        .route("/api/v1/cores", get(cores))
        .route("/api/v1/openapi.json", get(openapi))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such call", None) })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        // Outermost: nothing is said to a caller without the token.
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

/// Why a call was refused.
#[derive(Serialize, ToSchema)]
pub(super) struct ErrorBody {
    /// What is wrong, in the CLI's words.
    error: String,
    /// The run spec's field at fault (`workers`, `io.requests`, ...), if one is.
    field: Option<String>,
}

/// A run queued.
#[derive(Serialize, ToSchema)]
pub(super) struct Created {
    id: u64,
}

/// A run asked to stop.
#[derive(Serialize, ToSchema)]
pub(super) struct Cancelling {
    id: u64,
    cancelling: bool,
}

/// A run that has not ended: where it is and how far it got.
#[derive(Serialize, ToSchema)]
pub(super) struct RunState {
    id: u64,
    /// `queued` or `running`.
    status: Phase,
    progress: Progress,
}

/// One line of the server's history.
#[derive(Serialize, ToSchema)]
pub(super) struct HistoryRow {
    id: u64,
    /// The server's host name.
    host: String,
    /// `queued`, `running`, `ok`, `failed` or `cancelled`.
    status: String,
    spec: RunSpec,
    wall_s: Option<f64>,
    total: Option<u64>,
}

/// How often an event stream carries a keep-alive comment when it has nothing
/// to say: a client that hears nothing for several of these has lost the server
/// (`client::SILENCE`).
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// `{"error": ..., "field": ...}` with `status`.
fn error(status: StatusCode, message: &str, field: Option<&str>) -> Response {
    let body = ErrorBody {
        error: message.to_string(),
        field: field.map(str::to_string),
    };
    (status, Json(body)).into_response()
}

async fn auth(With(state): With<Shared>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(t) if same_token(t, &state.token) => next.run(req).await,
        _ => StatusCode::UNAUTHORIZED.into_response(),
    }
}

#[utoipa::path(get, path = "/api/v1/machine", tag = "machine",
    responses((status = 200, description = "The machine the server runs on", body = Machine), (status = 401, description = "No token or a wrong one; the body is empty")))]
pub(super) async fn machine(With(state): With<Shared>) -> Json<Machine> {
    Json(state.machine.clone())
}

/// `POST /api/v1/runs`: a run spec, as `scalelab run --format json` names its fields.
#[utoipa::path(post, path = "/api/v1/runs", tag = "runs", request_body = RunSpec,
    responses(
        (status = 201, description = "Queued", body = Created),
        (status = 400, description = "Not a valid run spec: the CLI's message and the field", body = ErrorBody),
        (status = 413, description = "A body over 64 KiB"),
        (status = 401, description = "No token or a wrong one; the body is empty")))]
pub(super) async fn create(With(state): With<Shared>, body: Bytes) -> Response {
    match super::body::run_spec(&body) {
        Ok(spec) => {
            let id = state.runs.submit(spec);
            (StatusCode::CREATED, Json(Created { id })).into_response()
        }
        Err(r) => error(StatusCode::BAD_REQUEST, &r.message, r.field.as_deref()),
    }
}

/// A run's id in the path: a bad one is a 400 with a reason, as JSON.
pub(super) struct RunId(u64);

impl<S: Send + Sync> FromRequestParts<S> for RunId {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        raw.parse().map(RunId).map_err(|_| {
            let msg = format!("{raw:?} is not a run id (a whole number)");
            error(StatusCode::BAD_REQUEST, &msg, Some("id"))
        })
    }
}

/// A run while it goes (`status` and `progress`), else its report exactly as
/// `scalelab run --format json` prints it.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs", params(("id" = u64, Path)),
    responses(
        (status = 200, description = "While it goes, its state (`RunState`); once done, the \
            report exactly as `scalelab run --format json` prints it", body = serde_json::Value),
        (status = 400, description = "Not a run id", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 401, description = "No token or a wrong one; the body is empty")))]
pub(super) async fn one(With(state): With<Shared>, RunId(id): RunId) -> Response {
    let found = state.runs.with(id, |r| match (&r.phase, &r.report) {
        // Byte for byte what `scalelab run --format json` prints.
        (Phase::Done, Some(report)) => serde_json::to_string(report).expect("reports serialize"),
        (Phase::Done, None) => match &r.failure {
            Some(why) => json!({"status": "failed", "id": id, "error": why}).to_string(),
            None => json!({"status": "cancelled", "id": id, "ran": false}).to_string(),
        },
        (phase, _) => serde_json::to_string(&RunState {
            id,
            status: *phase,
            progress: r.progress,
        })
        .expect("states serialize"),
    });
    match found {
        Some(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        None => error(StatusCode::NOT_FOUND, &format!("no run {id}"), None),
    }
}

/// The server's history, oldest first: one line per run.
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs",
    responses((status = 200, description = "The server's runs, oldest first", body = [HistoryRow]), (status = 401, description = "No token or a wrong one; the body is empty")))]
pub(super) async fn list(With(state): With<Shared>) -> Json<Vec<HistoryRow>> {
    let host = state.machine.host.clone();
    Json(state.runs.all(|r| {
        let status = match (&r.phase, &r.report) {
            (Phase::Done, Some(rep)) => json!(rep.status),
            (Phase::Done, None) if r.failure.is_some() => json!("failed"),
            (Phase::Done, None) => json!("cancelled"),
            (phase, _) => json!(phase),
        };
        HistoryRow {
            id: r.id,
            host: host.clone(),
            status: status.as_str().unwrap_or_default().to_string(),
            spec: r.spec.clone(),
            wall_s: r.report.as_ref().map(|rep| rep.wall_s),
            total: r.report.as_ref().map(|rep| rep.total),
        }
    }))
}

#[utoipa::path(delete, path = "/api/v1/runs/{id}", tag = "runs", params(("id" = u64, Path)),
    responses(
        (status = 202, description = "Asked to stop: a running run ends with a `cancelled` event, a queued one never starts", body = Cancelling),
        (status = 409, description = "The run has already ended", body = ErrorBody),
        (status = 400, description = "Not a run id", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 401, description = "No token or a wrong one; the body is empty")))]
pub(super) async fn cancel(With(state): With<Shared>, RunId(id): RunId) -> Response {
    match state.runs.cancel(id) {
        Some(Cancel::Asked) => {
            let body = Cancelling {
                id,
                cancelling: true,
            };
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
        Some(Cancel::AlreadyEnded) => {
            let msg = format!("run {id} has already ended");
            error(StatusCode::CONFLICT, &msg, None)
        }
        None => error(StatusCode::NOT_FOUND, &format!("no run {id}"), None),
    }
}

/// The run's events from its first, then as they come; ends after the last.
#[utoipa::path(get, path = "/api/v1/runs/{id}/events", tag = "runs", params(("id" = u64, Path)),
    responses(
        (status = 200, description = "The run's events as server-sent events, one JSON event \
            (`{\"type\": ..., \"data\": ...}`) per `data:` line, from its first; ends after the \
            terminal one (`finished`, `cancelled` or `failed`)", content_type = "text/event-stream", body = String),
        (status = 400, description = "Not a run id", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 401, description = "No token or a wrong one; the body is empty")))]
pub(super) async fn events(With(state): With<Shared>, RunId(id): RunId) -> Response {
    if state.runs.with(id, |_| ()).is_none() {
        return error(StatusCode::NOT_FOUND, &format!("no run {id}"), None);
    }
    let runs = state.runs.clone();
    let stream = futures_util::stream::unfold(0usize, move |next| {
        let runs = runs.clone();
        async move {
            loop {
                // Made before looking, so that no event slips in between.
                let changed = runs.changed.notified();
                let seen = runs.with(id, |r| (r.events.get(next).cloned(), r.phase))?;
                match seen {
                    (Some(e), _) => {
                        let sse = SseEvent::default().data(&*e);
                        return Some((Ok::<_, Infallible>(sse), next + 1));
                    }
                    (None, Phase::Done) => return None,
                    (None, _) => changed.await,
                }
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// The OpenAPI document of this API, generated from these handlers.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "machine",
    responses((status = 200, description = "This document", body = serde_json::Value),
        (status = 401, description = "No token or a wrong one; the body is empty")))]
pub(super) async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(super::openapi::document())
}

/// Per-core utilisation at 10 Hz, for as long as the client listens.
#[utoipa::path(get, path = "/api/v1/cores", tag = "machine",
    responses(
        (status = 200, description = "Per-core utilisation at 10 Hz as server-sent events, one \
            `CoreSample` per `data:` line, whether or not a run goes", content_type = "text/event-stream", body = String),
        (status = 401, description = "No token or a wrong one; the body is empty")))]
pub(super) async fn cores(
    With(state): With<Shared>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = state.cores.clone();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let sample = rx.borrow_and_update().clone();
        let data = serde_json::to_string(&sample).expect("samples serialize");
        Some((Ok(SseEvent::default().data(data)), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}
