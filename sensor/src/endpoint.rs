//! The operations endpoint: `/metrics` (Prometheus text), `/healthz` (the
//! collector loop is turning) and `/readyz` (every source is in place).
//! It runs on a thread of its own so that scrapes never wait on the event
//! loop, and so that a stuck event loop shows in `/healthz`.
//!
//! Anyone who can reach the port can open connections and send nothing.
//! So that they cannot starve the kubelet's probes, the listener never
//! stops accepting: past [`MAX_CONNECTIONS`] the oldest connection is
//! closed to make room. A client holding hundreds of idle sockets only
//! evicts its own, and a probe, which asks at once, is answered first.
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
pub const MAX_CONNECTIONS: usize = 64;

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
    // Oldest first.
    let mut live: std::collections::VecDeque<tokio::task::AbortHandle> =
        std::collections::VecDeque::with_capacity(MAX_CONNECTIONS);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                warn!(error = %e, "endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        live.retain(|c| !c.is_finished());
        if live.len() >= MAX_CONNECTIONS
            && let Some(oldest) = live.pop_front()
        {
            debug!("endpoint: at its connection limit, closing the oldest");
            oldest.abort();
        }
        let metrics = metrics.clone();
        let connection = tokio::spawn(async move {
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
        });
        live.push_back(connection.abort_handle());
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

#[cfg(all(test, unix))]
mod tests {
    use std::{
        io::{Read, Write},
        net::TcpStream,
        time::Instant,
    };

    use super::*;

    /// 1,000 clients and the server's sockets live in this one process.
    fn raise_open_files(want: u64) {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit read and write the struct we own.
        unsafe {
            assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
            if limit.rlim_cur < want && limit.rlim_max >= want {
                limit.rlim_cur = want;
                assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
            }
        }
    }

    fn probe(address: SocketAddr) -> (Duration, String) {
        let started = Instant::now();
        let mut s = TcpStream::connect(address).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        (started.elapsed(), answer)
    }

    /// The attack: 1,000 idle or slowloris connections from a local
    /// user delayed /healthz by 2-15 s, when the endpoint stopped accepting
    /// at 64 connections. The kubelet's default probe timeout is 1 s.
    #[test]
    fn probes_are_answered_while_a_thousand_idle_connections_are_open() {
        raise_open_files(1500);
        let address = start(
            "127.0.0.1:0".parse().unwrap(),
            Metrics::new(),
            Duration::from_secs(60),
        )
        .unwrap();
        let mut hostile = Vec::new();
        for n in 0..1000 {
            let mut s = TcpStream::connect(address).unwrap();
            // Half say nothing, half trickle a request that never ends.
            if n % 2 == 0 {
                s.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ").unwrap();
            }
            hostile.push(s);
        }
        let mut slowest = Duration::ZERO;
        for _ in 0..20 {
            let (took, answer) = probe(address);
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            assert!(answer.ends_with("ok\n"), "{answer}");
            slowest = slowest.max(took);
        }
        println!("slowest of 20 probes under 1,000 hostile connections: {slowest:?}");
        assert!(slowest < Duration::from_secs(1), "{slowest:?}");
    }
}
