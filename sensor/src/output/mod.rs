//! Where records go: stdout, a rotating file, syslog, a webhook, any number
//! at once, each record encoded once (native, ECS or OCSF). Local outputs
//! are written in line; network outputs sit behind a bounded queue
//! ([`queue`]) so a slow receiver never stalls the collector, and what they
//! cannot take is counted. Sinks know nothing of collectors.
use std::{
    collections::BTreeMap,
    fmt,
    io::{self, Write},
    path::PathBuf,
    str::FromStr,
    time::Duration,
};

use crate::{event::Record, metrics::Metrics};

pub mod file;
pub mod format;
pub mod lines;
mod metered;
pub mod queue;
pub mod syslog;
pub mod webhook;

pub use file::Rotation;
pub use format::{Encoder, Format};
pub use metered::MeteredSink;
use queue::{QueueOptions, Queued};
use syslog::{Facility, Framer, Protocol, SyslogTransport};

/// A destination for records.
pub trait Sink {
    /// Writes one record.
    fn write(&mut self, record: &Record) -> io::Result<()>;
    /// Pushes buffered records out.
    fn flush(&mut self) -> io::Result<()>;
    /// Records accepted but not delivered since the last call, by reason
    /// ([`lines::reason`]): for loss records.
    fn take_dropped(&mut self) -> BTreeMap<&'static str, u64> {
        BTreeMap::new()
    }
}

/// One `--output`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `-`.
    Stdout,
    /// A path (or `file://PATH`): appended to, rotated by size.
    File(PathBuf),
    /// `syslog+udp://HOST:PORT` (or `syslog://`), `syslog+tcp://HOST:PORT`.
    Syslog(Protocol, String),
    /// `http://…` or `https://…`.
    Webhook(String),
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "-" {
            return Ok(Self::Stdout);
        }
        let Some((scheme, rest)) = s.split_once("://") else {
            if s.is_empty() {
                return Err("an empty output: expected -, a path or a URL".into());
            }
            return Ok(Self::File(s.into()));
        };
        let host_port = |rest: &str| -> Result<String, String> {
            let rest = rest.trim_end_matches('/');
            match rest.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                    Ok(rest.to_owned())
                }
                _ => Err(format!("{s}: expected {scheme}://HOST:PORT")),
            }
        };
        match scheme {
            "file" if !rest.is_empty() => Ok(Self::File(rest.into())),
            "syslog" | "syslog+udp" => Ok(Self::Syslog(Protocol::Udp, host_port(rest)?)),
            "syslog+tcp" => Ok(Self::Syslog(Protocol::Tcp, host_port(rest)?)),
            "http" | "https" if !rest.is_empty() => Ok(Self::Webhook(s.to_owned())),
            _ => Err(format!(
                "{s}: unknown output; expected -, a path, file://PATH, syslog+udp://HOST:PORT, syslog+tcp://HOST:PORT, http(s)://URL"
            )),
        }
    }
}

impl fmt::Display for Target {
    /// Safe to log: a webhook's query string (which may hold a token) is
    /// left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stdout => f.write_str("stdout"),
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Syslog(Protocol::Udp, a) => write!(f, "syslog+udp://{a}"),
            Self::Syslog(Protocol::Tcp, a) => write!(f, "syslog+tcp://{a}"),
            Self::Webhook(url) => f.write_str(url.split('?').next().unwrap_or(url)),
        }
    }
}

/// How outputs write.
#[derive(Clone, Debug)]
pub struct OutputOptions {
    /// Encoding of every output.
    pub format: Format,
    /// Named on every record.
    pub node: String,
    /// For files.
    pub rotation: Rotation,
    /// For network outputs.
    pub queue: QueueOptions,
    /// Sent with every webhook request.
    pub webhook_headers: Vec<(String, String)>,
    /// PEM certificates a webhook's HTTPS server is verified against.
    pub webhook_ca: Option<PathBuf>,
    /// Per request or connection.
    pub timeout: Duration,
    /// For syslog.
    pub facility: Facility,
}

enum Destination {
    Stream(lines::Lines<lines::Stream>),
    File(file::RotatingFile),
    Syslog(Framer, Queued, Protocol),
    Webhook(Queued),
}

/// Every output, fed one encoding of each record.
pub struct Outputs {
    encoder: Encoder,
    destinations: Vec<Destination>,
    /// The record being written, newline-terminated.
    line: Vec<u8>,
    /// Where local outputs' drops are counted by destination.
    metrics: Option<Metrics>,
}

