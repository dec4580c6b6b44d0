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
        self.matches_with(|key| labels.get(key).map(String::as_str))
    }

    /// [`LabelSelector::matches`] over a lookup function, so callers can overlay labels
    /// (e.g. a namespace's automatic name label) without copying the map.
    pub fn matches_with<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        let labels_ok = self
            .match_labels
            .iter()
            .all(|(k, v)| label(k) == Some(v.as_str()));
        labels_ok
            && self.match_expressions.iter().all(|req| {
                let value = label(&req.key);
                match &req.operator {
                    Operator::In => value.is_some_and(|v| req.values.iter().any(|x| x == v)),
                    Operator::NotIn => value.is_none_or(|v| !req.values.iter().any(|x| x == v)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, operator: Operator, values: &[&str]) -> LabelSelector {
        LabelSelector {
            match_expressions: vec![LabelSelectorRequirement {
                key: key.into(),
                operator,
                values: values.iter().map(|v| v.to_string()).collect(),
            }],
            ..LabelSelector::default()
        }
    }

    #[test]
    fn empty_selects_all() {
        assert!(LabelSelector::default().matches(&Labels::new()));
        assert!(LabelSelector::default().is_empty());
    }

    #[test]
    fn operators() {
        let l = labels(&[("app", "web"), ("tier", "")]);
        assert!(req("app", Operator::In, &["web", "db"]).matches(&l));
        assert!(!req("app", Operator::In, &["db"]).matches(&l));
        assert!(!req("missing", Operator::In, &["x"]).matches(&l));
        assert!(req("app", Operator::NotIn, &["db"]).matches(&l));
        assert!(
            req("missing", Operator::NotIn, &["db"]).matches(&l),
            "NotIn matches absent keys"
        );
        assert!(!req("app", Operator::NotIn, &["web"]).matches(&l));
        assert!(
            req("tier", Operator::Exists, &[]).matches(&l),
            "an empty value still exists"
        );
        assert!(req("missing", Operator::DoesNotExist, &[]).matches(&l));
        assert!(!req("app", Operator::DoesNotExist, &[]).matches(&l));
        assert!(!req("app", Operator::Unsupported("Equals".into()), &[]).matches(&l));
    }

    #[test]
    fn match_labels_are_anded_with_expressions() {
        let mut s = req("app", Operator::Exists, &[]);
        s.match_labels = labels(&[("tier", "db")]);
        assert!(!s.matches(&labels(&[("app", "x"), ("tier", "web")])));
        assert!(s.matches(&labels(&[("app", "x"), ("tier", "db")])));
    }
}
