//! New outbound TCP connections with their owning processes, from the
//! socket table (netstat2: sock_diag + /proc on Linux, sysctl on macOS,
//! GetExtendedTcpTable on Windows). A connection that opens and closes
//! between two polls is never seen.
use std::{collections::HashSet, net::SocketAddr};

use netstat2::{AddressFamilyFlags, ProtocolFlags, ProtocolSocketInfo, TcpState};

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

/// Diffs socket-table snapshots.
pub struct SocketPoller {
    seen: HashSet<Outbound>,
}

impl SocketPoller {
    /// Takes the first snapshot; connections open now are the baseline.
    pub fn new() -> Result<Self, netstat2::error::Error> {
        let mut p = Self {
            seen: HashSet::new(),
        };
        p.poll()?;
        Ok(p)
    }

    /// Connections that appeared since the previous poll.
    pub fn poll(&mut self) -> Result<Vec<Outbound>, netstat2::error::Error> {
        let sockets = netstat2::get_sockets_info(
            AddressFamilyFlags::IPV4 | AddressFamilyFlags::IPV6,
            ProtocolFlags::TCP,
        )?;
        // An accepted connection's local port is a listening one: inbound.
        let listening: HashSet<u16> = sockets
            .iter()
            .filter_map(|s| match &s.protocol_socket_info {
                ProtocolSocketInfo::Tcp(t) if t.state == TcpState::Listen => Some(t.local_port),
                _ => None,
            })
            .collect();
        let mut now = HashSet::new();
        for s in &sockets {
            let ProtocolSocketInfo::Tcp(t) = &s.protocol_socket_info else {
                continue;
            };
            let outbound_state = matches!(t.state, TcpState::SynSent | TcpState::Established);
            if !outbound_state
                || listening.contains(&t.local_port)
                || t.remote_addr.is_unspecified()
                || t.remote_port == 0
            {
                continue;
            }
            let Some(&pid) = s.associated_pids.first() else {
                continue;
            };
            now.insert(Outbound {
                pid,
                local: SocketAddr::new(t.local_addr, t.local_port),
                remote: SocketAddr::new(t.remote_addr, t.remote_port),
            });
        }
        let mut new: Vec<Outbound> = now.difference(&self.seen).cloned().collect();
        new.sort_by_key(|o| (o.pid, o.local.port()));
        self.seen = now;
        Ok(new)
    }
}
