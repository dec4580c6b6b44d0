use super::*;
use crate::ops::{add, del, with_lock};
use crate::store::mem::MemStore;
use proptest::prelude::*;
use serde_json::json;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cfg(ipam: serde_json::Value) -> IpamConfig {
    IpamConfig::parse_with(&json!({"name": "net", "ipam": ipam}), |_| Ok(String::new())).unwrap()
}

fn alloc(
    c: &IpamConfig,
    s: &mut MemStore,
    id: &str,
    ifname: &str,
    req: &[IpAddr],
) -> Result<Vec<Allocation>, IpamError> {
    with_lock(s, |s| allocate(c, s, id, ifname, req))
}

#[test]
fn first_allocation_and_round_robin() {
    let c = cfg(json!({"subnet": "10.1.2.0/24"}));
    let mut s = MemStore::new();
    let a = alloc(&c, &mut s, "a", "eth0", &[]).unwrap();
    assert_eq!(a[0].address, "10.1.2.2/24".parse::<IpNet>().unwrap());
    assert_eq!(a[0].gateway, Some(ip("10.1.2.1")));
    let b = alloc(&c, &mut s, "b", "eth0", &[]).unwrap();
    assert_eq!(b[0].address.addr(), ip("10.1.2.3"));
    del(&mut s, "a", "eth0").unwrap();
    let d = alloc(&c, &mut s, "d", "eth0", &[]).unwrap();
    assert_eq!(d[0].address.addr(), ip("10.1.2.4"));
}

#[test]
fn repeated_add_is_idempotent_and_other_ifname_differs() {
    let c = cfg(json!({"subnet": "10.1.2.0/24"}));
    let mut s = MemStore::new();
    let first = alloc(&c, &mut s, "a", "eth0", &[]).unwrap();
    assert_eq!(alloc(&c, &mut s, "a", "eth0", &[]).unwrap(), first);
    assert_eq!(s.reservations.len(), 1);
    let other = alloc(&c, &mut s, "a", "eth1", &[]).unwrap();
    assert_ne!(other[0].address, first[0].address);
    // Repeating with the address it holds is fine; asking for another one is not.
    assert!(alloc(&c, &mut s, "a", "eth0", &[first[0].address.addr()]).is_ok());
    let err = alloc(&c, &mut s, "a", "eth0", &[ip("10.1.2.77")]).unwrap_err();
    assert_eq!(err.cni_code(), 109);
}

#[test]
fn requested_ips_and_errors_roll_back() {
    let c = cfg(json!({"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8::/64"}]]}));
    let mut s = MemStore::new();
    let a = alloc(
        &c,
        &mut s,
        "a",
        "eth0",
        &[ip("2001:db8::50"), ip("10.1.2.50")],
    )
    .unwrap();
    assert_eq!(a[0].address.addr(), ip("10.1.2.50"));
    assert_eq!(a[1].address, "2001:db8::50/64".parse::<IpNet>().unwrap());
    assert_eq!(a[1].set_index, 1);
    let before = s.reservations.clone();
    let bad = [
        (vec![ip("10.1.2.1")], "gateway"),
        (vec![ip("10.1.2.50")], "already reserved"),
        (vec![ip("10.9.9.9")], "not in any"),
        (vec![ip("10.1.2.255")], "not in any"),
        (vec![ip("10.1.2.0")], "not in any"),
        (vec![ip("10.1.2.60"), ip("10.1.2.61")], "also requested"),
        // v4 would be reserved first, then the v6 request fails: v4 must be rolled back.
        (
            vec![ip("10.1.2.70"), ip("2001:db8::50")],
            "already reserved",
        ),
    ];
    for (req, needle) in bad {
        let err = alloc(&c, &mut s, "b", "eth0", &req).unwrap_err();
        assert!(err.to_string().contains(needle), "{req:?}: {err}");
        assert_eq!(s.reservations, before, "{req:?} left something behind");
    }
}

