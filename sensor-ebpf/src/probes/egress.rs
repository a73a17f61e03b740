//! Bytes sent per (cgroup, destination): a cgroup_skb egress program on the
//! cgroup2 root sees every IP packet a socket in any cgroup sends, with the
//! socket's cgroup. It only counts (one per-CPU hash update per packet) and
//! always lets the packet through.
//!
//! TCP segments without payload (handshakes, bare ACKs, FINs) are not
//! counted: they carry no data out, and the server's half of every handshake
//! goes to the client's new ephemeral port, so counting it inserted a fresh
//! key per connection. A download's ACK stream no longer shows as egress
//! either.
use aya_ebpf::{
    EbpfContext as _, helpers::generated::bpf_skb_cgroup_id, macros::cgroup_skb,
    programs::SkBuffContext,
};
use sensor_common::{EgressCount, EgressKey, hook_bits};

use crate::{globals::filter, maps::EGRESS};

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const PASS: i32 = 1;

#[cgroup_skb(egress)]
pub fn cgroup_skb_egress(ctx: SkBuffContext) -> i32 {
    if filter!(hooks) & hook_bits::EGRESS != 0 {
        let _ = count(&ctx);
    }
    PASS
}

/// The packet starts at its IP header here. Most packets this sees are not
/// counted, so reading the headers is most of what they cost.
fn count(ctx: &SkBuffContext) -> Result<(), i64> {
    let mut key = EgressKey::default();
    let l4 = match u16::from_be(ctx.skb.protocol() as u16) {
        ETH_P_IP => {
            let ip: [u8; 20] = header(ctx, 0)?;
            key.ip_version = 4;
            key.protocol = ip[9];
            key.addr[..4].copy_from_slice(&ip[16..20]);
            usize::from(ip[0] & 0x0f) * 4
        }
        ETH_P_IPV6 => {
            let ip: [u8; 40] = header(ctx, 0)?;
            key.ip_version = 6;
            // Extension headers are not walked: their port stays 0.
            key.protocol = ip[6];
            key.addr.copy_from_slice(&ip[24..40]);
            40
        }
        _ => return Ok(()),
    };
    let len = ctx.len() as u64;
    match key.protocol {
        IPPROTO_TCP => {
            // Ports, then the data offset: the high nibble of byte 12, in
            // 32-bit words.
            let tcp: [u8; 13] = header(ctx, l4)?;
            if len <= (l4 + usize::from(tcp[12] >> 4) * 4) as u64 {
                return Ok(());
            }
            key.port = u16::from_be_bytes([tcp[2], tcp[3]]);
        }
        IPPROTO_UDP => {
            let udp: [u8; 4] = header(ctx, l4)?;
            key.port = u16::from_be_bytes([udp[2], udp[3]]);
        }
        _ => {}
    }
    // SAFETY: the context is this program's __sk_buff.
    key.cgroup_id = unsafe { bpf_skb_cgroup_id(ctx.as_ptr().cast()) };
    match EGRESS.get_ptr_mut(&key) {
        // SAFETY: this CPU's value; nothing else writes it meanwhile.
        Some(v) => unsafe {
            (*v).bytes += len;
            (*v).packets += 1;
        },
        None => {
            let first = EgressCount {
                bytes: len,
                packets: 1,
            };
            EGRESS.insert(&key, &first, 0).map_err(i64::from)?;
        }
    }
    Ok(())
}

/// `N` bytes at `at`: straight from the packet's linear part when they are in
/// it (the stack builds the headers of what it sends there), else through the
/// copying helper.
#[inline(always)]
fn header<const N: usize>(ctx: &SkBuffContext, at: usize) -> Result<[u8; N], i64> {
    let start = ctx.data() + at;
    if start + N <= ctx.data_end() {
        // SAFETY: in bounds, checked just above (and by the verifier).
        Ok(unsafe { core::ptr::read_unaligned(start as *const [u8; N]) })
    } else {
        ctx.load(at)
    }
}
