//! Traffic control through rtnetlink: a token bucket (tbf) as a link's root qdisc, the
//! ingress qdisc with a match-all u32 filter redirecting to another link (mirred), and
//! `ifb` devices — what bandwidth shaping of a pod needs.

use netlink_packet_core::{DefaultNla, Nla};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::InfoKind;
use netlink_packet_route::tc::{
    TcAction, TcActionAttribute, TcActionGeneric, TcActionMirror, TcActionMirrorOption,
    TcActionOption, TcActionType, TcAttribute, TcFilterU32, TcFilterU32Option, TcHandle, TcMessage,
    TcMirror, TcMirrorActionType, TcOption, TcU32Key, TcU32Selector, TcU32SelectorFlags,
};
use rtnetlink::{LinkMessageBuilder, LinkUnspec};

use super::link::{tolerate_missing, validate_ifname};
use super::{CREATE_EXCL, CREATE_REPLACE, LinkInfo, Netlink};
use crate::error::Result;

/// `TCA_TBF_PARMS`: `struct tc_tbf_qopt`.
const TCA_TBF_PARMS: u16 = 1;
/// `TCA_TBF_RATE64`: the rate when it does not fit the 32-bit field.
const TCA_TBF_RATE64: u16 = 4;
/// `TCA_TBF_BURST`: bucket size in bytes (the kernel derives the time buffer from it).
const TCA_TBF_BURST: u16 = 6;
/// `TC_LINKLAYER_ETHERNET`: lets the kernel skip the legacy rate table.
const LINKLAYER_ETHERNET: u8 = 1;
/// `ETH_P_ALL`, as the filter protocol (network byte order in `tcm_info`).
const ETH_P_ALL: u16 = 0x0003;
/// The handle the ingress qdisc always has (`ffff:`).
const INGRESS_HANDLE: u32 = 0xffff_0000;

/// A token bucket filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TbfSpec {
    /// Rate in bytes per second.
    pub rate: u64,
    /// Bucket size in bytes.
    pub burst: u32,
    /// Queue limit in bytes.
    pub limit: u32,
}

/// One qdisc as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QdiscInfo {
    /// Link index.
    pub index: u32,
    /// Kind (`tbf`, `ingress`, `noqueue`...).
    pub kind: String,
    /// Handle (`major << 16 | minor`).
    pub handle: u32,
    /// Parent handle (`0xffffffff` = root).
    pub parent: u32,
    /// For a tbf: its rate in bytes per second.
    pub tbf_rate: Option<u64>,
}

/// Encodes `struct tc_tbf_qopt` (rate, peakrate, limit, buffer, mtu).
fn tbf_qopt(spec: &TbfSpec) -> Vec<u8> {
    let mut rate = [0u8; 12];
    // tc_ratespec: cell_log u8, linklayer u8, overhead u16, cell_align i16, mpu u16, rate u32.
    rate[1] = LINKLAYER_ETHERNET;
    let rate32 = u32::try_from(spec.rate).unwrap_or(u32::MAX);
    rate[8..12].copy_from_slice(&rate32.to_ne_bytes());
    let mut out = Vec::with_capacity(36);
    out.extend_from_slice(&rate);
    out.extend_from_slice(&[0u8; 12]); // no peak rate
    out.extend_from_slice(&spec.limit.to_ne_bytes());
    // The buffer (in scheduler ticks) is recomputed by the kernel from TCA_TBF_BURST.
    out.extend_from_slice(&1u32.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out
}

/// For a kind netlink-packet-route does not know (tbf), the whole `TCA_OPTIONS` arrives
/// as one opaque attribute holding the nested tbf attributes.
fn tbf_rate_of(options: &[TcOption]) -> Option<u64> {
    options.iter().find_map(|opt| match opt {
        TcOption::Other(nla) => {
            let mut value = vec![0u8; nla.value_len()];
            nla.emit_value(&mut value);
            tbf_rate_in(&value)
        }
        _ => None,
    })
}

/// Walks nested attributes (`u16` length, `u16` type, value, padding to 4 bytes).
fn tbf_rate_in(mut attrs: &[u8]) -> Option<u64> {
    let mut rate = None;
    while attrs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([*attrs.first()?, *attrs.get(1)?]));
        let kind = u16::from_ne_bytes([*attrs.get(2)?, *attrs.get(3)?]) & 0x3fff;
        let value = attrs.get(4..len)?;
        match kind {
            TCA_TBF_PARMS => {
                let bytes: [u8; 4] = value.get(8..12)?.try_into().ok()?;
                rate.get_or_insert(u64::from(u32::from_ne_bytes(bytes)));
            }
            TCA_TBF_RATE64 => {
                let bytes: [u8; 8] = value.get(0..8)?.try_into().ok()?;
                rate = Some(u64::from_ne_bytes(bytes));
            }
            _ => {}
        }
        attrs = attrs.get(((len + 3) & !3).min(attrs.len())..)?;
    }
    rate
}

