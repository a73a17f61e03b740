//! Linux: the TCP table from NETLINK_SOCK_DIAG, asking the kernel for
//! LISTEN, SYN_SENT and ESTABLISHED sockets only. A host holding thousands
//! of TIME_WAIT sockets (any busy client) then costs nothing extra, where
//! /proc/net/tcp or an unfiltered dump reads them all every poll.
use std::{
    collections::{HashMap, HashSet},
    io,
    net::SocketAddr,
};

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::{
    SockDiagMessage,
    constants::{AF_INET, AF_INET6, IPPROTO_TCP, TCP_ESTABLISHED, TCP_LISTEN, TCP_SYN_SENT},
    inet::{ExtensionFlags, InetRequest, InetResponseHeader, SocketId, StateFlags},
};
use netlink_sys::{Socket, protocols::NETLINK_SOCK_DIAG};
use procfs::process::FDTarget;

use super::{Row, State};

/// Dumps are sent in datagrams of up to 32 KiB; a shorter buffer truncates them.
const RECV_BYTES: usize = 64 << 10;

/// IPv4 and IPv6 TCP sockets in the states the poller reads.
pub(super) fn read_table() -> io::Result<Vec<Row>> {
    let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&netlink_sys::SocketAddr::new(0, 0))?;
    let mut rows = Vec::new();
    let mut buf = vec![0u8; RECV_BYTES];
    for family in [AF_INET, AF_INET6] {
        request(&socket, family)?;
        receive(&socket, &mut buf, &mut rows)?;
    }
    Ok(rows)
}

fn request(socket: &Socket, family: u8) -> io::Result<()> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut packet = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::LISTEN | StateFlags::SYN_SENT | StateFlags::ESTABLISHED,
            socket_id: if family == AF_INET {
                SocketId::new_v4()
            } else {
                SocketId::new_v6()
            },
        })
        .into(),
    );
    packet.finalize();
    let mut bytes = vec![0; packet.buffer_len()];
    packet.serialize(&mut bytes);
    socket.send(&bytes, 0)?;
    Ok(())
}

/// Reads one dump to its DONE message.
fn receive(socket: &Socket, buf: &mut [u8], rows: &mut Vec<Row>) -> io::Result<()> {
    loop {
        let size = socket.recv(&mut &mut buf[..], 0)?;
        let mut at = 0;
        while at < size {
            let msg = NetlinkMessage::<SockDiagMessage>::deserialize(&buf[at..size])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            match msg.payload {
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                    rows.push(row(&r.header))
                }
                NetlinkPayload::Done(_) => return Ok(()),
                NetlinkPayload::Error(e) => return Err(e.to_io()),
                _ => {}
            }
            let len = msg.header.length as usize;
            if len == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "sock_diag: zero-length netlink message",
                ));
            }
            // Messages in a datagram start 4-byte aligned.
            at += len.next_multiple_of(4);
        }
    }
}

fn row(h: &InetResponseHeader) -> Row {
    let id = &h.socket_id;
    Row {
        local: SocketAddr::new(id.source_address, id.source_port),
        remote: SocketAddr::new(id.destination_address, id.destination_port),
        state: match h.state {
            TCP_LISTEN => State::Listen,
            TCP_SYN_SENT | TCP_ESTABLISHED => State::Open,
            _ => State::Other,
        },
        pid: None,
        inode: u64::from(h.inode),
    }
}

/// Fills each row's pid with the first process holding its socket inode,
/// read from every process's descriptors (stopping once all are found). A
/// socket closed since the dump has no owner left.
pub(super) fn find_owners(rows: &mut [Row]) {
    let wanted: HashSet<u64> = rows.iter().map(|r| r.inode).filter(|&i| i != 0).collect();
    let found = inode_owners(&wanted);
    for r in rows {
        r.pid = found.get(&r.inode).copied();
    }
}

fn inode_owners(wanted: &HashSet<u64>) -> HashMap<u64, u32> {
    let mut found = HashMap::new();
    if wanted.is_empty() {
        return found;
    }
    let Ok(procs) = procfs::process::all_processes() else {
        return found;
    };
    for p in procs.flatten() {
        let Ok(fds) = p.fd() else { continue };
        for fd in fds.flatten() {
            if let FDTarget::Socket(inode) = fd.target
                && wanted.contains(&inode)
            {
                found.entry(inode).or_insert(p.pid as u32);
            }
        }
        if found.len() == wanted.len() {
            break;
        }
    }
    found
}
