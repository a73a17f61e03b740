//! Windows: `GetExtendedTcpTable` through netstat2; rows name their pid.
use std::{io, net::SocketAddr};

use netstat2::{AddressFamilyFlags, ProtocolFlags, ProtocolSocketInfo, TcpState};

use super::{Row, State};

pub(super) fn read_table() -> io::Result<Vec<Row>> {
    let af = AddressFamilyFlags::IPV4 | AddressFamilyFlags::IPV6;
    let sockets = netstat2::get_sockets_info(af, ProtocolFlags::TCP).map_err(io::Error::other)?;
    Ok(sockets
        .into_iter()
        .filter_map(|s| {
            let ProtocolSocketInfo::Tcp(t) = &s.protocol_socket_info else {
                return None;
            };
            Some(Row {
                local: SocketAddr::new(t.local_addr, t.local_port),
                remote: SocketAddr::new(t.remote_addr, t.remote_port),
                state: match t.state {
                    TcpState::Listen => State::Listen,
                    TcpState::SynSent | TcpState::Established => State::Open,
                    _ => State::Other,
                },
                pid: s.associated_pids.first().copied(),
            })
        })
        .collect())
}
