//! The metrics weftd exports, all prefixed `weft_`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelValue;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of one series: a single `(name, value)` pair is all weft needs.
type Label = Vec<(&'static str, String)>;

/// How a NetworkPolicy ruleset reached the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum ApplyMode {
    /// The whole table replaced in one transaction.
    Full,
    /// Only set and map elements changed.
    Delta,
}

/// What became of a pod's claim from the plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum ClaimResult {
    /// The pod's rules were applied.
    Applied,
    /// The pod object was not known yet: its addresses are quarantined.
    Quarantined,
    /// The claim failed (the plugin fails the ADD).
    Failed,
}

/// Addresses of one IPAM range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeUsage {
    /// The range as configured, e.g. `10.244.1.0/24`.
    pub range: String,
    /// Addresses reserved.
    pub used: u64,
    /// Addresses the range can hand out.
    pub capacity: u64,
}

/// Every series weftd exports. Cheap to update from any thread.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconcile_seconds: Histogram,
    reconcile_errors: Counter,
    peers: Gauge,
    pods_wired: Gauge,
    ipam_used: Family<Label, Gauge>,
    ipam_capacity: Family<Label, Gauge>,
    policy_apply_seconds: Family<Label, Histogram>,
    policy_apply_errors: Counter,
    policy_objects: Family<Label, Gauge>,
    policy_invalid: Gauge,
    nft_rules: Gauge,
    nft_sets: Gauge,
    claims: Family<Label, Counter>,
    watch_up: Family<Label, Gauge>,
    datastore_up: Gauge<f64, AtomicU64>,
}

