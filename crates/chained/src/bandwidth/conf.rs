//! The reference `bandwidth` configuration: rates in bits per second, bursts in bits.

use serde::Deserialize;
use serde_json::Value;
use weft_datapath::netlink::TbfSpec;

/// Queueing latency the reference plugin sizes the tbf limit for.
pub const LATENCY_MS: u64 = 25;

/// Limits as given (bits per second, bits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Limits {
    /// Rate of traffic into the pod.
    pub ingress_rate: u64,
    /// Burst of traffic into the pod.
    pub ingress_burst: u64,
    /// Rate of traffic out of the pod.
    pub egress_rate: u64,
    /// Burst of traffic out of the pod.
    pub egress_burst: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct TopLevel {
    ingress_rate: Option<u64>,
    ingress_burst: Option<u64>,
    egress_rate: Option<u64>,
    egress_burst: Option<u64>,
}

/// Reads the limits: top-level keys win over `runtimeConfig.bandwidth` when any is set.
pub fn limits(raw: &Value, runtime: Option<&Value>) -> Result<Limits, String> {
    let top: TopLevel = serde_json::from_value(raw.clone())
        .map_err(|e| format!("invalid bandwidth config: {e}"))?;
    let any_top = top.ingress_rate.is_some()
        || top.ingress_burst.is_some()
        || top.egress_rate.is_some()
        || top.egress_burst.is_some();
    let limits = if any_top {
        Limits {
            ingress_rate: top.ingress_rate.unwrap_or(0),
            ingress_burst: top.ingress_burst.unwrap_or(0),
            egress_rate: top.egress_rate.unwrap_or(0),
            egress_burst: top.egress_burst.unwrap_or(0),
        }
    } else {
        match runtime.filter(|v| !v.is_null()) {
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| format!("invalid runtimeConfig.bandwidth: {e}"))?,
            None => Limits::default(),
        }
    };
    validate("ingress", limits.ingress_rate, limits.ingress_burst)?;
    validate("egress", limits.egress_rate, limits.egress_burst)?;
    Ok(limits)
}

fn validate(dir: &str, rate: u64, burst: u64) -> Result<(), String> {
    if (rate == 0) != (burst == 0) {
        return Err(format!(
            "{dir}Rate and {dir}Burst must both be set or both be zero (got {rate}, {burst})"
        ));
    }
    if burst / 8 > u64::from(u32::MAX) {
        return Err(format!(
            "{dir}Burst {burst} bits is too large (at most {} bits)",
            u64::from(u32::MAX) * 8
        ));
    }
    Ok(())
}

/// The tbf for one direction; `None` when unlimited.
pub fn tbf(rate_bits: u64, burst_bits: u64) -> Option<TbfSpec> {
    if rate_bits == 0 {
        return None;
    }
    let rate = rate_bits / 8;
    let burst = u32::try_from(burst_bits / 8).unwrap_or(u32::MAX).max(1);
    let queued = rate.saturating_mul(LATENCY_MS) / 1000;
    let limit = u32::try_from(queued.saturating_add(u64::from(burst))).unwrap_or(u32::MAX);
    Some(TbfSpec {
        rate: rate.max(1),
        burst,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn top_level_wins_and_pairs_are_required() {
        let rt = json!({"ingressRate": 8000, "ingressBurst": 800});
        let l = limits(&json!({}), Some(&rt)).unwrap();
        assert_eq!(l.ingress_rate, 8000);
        let l = limits(
            &json!({"egressRate": 16000, "egressBurst": 1600}),
            Some(&rt),
        )
        .unwrap();
        assert_eq!((l.ingress_rate, l.egress_rate), (0, 16000));
        assert!(limits(&json!({"ingressRate": 8000}), None).is_err());
        assert!(
            limits(
                &json!({"ingressRate": 8000, "ingressBurst": 1u64 << 35}),
                None
            )
            .is_err()
        );
        assert!(
            limits(
                &json!({"ingressRate": 8000, "ingressBurst": (1u64 << 35) - 8}),
                None
            )
            .is_ok()
        );
        assert_eq!(limits(&json!({}), None).unwrap(), Limits::default());
    }

    #[test]
    fn tbf_is_sized_like_the_reference() {
        assert_eq!(tbf(0, 0), None);
        let t = tbf(10_000_000, 800_000).unwrap();
        assert_eq!(t.rate, 1_250_000);
        assert_eq!(t.burst, 100_000);
        assert_eq!(t.limit, 1_250_000 * 25 / 1000 + 100_000);
    }
}
