//! DNS settings read from a `resolv.conf`-style file (host-local's `resolvConf` key).

use serde::Serialize;

/// DNS data for the CNI result, field names as in the spec's `dns` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Dns {
    /// `nameserver` lines, in file order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// The last `domain` line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Words of the `search` lines.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Words of the `options` lines.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// Parses resolv.conf text. Unknown keywords and comments (`#`, `;`) are ignored, as
    /// host-local does.
    pub fn parse_resolv_conf(text: &str) -> Dns {
        let mut dns = Dns::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword {
                "nameserver" => dns.nameservers.extend(words.next().map(str::to_owned)),
                "domain" => dns.domain = words.next().map(str::to_owned),
                "search" => dns.search.extend(words.map(str::to_owned)),
                "options" => dns.options.extend(words.map(str::to_owned)),
                _ => {}
            }
        }
        dns
    }

    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        self == &Dns::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_keywords() {
        let text = "# comment\nnameserver 10.0.0.10\nnameserver 2001:db8::53\n\
                    domain example.com\nsearch a.example b.example\noptions ndots:5 rotate\n\
                    sortlist 10.0.0.0\n";
        let dns = Dns::parse_resolv_conf(text);
        assert_eq!(dns.nameservers, vec!["10.0.0.10", "2001:db8::53"]);
        assert_eq!(dns.domain.as_deref(), Some("example.com"));
        assert_eq!(dns.search, vec!["a.example", "b.example"]);
        assert_eq!(dns.options, vec!["ndots:5", "rotate"]);
        assert!(Dns::parse_resolv_conf("# nothing\n").is_empty());
    }
}