/// Latency buckets from 0.5 ms to about 16 s: a delta apply takes a few ms, a full
/// reconcile with thousands of peers or policies seconds.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// All series registered, at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("weft");
        let m = Metrics {
            reconcile_seconds: latency_histogram(),
            reconcile_errors: Counter::default(),
            peers: Gauge::default(),
            pods_wired: Gauge::default(),
            ipam_used: Family::default(),
            ipam_capacity: Family::default(),
            policy_apply_seconds: Family::new_with_constructor(latency_histogram),
            policy_apply_errors: Counter::default(),
            policy_objects: Family::default(),
            policy_invalid: Gauge::default(),
            nft_rules: Gauge::default(),
            nft_sets: Gauge::default(),
            claims: Family::default(),
            watch_up: Family::default(),
            datastore_up: Gauge::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "reconcile_duration_seconds",
            "Time to converge routes, devices and files to the desired state",
            m.reconcile_seconds.clone(),
        );
        r.register(
            "reconcile_errors",
            "Reconciles that left a problem (kernel or plan errors)",
            m.reconcile_errors.clone(),
        );
        r.register(
            "peers",
            "Other nodes whose pod subnets are routed",
            m.peers.clone(),
        );
        r.register(
            "pods_wired",
            "Pod attachments holding an address on this node",
            m.pods_wired.clone(),
        );
        r.register(
            "ipam_addresses_used",
            "Addresses reserved per IPAM range",
            m.ipam_used.clone(),
        );
        r.register(
            "ipam_addresses_capacity",
            "Addresses an IPAM range can hand out",
            m.ipam_capacity.clone(),
        );
        r.register(
            "policy_apply_duration_seconds",
            "Time to apply the NetworkPolicy ruleset, by mode (full table or element delta)",
            m.policy_apply_seconds.clone(),
        );
        r.register(
            "policy_apply_errors",
            "NetworkPolicy applies the kernel refused",
            m.policy_apply_errors.clone(),
        );
        r.register(
            "policy_objects",
            "Objects known to the policy engine, by kind",
            m.policy_objects.clone(),
        );
        r.register(
            "policy_invalid_objects",
            "Policy objects skipped because they are invalid",
            m.policy_invalid.clone(),
        );
        r.register(
            "nft_rules",
            "Rules in weft's NetworkPolicy table",
            m.nft_rules.clone(),
        );
        r.register(
            "nft_sets",
            "Sets and maps in weft's NetworkPolicy table",
            m.nft_sets.clone(),
        );
        r.register(
            "policy_claims",
            "Pod claims from the CNI plugin, by result",
            m.claims.clone(),
        );
        r.register(
            "datastore_watch_up",
            "1 while the watch of a datastore kind is established",
            m.watch_up.clone(),
        );
        r.register(
            "datastore_up",
            "1 while the datastore answers",
            m.datastore_up.clone(),
        );
        Metrics { registry, ..m }
    }

    /// One reconcile of the routing loop.
    pub fn observe_reconcile(&self, seconds: f64, ok: bool) {
        self.reconcile_seconds.observe(seconds);
        if !ok {
            self.reconcile_errors.inc();
        }
    }

    /// Peers with routes.
    pub fn set_peers(&self, n: usize) {
        self.peers.set(gauge_value(n));
    }

    /// IPAM usage of this node's ranges; `pods_wired` is the sum of `used`.
    pub fn set_ipam(&self, ranges: &[RangeUsage]) {
        self.ipam_used.clear();
        self.ipam_capacity.clear();
        let mut wired = 0u64;
        for r in ranges {
            let label = vec![("range", r.range.clone())];
            self.ipam_used
                .get_or_create(&label)
                .set(gauge_value(r.used));
            self.ipam_capacity
                .get_or_create(&label)
                .set(gauge_value(r.capacity));
            wired = wired.saturating_add(r.used);
        }
        self.pods_wired.set(gauge_value(wired));
    }

    /// One apply of the policy table; `rules`/`sets` describe what is loaded afterwards.
    pub fn observe_policy_apply(&self, mode: ApplyMode, seconds: f64, ok: bool) {
        let mode = match mode {
            ApplyMode::Full => "full",
            ApplyMode::Delta => "delta",
        };
        self.policy_apply_seconds
            .get_or_create(&vec![("mode", mode.to_string())])
            .observe(seconds);
        if !ok {
            self.policy_apply_errors.inc();
        }
    }

    /// Size of the loaded policy table.
    pub fn set_policy_table(&self, rules: usize, sets: usize) {
        self.nft_rules.set(gauge_value(rules));
        self.nft_sets.set(gauge_value(sets));
    }

    /// Objects the policy engine knows (`kind` = `pods`, `namespaces`, `networkpolicies`),
    /// and how many policies were skipped as invalid.
    pub fn set_policy_objects(&self, kind: &str, n: usize) {
        self.policy_objects
            .get_or_create(&vec![("kind", kind.to_string())])
            .set(gauge_value(n));
    }

    /// Policies skipped because they are invalid.
    pub fn set_policy_invalid(&self, n: usize) {
        self.policy_invalid.set(gauge_value(n));
    }

    /// One claim answered.
    pub fn count_claim(&self, result: ClaimResult) {
        let result = match result {
            ClaimResult::Applied => "applied",
            ClaimResult::Quarantined => "quarantined",
            ClaimResult::Failed => "failed",
        };
        self.claims
            .get_or_create(&vec![("result", result.to_string())])
            .inc();
    }

    /// Whether the watch of `kind` is established.
    pub fn set_watch_up(&self, kind: &str, up: bool) {
        self.watch_up
            .get_or_create(&vec![("kind", kind.to_string())])
            .set(i64::from(up));
    }

    /// Whether the datastore answers.
    pub fn set_datastore_up(&self, up: bool) {
        self.datastore_up.set(if up { 1.0 } else { 0.0 });
    }

    /// The OpenMetrics text exposition of everything.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(e) = encode(&mut text, &self.registry) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        text
    }
}

fn gauge_value<T: TryInto<i64>>(n: T) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_values() {
        let m = Metrics::new();
        m.observe_reconcile(0.004, false);
        m.set_peers(2);
        m.set_ipam(&[RangeUsage {
            range: "10.244.1.0/24".into(),
            used: 7,
            capacity: 253,
        }]);
        m.observe_policy_apply(ApplyMode::Delta, 0.002, true);
        m.set_policy_table(40, 12);
        m.count_claim(ClaimResult::Quarantined);
        m.set_watch_up("pods", true);
        m.set_datastore_up(true);
        let text = m.render();
        for line in [
            "weft_reconcile_errors_total 1",
            "weft_peers 2",
            "weft_pods_wired 7",
            "weft_ipam_addresses_used{range=\"10.244.1.0/24\"} 7",
            "weft_ipam_addresses_capacity{range=\"10.244.1.0/24\"} 253",
            "weft_policy_apply_duration_seconds_count{mode=\"delta\"} 1",
            "weft_nft_rules 40",
            "weft_policy_claims_total{result=\"quarantined\"} 1",
            "weft_datastore_watch_up{kind=\"pods\"} 1",
            "weft_datastore_up 1.0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
