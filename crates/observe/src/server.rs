//! The HTTP side: three read-only endpoints, plain text.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::{Health, Metrics};

/// What the endpoints read.
#[derive(Debug)]
pub struct Observe {
    /// The agent's metrics.
    pub metrics: Metrics,
    /// The agent's liveness and readiness.
    pub health: Health,
}

/// OpenMetrics' content type; Prometheus negotiates it and also reads it as text.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `/healthz`, `/readyz` and `/metrics` on `listener` until the future is dropped.
pub async fn serve(listener: TcpListener, observe: Arc<Observe>) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(observe);
    axum::serve(listener, app).await
}

fn probe_answer(result: Result<(), String>) -> (StatusCode, String) {
    match result {
        Ok(()) => (StatusCode::OK, "ok\n".to_string()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

async fn healthz(State(o): State<Arc<Observe>>) -> impl IntoResponse {
    probe_answer(o.health.live())
}

async fn readyz(State(o): State<Arc<Observe>>) -> impl IntoResponse {
    probe_answer(o.health.ready())
}

async fn metrics(State(o): State<Arc<Observe>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, OPENMETRICS)], o.metrics.render())
}
