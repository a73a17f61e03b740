//! New outbound TCP connections with their owning processes, from the
//! socket table (netstat2: sock_diag on Linux, sysctl on macOS,
//! GetExtendedTcpTable on Windows). A connection that opens and closes
//! between two polls is never seen.
use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
};

use netstat2::{AddressFamilyFlags, ProtocolFlags, ProtocolSocketInfo, SocketInfo, TcpState};

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

/// (local, remote) of a connection.
type Ends = (SocketAddr, SocketAddr);

/// Diffs socket-table snapshots.
pub struct SocketPoller {
    seen: HashSet<Ends>,
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

    /// Connections that appeared since the previous poll. Owners are looked
    /// up only when there are new connections: on Linux that lookup scans
    /// every process's fds and costs more than the table itself.
    pub fn poll(&mut self) -> Result<Vec<Outbound>, netstat2::error::Error> {
        let now = outbound(&table(false)?);
        let mut new: Vec<Ends> = now
            .keys()
            .filter(|e| !self.seen.contains(e))
            .copied()
            .collect();
        self.seen = now.into_keys().collect();
        if new.is_empty() {
            return Ok(Vec::new());
        }
        new.sort();
        let owners = outbound(&table(true)?);
        Ok(new
            .into_iter()
            .filter_map(|(local, remote)| {
                let pid = owners.get(&(local, remote)).copied().flatten()?;
                Some(Outbound { pid, local, remote })
            })
            .collect())
    }
}

/// The TCP table; `with_pids` where owners are needed (on other systems
/// they come with the table anyway).
fn table(with_pids: bool) -> Result<Vec<SocketInfo>, netstat2::error::Error> {
    let af = AddressFamilyFlags::IPV4 | AddressFamilyFlags::IPV6;
    #[cfg(target_os = "linux")]
    if !with_pids {
        return netstat2::iterate_sockets_info_without_pids(af, ProtocolFlags::TCP)?.collect();
    }
    let _ = with_pids;
    netstat2::get_sockets_info(af, ProtocolFlags::TCP)
}

/// Outbound connections of a table and their first owner, if listed: a
/// connection in SYN_SENT or ESTABLISHED whose local port is not a
/// listening one (that would be an accepted, inbound connection).
fn outbound(table: &[SocketInfo]) -> HashMap<Ends, Option<u32>> {
    let listening: HashSet<u16> = table
        .iter()
        .filter_map(|s| match &s.protocol_socket_info {
            ProtocolSocketInfo::Tcp(t) if t.state == TcpState::Listen => Some(t.local_port),
            _ => None,
        })
        .collect();
    table
        .iter()
        .filter_map(|s| {
            let ProtocolSocketInfo::Tcp(t) = &s.protocol_socket_info else {
                return None;
            };
            let outbound = matches!(t.state, TcpState::SynSent | TcpState::Established)
                && !listening.contains(&t.local_port)
                && !t.remote_addr.is_unspecified()
                && t.remote_port != 0;
            outbound.then(|| {
                (
                    (
                        SocketAddr::new(t.local_addr, t.local_port),
                        SocketAddr::new(t.remote_addr, t.remote_port),
                    ),
                    s.associated_pids.first().copied(),
                )
            })
        })
        .collect()
}