#[test]
fn exhausted_changes_nothing() {
    let c =
        cfg(json!({"subnet": "10.1.2.0/24", "rangeStart": "10.1.2.10", "rangeEnd": "10.1.2.10"}));
    let mut s = MemStore::new();
    alloc(&c, &mut s, "a", "eth0", &[]).unwrap();
    let before = s.clone();
    let err = alloc(&c, &mut s, "b", "eth0", &[]).unwrap_err();
    assert_eq!(err.cni_code(), 100);
    assert!(err.to_string().contains("10.1.2.10"), "{err}");
    assert_eq!(s.reservations, before.reservations);
    assert_eq!(s.last, before.last);
}

#[test]
fn second_set_exhausted_rolls_back_first() {
    let c = cfg(json!({"ranges": [[{"subnet": "10.1.2.0/24"}],
        [{"subnet": "10.1.3.0/24", "rangeStart": "10.1.3.10", "rangeEnd": "10.1.3.10"}]]}));
    let mut s = MemStore::new();
    alloc(&c, &mut s, "a", "eth0", &[]).unwrap();
    let before = s.reservations.clone();
    assert!(matches!(
        alloc(&c, &mut s, "b", "eth0", &[]),
        Err(IpamError::Exhausted { set_index: 1, .. })
    ));
    assert_eq!(s.reservations, before);
}

#[test]
fn add_validates_attachment() {
    let c = cfg(json!({"subnet": "10.1.2.0/24"}));
    let mut s = MemStore::new();
    for (id, ifname) in [("", "eth0"), ("../x", "eth0"), ("a", ""), ("a", "x/y")] {
        let err = add(&c, &mut s, id, ifname, &[]).unwrap_err();
        assert_eq!(err.cni_code(), 4);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Add(u8, bool),
    Del(u8, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..12, any::<bool>()).prop_map(|(c, i)| Op::Add(c, i)),
        (0u8..12, any::<bool>()).prop_map(|(c, i)| Op::Del(c, i)),
    ]
}

proptest! {
    /// Random ADD/DEL sequences on a tiny pool: no address ever has two holders, released
    /// addresses are reused once the pool wraps, and every ADD either succeeds or the pool
    /// really is full.
    #[test]
    fn no_double_allocation(ops in proptest::collection::vec(op(), 1..120)) {
        // /29 with gateway .1: 5 usable addresses (.2-.6) for up to 24 attachments.
        let c = cfg(json!({"subnet": "10.1.2.0/29"}));
        let mut s = MemStore::new();
        let mut model: std::collections::HashMap<(String, String), IpAddr> = Default::default();
        for op in ops {
            match op {
                Op::Add(cid, second) => {
                    let key = (format!("c{cid}"), if second { "eth1" } else { "eth0" }.to_string());
                    match add(&c, &mut s, &key.0, &key.1, &[]) {
                        Ok(r) => {
                            let got = r.allocations[0].address.addr();
                            if let Some(prev) = model.get(&key) {
                                prop_assert_eq!(*prev, got);
                            }
                            prop_assert!(model.iter().all(|(k, v)| k == &key || *v != got));
                            model.insert(key, got);
                        }
                        Err(IpamError::Exhausted { .. }) => {
                            prop_assert!(!model.contains_key(&key));
                            prop_assert_eq!(model.len(), 5);
                        }
                        Err(e) => prop_assert!(false, "unexpected {}", e),
                    }
                }
                Op::Del(cid, second) => {
                    let key = (format!("c{cid}"), if second { "eth1" } else { "eth0" }.to_string());
                    let released = del(&mut s, &key.0, &key.1).unwrap();
                    let expected: Vec<IpAddr> = model.remove(&key).into_iter().collect();
                    prop_assert_eq!(released, expected);
                }
            }
            let holders: std::collections::HashMap<IpAddr, (String, String)> = s
                .reservations
                .iter()
                .filter_map(|(ip, h)| match h {
                    crate::store::Holder::Attachment { id, ifname } => Some((*ip, (id.clone(), ifname.clone()))),
                    _ => None,
                })
                .collect();
            prop_assert_eq!(holders.len(), model.len());
            for (k, v) in &model {
                prop_assert_eq!(holders.get(v), Some(k));
            }
        }
    }
}
