//! Docker Engine API over its unix socket, for when Docker's on-disk
//! records are not visible (a DaemonSet that mounts the socket but not
//! /var/lib/docker). One `GET /containers/<id>/json` per container, with a
//! deadline on every step, run on a worker thread so a hung daemon can
//! never stall the event stream.
//!
//! Hand-written rather than hyper + hyperlocal: one HTTP/1.0 request whose
//! response ends at EOF needs no client machinery, and a blocking socket
//! with read/write timeouts is the simplest way to bound every call.
use std::{
    io::{Read as _, Write as _},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    sync::mpsc,
    time::Duration,
};

use thiserror::Error;

/// Largest response read (a container inspect is a few KiB).
const MAX_RESPONSE: u64 = 4 << 20;

/// A failed API call.
#[derive(Debug, Error)]
pub enum ApiError {
    /// Socket I/O failed or timed out.
    #[error("docker API at {socket}: {source}")]
    Io {
        /// The socket.
        socket: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// Not an HTTP 200 with a JSON body.
    #[error("docker API at {socket}: {reason}")]
    Protocol {
        /// The socket.
        socket: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

/// (name, image) of a container.
pub fn inspect(socket: &Path, id: &str, timeout: Duration) -> Result<(String, String), ApiError> {
    let io = |source| ApiError::Io {
        socket: socket.to_owned(),
        source,
    };
    let protocol = |reason: String| ApiError::Protocol {
        socket: socket.to_owned(),
        reason,
    };
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(protocol(format!("refusing container id {id:?}")));
    }
    let mut stream = UnixStream::connect(socket).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    write!(
        stream,
        "GET /containers/{id}/json HTTP/1.0\r\nHost: docker\r\n\r\n"
    )
    .map_err(io)?;
    let mut response = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut response)
        .map_err(io)?;
    parse_inspect_response(&response)
        .map_err(|reason| protocol(format!("GET /containers/{id}/json: {reason}")))
}

/// (name, image) from the bytes of an HTTP/1.0 answer to a container
/// inspect, headers included.
pub fn parse_inspect_response(response: &[u8]) -> Result<(String, String), String> {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no HTTP header end")?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("answered {status:?}"));
    }
    let body: serde_json::Value =
        serde_json::from_slice(&response[split + 4..]).map_err(|e| format!("bad JSON: {e}"))?;
    let name = body["Name"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_owned();
    let image = body["Config"]["Image"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok((name, image))
}

/// A finished lookup: container id and (name, image) or why not.
pub type Finished = (String, Result<(String, String), ApiError>);

/// Runs [`inspect`] calls on a worker thread; results are collected without
/// waiting.
pub struct Worker {
    requests: mpsc::Sender<(PathBuf, String)>,
    results: mpsc::Receiver<Finished>,
}

impl Worker {
    /// Starts the worker; each call gets `timeout` per socket operation.
    pub fn start(timeout: Duration) -> Self {
        let (requests, rx) = mpsc::channel::<(PathBuf, String)>();
        let (tx, results) = mpsc::channel();
        std::thread::Builder::new()
            .name("docker-api".into())
            .spawn(move || {
                for (socket, id) in rx {
                    let r = inspect(&socket, &id, timeout);
                    if tx.send((id, r)).is_err() {
                        break;
                    }
                }
            })
            .expect("spawn docker-api worker");
        Self { requests, results }
    }

    /// Queues a lookup.
    pub fn request(&self, socket: PathBuf, id: String) {
        let _ = self.requests.send((socket, id));
    }

    /// Finished lookups, without blocking.
    pub fn finished(&self) -> Vec<Finished> {
        self.results.try_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::{io::BufRead as _, os::unix::net::UnixListener, time::Instant};

    use super::*;

    fn serve(response: &'static [u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut line = String::new();
                let _ = std::io::BufReader::new(s.try_clone().unwrap()).read_line(&mut line);
                let _ = s.write_all(response);
            }
        });
        (dir, path)
    }

    #[test]
    fn parses_name_and_image() {
        let (_d, sock) = serve(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"Name\":\"/web\",\"Config\":{\"Image\":\"nginx:1\"}}");
        assert_eq!(
            inspect(&sock, "abc", Duration::from_secs(2)).unwrap(),
            ("web".into(), "nginx:1".into())
        );
    }

    #[test]
    fn errors_name_the_socket_and_status() {
        let (_d, sock) = serve(b"HTTP/1.0 404 Not Found\r\n\r\n{}");
        let e = inspect(&sock, "abc", Duration::from_secs(2))
            .unwrap_err()
            .to_string();
        assert!(e.contains("docker.sock") && e.contains("404"), "{e}");
        assert!(
            inspect(
                Path::new("/nonexistent/docker.sock"),
                "abc",
                Duration::from_secs(1)
            )
            .is_err()
        );
        assert!(inspect(&sock, "../../etc", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn a_hung_daemon_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        // Accepts and never answers.
        let _keep = std::thread::spawn(move || {
            let conn = listener.accept();
            std::thread::sleep(Duration::from_secs(5));
            drop(conn);
        });
        let started = Instant::now();
        let e = inspect(&path, "abc", Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e, ApiError::Io { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
