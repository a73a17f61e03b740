//! Bytes sent per (cgroup, destination): a cgroup_skb egress program on the
//! cgroup2 root sees every IP packet a socket in any cgroup sends, with the
//! socket's cgroup. It only counts (one per-CPU hash update per packet) and
//! always lets the packet through.
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

/// The packet starts at its IP header here.
fn count(ctx: &SkBuffContext) -> Result<(), i64> {
    let mut key = EgressKey::default();
    let l4 = match u16::from_be(ctx.skb.protocol() as u16) {
        ETH_P_IP => {
            let version_ihl: u8 = ctx.load(0)?;
            key.ip_version = 4;
            key.protocol = ctx.load(9)?;
            let dst: [u8; 4] = ctx.load(16)?;
            key.addr[..4].copy_from_slice(&dst);
            ((version_ihl & 0x0f) as usize) * 4
        }
        ETH_P_IPV6 => {
            key.ip_version = 6;
            // Extension headers are not walked: their port stays 0.
            key.protocol = ctx.load(6)?;
            key.addr = ctx.load(24)?;
            40
        }
        _ => return Ok(()),
    };
    if key.protocol == IPPROTO_TCP || key.protocol == IPPROTO_UDP {
        key.port = u16::from_be(ctx.load(l4 + 2)?);
    }
    // SAFETY: the context is this program's __sk_buff.
    key.cgroup_id = unsafe { bpf_skb_cgroup_id(ctx.as_ptr().cast()) };
    let len = ctx.len() as u64;
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
