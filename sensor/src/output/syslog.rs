//! Syslog (RFC 5424) over UDP (RFC 5426: one message per datagram) or TCP
//! (RFC 6587 octet counting, so a message may hold any byte and any
//! length). The message is the record's JSON; the header carries its time,
//! the node, and its kind as MSGID, so a relay can route on them without
//! parsing JSON.
use std::{
    io::{self, Write},
    net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket},
    str::FromStr,
    time::Duration,
};

use super::queue::{SendError, Transport};
use crate::event::{Body, Record, Severity};

/// Datagram payload limit over IPv4 (65535 less IP and UDP headers).
pub const UDP_MAX: usize = 65_507;

/// How messages travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// One datagram per message.
    Udp,
    /// A stream of octet-counted frames.
    Tcp,
}

/// A syslog facility, by its RFC 5424 name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facility(u8);

impl Default for Facility {
    fn default() -> Self {
        Self(16) // local0
    }
}

const FACILITIES: &[&str] = &[
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

impl FromStr for Facility {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        FACILITIES
            .iter()
            .position(|f| *f == s)
            .map(|i| Self(i as u8))
            .ok_or_else(|| {
                format!(
                    "unknown facility {s:?}: expected one of {}",
                    FACILITIES.join(", ")
                )
            })
    }
}

/// Builds RFC 5424 messages.
pub struct Framer {
    facility: Facility,
    /// `HOSTNAME APP-NAME PROCID`, fixed for the process.
    origin: String,
    protocol: Protocol,
}

impl Framer {
    /// Messages from `node` at `facility`, framed for `protocol`.
    pub fn new(facility: Facility, node: &str, protocol: Protocol) -> Self {
        Self {
            facility,
            origin: format!(
                "{} {} {}",
                header_field(node, 255),
                super::format::PRODUCT,
                std::process::id()
            ),
            protocol,
        }
    }

    /// One message (with its TCP frame length) holding `json`.
    pub fn frame(&self, record: &Record, json: &[u8]) -> Vec<u8> {
        let pri = self.facility.0 * 8 + severity(record);
        let kind = record.kind().name();
        let header = format!(
            "<{pri}>1 {} {} {kind} - ",
            timestamp(&record.time),
            self.origin
        );
        let len = header.len() + json.len();
        let mut out = Vec::with_capacity(len + 12);
        if self.protocol == Protocol::Tcp {
            out.extend_from_slice(format!("{len} ").as_bytes());
        }
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(json);
        out
    }
}

/// RFC 5424 severity: alerts by their rule, loss as a warning, the rest
/// informational.
fn severity(record: &Record) -> u8 {
    match &record.body {
        Body::Alert(a) => match a.rule.severity {
            Severity::Critical => 2,
            Severity::High => 3,
            Severity::Medium => 4,
            Severity::Low => 5,
            Severity::Info => 6,
        },
        Body::Loss(_) => 4,
        _ => 6,
    }
}

/// RFC 5424 allows at most six fractional digits; records carry nine.
fn timestamp(time: &str) -> std::borrow::Cow<'_, str> {
    match time.find('.') {
        // `…ss.ffffff` then `Z`: cut the extra digits, keep the zone.
        Some(dot) if time.len() > dot + 8 && time.ends_with('Z') => {
            format!("{}Z", &time[..dot + 7]).into()
        }
        _ => time.into(),
    }
}

/// Printable ASCII without spaces, as header fields must be; `-` if empty.
fn header_field(s: &str, max: usize) -> String {
    let f: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if f.is_empty() { "-".into() } else { f }
}

/// Sends frames to a syslog receiver.
pub struct SyslogTransport {
    protocol: Protocol,
    address: String,
    udp: Option<UdpSocket>,
    tcp: Option<TcpStream>,
    timeout: Duration,
}

impl SyslogTransport {
    /// Sends to `address` (`host:port`), connecting when first needed.
    pub fn new(protocol: Protocol, address: &str, timeout: Duration) -> Self {
        Self {
            protocol,
            address: address.to_owned(),
            udp: None,
            tcp: None,
            timeout,
        }
    }

    fn resolve(&self) -> io::Result<SocketAddr> {
        self.address.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} has no address", self.address),
            )
        })
    }

    fn send_all(&mut self, batch: &[Vec<u8>]) -> io::Result<()> {
        match self.protocol {
            Protocol::Udp => {
                if self.udp.is_none() {
                    let to = self.resolve()?;
                    let any: SocketAddr = if to.is_ipv4() {
                        "0.0.0.0:0".parse().expect("an address")
                    } else {
                        "[::]:0".parse().expect("an address")
                    };
                    let socket = UdpSocket::bind(any)?;
                    socket.connect(to)?;
                    self.udp = Some(socket);
                }
                let socket = self.udp.as_ref().expect("connected");
                for message in batch {
                    socket.send(message)?;
                }
                Ok(())
            }
            Protocol::Tcp => {
                if self.tcp.is_none() {
                    let stream = TcpStream::connect_timeout(&self.resolve()?, self.timeout)?;
                    stream.set_write_timeout(Some(self.timeout))?;
                    stream.set_nodelay(true)?;
                    self.tcp = Some(stream);
                }
                let stream = self.tcp.as_mut().expect("connected");
                // One write per batch: frames are self-delimiting.
                let all: Vec<u8> = batch.concat();
                stream.write_all(&all)
            }
        }
    }
}

impl Transport for SyslogTransport {
    fn send(&mut self, batch: &[Vec<u8>]) -> Result<(), SendError> {
        self.send_all(batch).map_err(|e| {
            // A broken stream may have sent part of the batch: the receiver
            // can see a record twice after a reconnect, never a torn one
            // mid-stream, since a new connection starts at a frame.
            self.tcp = None;
            self.udp = None;
            SendError::Retry(format!("syslog {}: {e}", self.address), None)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(time: &str) -> Record {
        serde_json::from_value(serde_json::json!({
            "schema": 1, "time": time, "boot_ns": 1, "kind": "loss",
            "loss": {"ring_full": {}, "kernel_error": {}, "ring_full_by_cpu": {},
                     "malformed": 0, "total_since_start": 0}
        }))
        .unwrap()
    }

    #[test]
    fn an_rfc5424_message_with_an_octet_count() {
        let framer = Framer::new("local3".parse().unwrap(), "node 1", Protocol::Tcp);
        let frame = framer.frame(&record("2026-12-04T10:00:00.123456789Z"), b"{\"a\":1}");
        let text = String::from_utf8(frame).unwrap();
        let (len, message) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), message.len());
        // local3 (19) * 8 + warning (4) = 156.
        let expected = format!(
            "<156>1 2026-12-04T10:00:00.123456Z node1 runtime-sensor {} loss - {{\"a\":1}}",
            std::process::id()
        );
        assert_eq!(message, expected);
    }

    #[test]
    fn udp_messages_are_not_counted_and_short_times_stay() {
        let framer = Framer::new(Facility::default(), "n", Protocol::Udp);
        let frame = framer.frame(&record("2026-12-04T10:00:00Z"), b"{}");
        assert!(
            String::from_utf8(frame)
                .unwrap()
                .starts_with("<132>1 2026-12-04T10:00:00Z n ")
        );
    }

    #[test]
    fn facilities_by_name() {
        assert_eq!("kern".parse::<Facility>().unwrap(), Facility(0));
        assert_eq!("local7".parse::<Facility>().unwrap(), Facility(23));
        assert!("local8".parse::<Facility>().unwrap_err().contains("local0"));
    }
}
