//! macOS: TCP sockets from each process's descriptors (libproc, the API
//! `lsof` uses). Processes of other users are skipped unless the sensor
//! runs as root.
use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use libproc::{
    libproc::{
        bsd_info::BSDInfo,
        file_info::{ListFDs, ProcFDType, pidfdinfo},
        net_info::{InSIAddr, InSockInfo, SocketFDInfo, SocketInfoKind, TcpSIState},
        proc_pid::{listpidinfo, pidinfo},
    },
    processes::{ProcFilter, pids_by_type},
};

use super::{Row, State};

/// `insi_vflag` bit for IPv4 (netinet/in_pcb.h).
const INI_IPV4: u8 = 0x1;

pub(super) fn read_table() -> io::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for pid in pids_by_type(ProcFilter::All)? {
        // Gone, or not ours to read: skipped.
        let Ok(info) = pidinfo::<BSDInfo>(pid as i32, 0) else {
            continue;
        };
        let Ok(fds) = listpidinfo::<ListFDs>(pid as i32, info.pbi_nfiles as usize) else {
            continue;
        };
        for fd in fds {
            if !matches!(ProcFDType::from(fd.proc_fdtype), ProcFDType::Socket) {
                continue;
            }
            let Ok(socket) = pidfdinfo::<SocketFDInfo>(pid as i32, fd.proc_fd) else {
                continue;
            };
            if !matches!(
                SocketInfoKind::from(socket.psi.soi_kind),
                SocketInfoKind::Tcp
            ) {
                continue;
            }
            // SAFETY: soi_kind says the union holds TCP info.
            let tcp = unsafe { socket.psi.soi_proto.pri_tcp };
            let ini = &tcp.tcpsi_ini;
            rows.push(Row {
                local: SocketAddr::new(address(ini, &ini.insi_laddr), port(ini.insi_lport)),
                remote: SocketAddr::new(address(ini, &ini.insi_faddr), port(ini.insi_fport)),
                state: match TcpSIState::from(tcp.tcpsi_state) {
                    TcpSIState::Listen => State::Listen,
                    TcpSIState::SynSent | TcpSIState::Established => State::Open,
                    _ => State::Other,
                },
                pid: Some(pid),
            });
        }
    }
    Ok(rows)
}

/// Ports are kept in network order in an int.
fn port(p: libc::c_int) -> u16 {
    u16::from_be(p as u16)
}

fn address(ini: &InSockInfo, a: &InSIAddr) -> IpAddr {
    // SAFETY: insi_vflag says which member of the union is set.
    unsafe {
        if ini.insi_vflag & INI_IPV4 != 0 {
            IpAddr::V4(Ipv4Addr::from(a.ina_46.i46a_addr4.s_addr.to_ne_bytes()))
        } else {
            IpAddr::V6(Ipv6Addr::from(a.ina_6.s6_addr))
        }
    }
}