impl Outputs {
    /// Opens every target; a file that cannot be opened is an error now,
    /// a receiver that is down is retried later.
    pub fn open(
        targets: &[Target],
        options: &OutputOptions,
        metrics: &Metrics,
    ) -> io::Result<Self> {
        let mut destinations = Vec::new();
        for target in targets {
            let name = target.to_string();
            destinations.push(match target {
                Target::Stdout => Destination::Stream(stream(Box::new(io::stdout()), name)),
                Target::File(path) => {
                    Destination::File(file::RotatingFile::open(path, options.rotation).map_err(
                        |e| io::Error::new(e.kind(), format!("{}: {e}", path.display())),
                    )?)
                }
                Target::Syslog(protocol, address) => {
                    let transport = SyslogTransport::new(*protocol, address, options.timeout);
                    let m = metrics.output("syslog", &name);
                    Destination::Syslog(
                        Framer::new(options.facility, &options.node, *protocol),
                        Queued::start(&name, transport, options.queue, m)?,
                        *protocol,
                    )
                }
                Target::Webhook(url) => {
                    let ca = match &options.webhook_ca {
                        Some(path) => Some(std::fs::read(path).map_err(|e| {
                            io::Error::new(e.kind(), format!("{}: {e}", path.display()))
                        })?),
                        None => None,
                    };
                    let transport = webhook::WebhookTransport::new(
                        url,
                        options.webhook_headers.clone(),
                        options.timeout,
                        ca.as_deref(),
                    )
                    .map_err(io::Error::other)?;
                    let m = metrics.output("webhook", &name);
                    Destination::Webhook(Queued::start(&name, transport, options.queue, m)?)
                }
            });
        }
        Ok(Self {
            encoder: Encoder::new(options.format, &options.node),
            destinations,
            line: Vec::new(),
            metrics: Some(metrics.clone()),
        })
    }

    /// One writer (stdout, a buffer), encoded by `encoder`.
    pub fn writer(out: Box<dyn Write + Send>, encoder: Encoder) -> Self {
        Self {
            encoder,
            destinations: vec![Destination::Stream(stream(out, "stream".into()))],
            line: Vec::new(),
            metrics: None,
        }
    }
}

fn stream(out: Box<dyn Write + Send>, name: String) -> lines::Lines<lines::Stream> {
    lines::Lines::new(lines::Stream(out), name, 0)
}

impl Sink for Outputs {
    fn write(&mut self, record: &Record) -> io::Result<()> {
        self.line.clear();
        self.encoder.encode(record, &mut self.line)?;
        self.line.push(b'\n');
        let json = &self.line[..self.line.len() - 1];
        for d in &mut self.destinations {
            match d {
                Destination::Stream(w) => w.push(&self.line),
                Destination::File(f) => f.write_line(&self.line),
                Destination::Syslog(framer, queue, protocol) => {
                    let frame = framer.frame(record, json);
                    if *protocol == Protocol::Udp && frame.len() > syslog::UDP_MAX {
                        queue.refuse("too_large");
                    } else {
                        queue.push(frame);
                    }
                }
                Destination::Webhook(queue) => queue.push(json.to_vec()),
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        for d in &mut self.destinations {
            match d {
                Destination::Stream(w) => w.flush(),
                Destination::File(f) => f.flush(),
                // Their workers send on their own schedule.
                Destination::Syslog(..) | Destination::Webhook(_) => {}
            }
        }
        Ok(())
    }

    /// Local outputs' drops; network outputs count theirs in metrics as
    /// they happen (`sensor_output_dropped_total`).
    fn take_dropped(&mut self) -> BTreeMap<&'static str, u64> {
        let mut all = BTreeMap::new();
        for d in &mut self.destinations {
            let (output, name, dropped) = match d {
                Destination::Stream(w) => ("stdout", w.name().to_owned(), w.take_dropped()),
                Destination::File(f) => ("file", f.name().to_owned(), f.take_dropped()),
                Destination::Syslog(..) | Destination::Webhook(_) => continue,
            };
            for (reason, n) in dropped {
                if let Some(m) = &self.metrics {
                    m.output_dropped(output, &name, reason, n);
                }
                *all.entry(reason).or_default() += n;
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer tests can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_node_opens_every_line_and_is_escaped() {
        let record: Record = serde_json::from_str(
            r#"{"schema": 1, "time": "2026-12-03T00:00:00Z", "boot_ns": 1, "kind": "loss",
                "loss": {"ring_full": {}, "kernel_error": {}, "ring_full_by_cpu": {},
                         "malformed": 0, "total_since_start": 0}}"#,
        )
        .unwrap();
        let out = Shared::default();
        let mut sink = Outputs::writer(
            Box::new(out.clone()),
            Encoder::new(Format::Native, "node \"7\"\n"),
        );
        sink.write(&record).unwrap();
        sink.write(&record).unwrap();
        sink.flush().unwrap();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        for line in lines {
            assert!(
                line.starts_with(r#"{"node":"node \"7\"\n","schema":1,"#),
                "{line}"
            );
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["kind"], "loss");
        }
    }

    #[test]
    fn targets_by_scheme() {
        let t = |s: &str| s.parse::<Target>();
        assert_eq!(t("-").unwrap(), Target::Stdout);
        assert_eq!(
            t("/var/log/e.json").unwrap(),
            Target::File("/var/log/e.json".into())
        );
        assert_eq!(t("file:///tmp/x").unwrap(), Target::File("/tmp/x".into()));
        assert_eq!(
            t("syslog://h:514").unwrap(),
            Target::Syslog(Protocol::Udp, "h:514".into())
        );
        assert_eq!(
            t("syslog+tcp://[::1]:601").unwrap(),
            Target::Syslog(Protocol::Tcp, "[::1]:601".into())
        );
        assert_eq!(
            t("https://c.example/in?token=s").unwrap(),
            Target::Webhook("https://c.example/in?token=s".into())
        );
        assert_eq!(
            t("https://c.example/in?token=s").unwrap().to_string(),
            "https://c.example/in"
        );
        assert!(t("syslog+tcp://nohost").unwrap_err().contains("HOST:PORT"));
        assert!(t("kafka://b:9092").unwrap_err().contains("unknown output"));
        assert!(t("").is_err());
    }
}
