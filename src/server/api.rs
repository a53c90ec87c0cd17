//! The HTTP API: routes, the bearer-token check, and the handlers, each a thin
//! layer over `runs` and `machine`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State as With};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use futures_util::Stream;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::MAX_BODY;
use super::machine::{CoreSample, Machine};
use super::runs::{Phase, Runs};
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
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such call", None) })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        // Outermost: nothing is said to a caller without the token.
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

/// `{"error": ..., "field": ...}` with `status`.
fn error(status: StatusCode, message: &str, field: Option<&str>) -> Response {
    (status, Json(json!({"error": message, "field": field}))).into_response()
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

async fn machine(With(state): With<Shared>) -> Json<Machine> {
    Json(state.machine.clone())
}

/// `POST /api/v1/runs`: a run spec, as `scalelab run --format json` names its fields.
async fn create(With(state): With<Shared>, body: Bytes) -> Response {
    let spec: RunSpec = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("the body is not a run spec: {e}");
            return error(StatusCode::BAD_REQUEST, &msg, None);
        }
    };
    if let Err(e) = spec.validate() {
        return error(StatusCode::BAD_REQUEST, &e.message, Some(e.field));
    }
    let id = state.runs.submit(spec);
    (StatusCode::CREATED, Json(json!({ "id": id }))).into_response()
}

/// A run while it goes (`status` and `progress`), else its report exactly as
/// `scalelab run --format json` prints it.
async fn one(With(state): With<Shared>, Path(id): Path<u64>) -> Response {
    let found = state.runs.with(id, |r| match (&r.phase, &r.report) {
        // Byte for byte what `scalelab run --format json` prints.
        (Phase::Done, Some(report)) => serde_json::to_string(report).expect("reports serialize"),
        (Phase::Done, None) => match &r.failure {
            Some(why) => json!({"status": "failed", "id": id, "error": why}).to_string(),
            None => json!({"status": "cancelled", "id": id, "ran": false}).to_string(),
        },
        (phase, _) => json!({"status": phase, "id": id, "progress": r.progress}).to_string(),
    });
    match found {
        Some(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        None => error(StatusCode::NOT_FOUND, &format!("no run {id}"), None),
    }
}

/// The server's history, oldest first: one line per run.
async fn list(With(state): With<Shared>) -> Json<Vec<Value>> {
    let host = state.machine.host.clone();
    Json(state.runs.all(|r| {
        let status = match (&r.phase, &r.report) {
            (Phase::Done, Some(rep)) => json!(rep.status),
            (Phase::Done, None) if r.failure.is_some() => json!("failed"),
            (Phase::Done, None) => json!("cancelled"),
            (phase, _) => json!(phase),
        };
        json!({
            "id": r.id,
            "host": host,
            "status": status,
            "spec": r.spec,
            "wall_s": r.report.as_ref().map(|rep| rep.wall_s),
            "total": r.report.as_ref().map(|rep| rep.total),
        })
    }))
}

async fn cancel(With(state): With<Shared>, Path(id): Path<u64>) -> Response {
    if state.runs.cancel(id) {
        (
            StatusCode::ACCEPTED,
            Json(json!({"id": id, "cancelling": true})),
        )
            .into_response()
    } else {
        error(StatusCode::NOT_FOUND, &format!("no run {id}"), None)
    }
}

/// The run's events from its first, then as they come; ends after the last.
async fn events(With(state): With<Shared>, Path(id): Path<u64>) -> Response {
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
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Per-core utilisation at 10 Hz, for as long as the client listens.
async fn cores(With(state): With<Shared>) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = state.cores.clone();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let sample = rx.borrow_and_update().clone();
        let data = serde_json::to_string(&sample).expect("samples serialize");
        Some((Ok(SseEvent::default().data(data)), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