fn index_i32(index: u32) -> i32 {
    i32::try_from(index).unwrap_or(i32::MAX)
}

impl Netlink {
    /// Creates an `ifb` device (down); fails with `is_exists()` when the name is taken.
    pub fn create_ifb(&mut self, name: &str, mtu: Option<u32>) -> Result<LinkInfo> {
        validate_ifname(name)?;
        let mut builder = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Ifb)
            .name(name.to_string());
        if let Some(mtu) = mtu {
            builder = builder.mtu(mtu);
        }
        self.request(
            &format!("add ifb {name}"),
            RouteNetlinkMessage::NewLink(builder.build()),
            CREATE_EXCL,
        )?;
        self.link_by_name(name)
    }

    /// Installs (or replaces) a tbf as the root qdisc of a link.
    pub fn replace_root_tbf(&mut self, index: u32, spec: &TbfSpec) -> Result<()> {
        let mut msg = TcMessage::with_index(index_i32(index));
        msg.header.parent = TcHandle::ROOT;
        msg.header.handle = TcHandle::from(0x0001_0000);
        let mut options = vec![
            TcOption::Other(DefaultNla::new(TCA_TBF_PARMS, tbf_qopt(spec))),
            TcOption::Other(DefaultNla::new(
                TCA_TBF_BURST,
                spec.burst.to_ne_bytes().to_vec(),
            )),
        ];
        if spec.rate > u64::from(u32::MAX) {
            options.push(TcOption::Other(DefaultNla::new(
                TCA_TBF_RATE64,
                spec.rate.to_ne_bytes().to_vec(),
            )));
        }
        msg.attributes.push(TcAttribute::Kind("tbf".into()));
        msg.attributes.push(TcAttribute::Options(options));
        self.request(
            &format!("add tbf on link #{index}"),
            RouteNetlinkMessage::NewQueueDiscipline(msg),
            CREATE_REPLACE,
        )
    }

    /// Adds the ingress qdisc; `Ok(false)` when it already exists.
    pub fn add_ingress_qdisc(&mut self, index: u32) -> Result<bool> {
        let mut msg = TcMessage::with_index(index_i32(index));
        msg.header.parent = TcHandle::INGRESS;
        msg.header.handle = TcHandle::from(INGRESS_HANDLE);
        msg.attributes.push(TcAttribute::Kind("ingress".into()));
        match self.request(
            &format!("add ingress qdisc on link #{index}"),
            RouteNetlinkMessage::NewQueueDiscipline(msg),
            CREATE_EXCL,
        ) {
            Ok(()) => Ok(true),
            Err(e) if e.is_exists() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Redirects everything arriving on `index` to the egress of `to_index` (a u32 filter
    /// matching all packets, action mirred egress redirect) on the ingress qdisc.
    pub fn add_ingress_redirect(&mut self, index: u32, to_index: u32) -> Result<()> {
        let mut msg = TcMessage::with_index(index_i32(index));
        msg.header.parent = TcHandle::from(INGRESS_HANDLE);
        msg.header.info = (1u32 << 16) | u32::from(ETH_P_ALL.to_be());
        let mut selector = TcU32Selector::default();
        selector.flags = TcU32SelectorFlags::Terminal;
        selector.nkeys = 1;
        selector.keys = vec![TcU32Key::default()];
        let mut mirred = TcMirror::default();
        mirred.generic = TcActionGeneric::default();
        mirred.generic.action = TcActionType::Stolen;
        mirred.eaction = TcMirrorActionType::EgressRedir;
        mirred.ifindex = to_index;
        let mut action = TcAction::default();
        action.attributes = vec![
            TcActionAttribute::Kind(TcActionMirror::KIND.to_string()),
            TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(
                mirred,
            ))]),
        ];
        msg.attributes
            .push(TcAttribute::Kind(TcFilterU32::KIND.to_string()));
        msg.attributes.push(TcAttribute::Options(vec![
            TcOption::U32(TcFilterU32Option::Selector(selector)),
            TcOption::U32(TcFilterU32Option::Action(vec![action])),
        ]));
        self.request(
            &format!("add redirect filter on link #{index}"),
            RouteNetlinkMessage::NewTrafficFilter(msg),
            CREATE_EXCL,
        )
    }

    /// Deletes the root qdisc of a link; `Ok(false)` when there was none to delete.
    pub fn delete_root_qdisc(&mut self, index: u32) -> Result<bool> {
        let mut msg = TcMessage::with_index(index_i32(index));
        msg.header.parent = TcHandle::ROOT;
        tolerate_missing(self.request(
            &format!("delete root qdisc of link #{index}"),
            RouteNetlinkMessage::DelQueueDiscipline(msg),
            0,
        ))
    }

    /// Deletes the ingress qdisc (and with it its filters); `Ok(false)` when absent.
    pub fn delete_ingress_qdisc(&mut self, index: u32) -> Result<bool> {
        let mut msg = TcMessage::with_index(index_i32(index));
        msg.header.parent = TcHandle::INGRESS;
        msg.header.handle = TcHandle::from(INGRESS_HANDLE);
        match self.request(
            &format!("delete ingress qdisc of link #{index}"),
            RouteNetlinkMessage::DelQueueDiscipline(msg),
            0,
        ) {
            Ok(()) => Ok(true),
            // The kernel answers EINVAL when there is no ingress qdisc to delete.
            Err(e) if e.is_not_found() || e.errno() == Some(nix::errno::Errno::EINVAL) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The qdiscs of one link.
    pub fn qdiscs(&mut self, index: u32) -> Result<Vec<QdiscInfo>> {
        let msg = TcMessage::with_index(index_i32(index));
        let all = self.dump("dump qdiscs", RouteNetlinkMessage::GetQueueDiscipline(msg))?;
        Ok(all
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewQueueDiscipline(q) => Some(q),
                _ => None,
            })
            .filter(|q| u32::try_from(q.header.index).ok() == Some(index))
            .map(|q| {
                let kind = q
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        TcAttribute::Kind(k) => Some(k.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                let tbf_rate = q.attributes.iter().find_map(|a| match a {
                    TcAttribute::Options(o) if kind == "tbf" => tbf_rate_of(o),
                    _ => None,
                });
                QdiscInfo {
                    index,
                    kind,
                    handle: u32::from(q.header.handle),
                    parent: u32::from(q.header.parent),
                    tbf_rate,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(attrs: &[(u16, Vec<u8>)]) -> Vec<TcOption> {
        let mut out = Vec::new();
        for (kind, value) in attrs {
            let len = u16::try_from(4 + value.len()).unwrap();
            out.extend_from_slice(&len.to_ne_bytes());
            out.extend_from_slice(&kind.to_ne_bytes());
            out.extend_from_slice(value);
            out.resize((out.len() + 3) & !3, 0);
        }
        vec![TcOption::Other(DefaultNla::new(2, out))]
    }

    #[test]
    fn tbf_parameters_round_trip() {
        let spec = TbfSpec {
            rate: 1_250_000,
            burst: 62_500,
            limit: 93_750,
        };
        let qopt = tbf_qopt(&spec);
        assert_eq!(qopt.len(), 36);
        assert_eq!(qopt[1], LINKLAYER_ETHERNET);
        let opts = nested(&[
            (TCA_TBF_BURST, vec![1, 2, 3, 4]),
            (TCA_TBF_PARMS, qopt.clone()),
        ]);
        assert_eq!(tbf_rate_of(&opts), Some(1_250_000));
        let big = nested(&[
            (TCA_TBF_PARMS, qopt),
            (TCA_TBF_RATE64, 10_000_000_000u64.to_ne_bytes().to_vec()),
        ]);
        assert_eq!(tbf_rate_of(&big), Some(10_000_000_000));
    }
}
