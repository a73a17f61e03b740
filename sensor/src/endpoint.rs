//! The operations endpoint: `/metrics` (Prometheus text), `/healthz` (the
//! collector loop is turning) and `/readyz` (every source is in place).
//! It runs on a thread of its own so that scrapes never wait on the event
//! loop, and so that a stuck event loop shows in `/healthz`.
use std::{convert::Infallible, net::SocketAddr, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode, body::Incoming, header, server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tracing::{debug, error, warn};

use crate::metrics::Metrics;

/// Connections served at once: scrapers and probes need a few; more would
/// only take file descriptors from the collector.
const MAX_CONNECTIONS: usize = 64;

/// A client that sends no complete request in this time is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// OpenMetrics, which prometheus-client writes and Prometheus reads.
const METRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `address` now, so that a port in use is an error before the
/// sensor starts, and serves from a thread. Returns the bound address
/// (port 0 picks one).
pub fn start(
    address: SocketAddr,
    metrics: Metrics,
    stall: Duration,
) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("endpoint".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => return error!(error = %e, "endpoint: cannot start its runtime"),
            };
            runtime.block_on(serve(listener, metrics, stall));
        })?;
    Ok(bound)
}

async fn serve(listener: std::net::TcpListener, metrics: Metrics, stall: Duration) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => return error!(error = %e, "endpoint: cannot listen"),
    };
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        // Waits for a free slot before accepting: excess clients queue in
        // the kernel's backlog instead of holding descriptors here.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                warn!(error = %e, "endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let response = respond(&req, &metrics, stall);
                async move { Ok::<_, Infallible>(response) }
            });
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            // Bounded as a whole too: a client may trickle its reads.
            match tokio::time::timeout(HEADER_TIMEOUT * 6, served).await {
                Ok(Err(e)) => debug!(error = %e, "endpoint: connection ended with an error"),
                Err(_) => debug!("endpoint: connection timed out"),
                Ok(Ok(())) => {}
            }
            drop(slot);
        });
    }
}

fn respond(req: &Request<Incoming>, metrics: &Metrics, stall: Duration) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    let health = metrics.health();
    match req.uri().path() {
        "/metrics" => {
            let mut r = text(StatusCode::OK, metrics.encode());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(METRICS_TYPE),
            );
            r
        }
        "/healthz" => match health.stalled_for() {
            Some(idle) if idle > stall => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("stalled: the collector loop has been idle for {idle:?}\n"),
            ),
            _ => text(StatusCode::OK, "ok\n".into()),
        },
        "/readyz" if health.is_ready() => text(StatusCode::OK, "ready\n".into()),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "starting\n".into()),
        _ => text(
            StatusCode::NOT_FOUND,
            "/metrics, /healthz or /readyz\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
