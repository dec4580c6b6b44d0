//! Allocation speed on a nearly full /16 (65,000 of 65,534 addresses used).
//! Run: `cargo run --release -p weft-ipam --example alloc_bench [dir]`.

use std::fs;
use std::net::Ipv4Addr;
use std::time::Instant;

use serde_json::json;
use weft_ipam::{IpamConfig, IpamError, Store, add, del, open_store, with_lock};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base_dir = std::env::args().nth(1).map_or_else(
        || std::env::temp_dir().join(format!("weft-alloc-bench-{}", std::process::id())),
        Into::into,
    );
    let cfg = IpamConfig::from_request(&json!({"name": "bench",
        "ipam": {"subnet": "10.20.0.0/16", "dataDir": base_dir}}))?;
    let mut store = open_store(&cfg)?;
    let dir = store.dir().to_path_buf();
    let start = Instant::now();
    let first = u32::from(Ipv4Addr::new(10, 20, 0, 2));
    for i in 0..65_000u32 {
        fs::write(
            dir.join(Ipv4Addr::from(first + i).to_string()),
            format!("fill{i}\r\neth0"),
        )?;
    }
    println!(
        "wrote 65,000 host-local style files in {:?}",
        start.elapsed()
    );

    let start = Instant::now();
    let taken = with_lock(&mut store, |s| Ok(s.taken()?))?;
    println!(
        "taken() scan: {} addresses in {:?}",
        taken.len(),
        start.elapsed()
    );
    let start = Instant::now();
    with_lock(&mut store, |s| Ok(s.find("x", "eth0")?))?;
    println!(
        "first find() incl. one-time indexing of existing data: {:?}",
        start.elapsed()
    );

    for round in 0..5 {
        let id = format!("bench{round}");
        let start = Instant::now();
        let r = add(&cfg, &mut store, &id, "eth0", &[])?;
        let added = start.elapsed();
        let start = Instant::now();
        let again = add(&cfg, &mut store, &id, "eth0", &[])?;
        let repeated = start.elapsed();
        assert_eq!(r, again);
        let start = Instant::now();
        del(&mut store, &id, "eth0")?;
        println!(
            "round {round}: ADD {} in {added:?}, repeated ADD {repeated:?}, DEL (full scan) {:?}",
            r.allocations
                .first()
                .map(|a| a.address.to_string())
                .unwrap_or_default(),
            start.elapsed()
        );
    }
    fs::remove_dir_all(&dir)?;
    Ok::<(), IpamError>(()).map_err(Into::into)
}
