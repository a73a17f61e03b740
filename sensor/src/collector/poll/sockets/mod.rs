//! New outbound TCP connections with their owning processes, from the
//! system's TCP table: sock_diag on Linux (filtered by state in the
//! kernel), the TCP table API on Windows (netstat2), per-process socket
//! descriptors on macOS (libproc). A connection that opens and closes
//! between two polls is never seen.
#[cfg(target_os = "macos")]
mod libproc_fds;
#[cfg(target_os = "linux")]
mod sock_diag;
#[cfg(windows)]
mod tcp_table;

use std::{
    collections::{HashMap, HashSet},
    io,
    net::SocketAddr,
};

#[cfg(target_os = "macos")]
use self::libproc_fds as system;
#[cfg(target_os = "linux")]
use self::sock_diag as system;
#[cfg(windows)]
use self::tcp_table as system;

/// One outbound connection.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Outbound {
    /// Owning process (the first, when several share the socket).
    pub pid: u32,
    /// Local end.
    pub local: SocketAddr,
    /// Remote end.
    pub remote: SocketAddr,
}

/// A row of a system's TCP table.
#[derive(Clone, Copy, Debug)]
struct Row {
    local: SocketAddr,
    remote: SocketAddr,
    state: State,
    /// Owner, where the table names it (Windows, macOS).
    pid: Option<u32>,
    /// Socket inode, to find the owner among the processes' descriptors
    /// (Linux).
    #[cfg(target_os = "linux")]
    inode: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Listen,
    /// SYN_SENT or ESTABLISHED.
    Open,
    Other,
}

/// (local, remote) of a connection.
type Ends = (SocketAddr, SocketAddr);

/// Diffs socket-table snapshots.
pub struct SocketPoller {
    seen: HashSet<Ends>,
}

impl SocketPoller {
    /// Takes the first snapshot; connections open now are the baseline.
    pub fn new() -> io::Result<Self> {
        let mut p = Self {
            seen: HashSet::new(),
        };
        p.poll()?;
        Ok(p)
    }

    /// Connections that appeared since the previous poll, with an owner
    /// still holding them.
    pub fn poll(&mut self) -> io::Result<Vec<Outbound>> {
        let now = outbound(&system::read_table()?);
        let mut new: Vec<Row> = now
            .iter()
            .filter(|(e, _)| !self.seen.contains(e))
            .map(|(_, r)| *r)
            .collect();
        self.seen = now.into_keys().collect();
        new.sort_by_key(|r| (r.local, r.remote));
        // Scanning every process's descriptors costs more than the table:
        // only for new connections.
        #[cfg(target_os = "linux")]
        sock_diag::find_owners(&mut new);
        Ok(new
            .into_iter()
            .filter_map(|r| {
                Some(Outbound {
                    pid: r.pid?,
                    local: r.local,
                    remote: r.remote,
                })
            })
            .collect())
    }
}

/// Outbound connections of a table and their owner: SYN_SENT or
/// ESTABLISHED with a local port that is not listening (that would be an
/// accepted, inbound connection).
fn outbound(table: &[Row]) -> HashMap<Ends, Row> {
    let listening: HashSet<u16> = table
        .iter()
        .filter(|r| r.state == State::Listen)
        .map(|r| r.local.port())
        .collect();
    table
        .iter()
        .filter(|r| {
            r.state == State::Open
                && !listening.contains(&r.local.port())
                && !r.remote.ip().is_unspecified()
                && r.remote.port() != 0
        })
        .map(|r| ((r.local, r.remote), *r))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(local: &str, remote: &str, state: State) -> Row {
        Row {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            state,
            pid: None,
            #[cfg(target_os = "linux")]
            inode: 0,
        }
    }

    #[test]
    fn accepted_and_closing_connections_are_not_outbound() {
        let table = [
            row("0.0.0.0:22", "0.0.0.0:0", State::Listen),
            // Accepted on the listening port: inbound.
            row("10.0.0.1:22", "10.0.0.9:50000", State::Open),
            row("10.0.0.1:40000", "93.184.216.34:443", State::Open),
            row("10.0.0.1:40001", "93.184.216.34:443", State::Other),
        ];
        let out = outbound(&table);
        let ends: Vec<_> = out.keys().map(|(l, r)| (l.port(), r.port())).collect();
        assert_eq!(ends, vec![(40000, 443)]);
    }
}
