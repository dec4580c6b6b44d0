//! Label selector matching (`metav1.LabelSelector` semantics).

use std::collections::BTreeMap;

use crate::model::{LabelSelector, Operator};

/// Labels of an object.
pub type Labels = BTreeMap<String, String>;

impl LabelSelector {
    /// Does this selector select an object with `labels`? Requirements are ANDed; `{}`
    /// selects everything. `NotIn` and `DoesNotExist` match objects without the key, as in
    /// `k8s.io/apimachinery/pkg/labels`. An unsupported operator matches nothing (validation
    /// rejects it before it can get here).
    pub fn matches(&self, labels: &Labels) -> bool {
        let labels_ok = self
            .match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v));
        labels_ok
            && self.match_expressions.iter().all(|req| {
                let value = labels.get(&req.key);
                match &req.operator {
                    Operator::In => value.is_some_and(|v| req.values.contains(v)),
                    Operator::NotIn => value.is_none_or(|v| !req.values.contains(v)),
                    Operator::Exists => value.is_some(),
                    Operator::DoesNotExist => value.is_none(),
                    Operator::Unsupported(_) => false,
                }
            })
    }

    /// True for `{}` (selects all objects).
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }
}
