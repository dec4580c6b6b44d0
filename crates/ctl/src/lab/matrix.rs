//! The connectivity matrix: every source (pods, then nodes) to every pod, probed in
//! parallel on a few threads, rendered as a table and as JSON.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use super::probe::{ProbeResult, probe};
use super::state::Proto;

/// Probes running at once.
pub const PARALLEL_PROBES: usize = 8;

/// Something probes start from.
#[derive(Debug, Clone)]
pub struct Source {
    /// `namespace/pod` or `node/NAME`.
    pub label: String,
    /// Path of its network namespace.
    pub netns: PathBuf,
}

/// Something probed.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// `namespace/pod`.
    pub label: String,
    /// Address and port probed.
    pub addr: SocketAddr,
    /// Protocol probed.
    pub protocol: Proto,
}

/// All results; `cells[source][target]`.
#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    /// Row labels.
    pub sources: Vec<String>,
    /// Columns.
    pub targets: Vec<Target>,
    /// Results by row, then column.
    pub cells: Vec<Vec<ProbeResult>>,
}

impl Matrix {
    /// Number of allowed probes and of probes in total.
    pub fn allowed_count(&self) -> (usize, usize) {
        let all = self.cells.iter().flatten();
        let total = all.clone().count();
        (all.filter(|r| r.allowed).count(), total)
    }

    /// Allowed probes where the receiver saw another source address than the sender's.
    pub fn nat_count(&self) -> usize {
        self.cells
            .iter()
            .flatten()
            .filter(|r| r.allowed && r.seen.is_some() && !r.no_nat())
            .count()
    }

    /// Everything allowed, and no receiver saw a translated source.
    pub fn all_allowed_without_nat(&self) -> bool {
        let (allowed, total) = self.allowed_count();
        allowed == total && self.nat_count() == 0
    }
}

/// Runs every probe, [`PARALLEL_PROBES`] at a time.
pub fn run_matrix(sources: &[Source], targets: &[Target]) -> Matrix {
    let jobs: Vec<(usize, usize)> = (0..sources.len())
        .flat_map(|s| (0..targets.len()).map(move |t| (s, t)))
        .collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<ProbeResult>>> = Mutex::new(vec![None; jobs.len()]);
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_PROBES.min(jobs.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(s, t)) = jobs.get(i) else { break };
                    let (Some(source), Some(target)) = (sources.get(s), targets.get(t)) else {
                        break;
                    };
                    let result =
                        probe(&source.netns, target.addr, target.protocol).unwrap_or_else(|e| {
                            ProbeResult {
                                allowed: false,
                                source: None,
                                target: target.addr,
                                seen: None,
                                error: Some(format!("{e:#}")),
                            }
                        });
                    if let Ok(mut all) = results.lock()
                        && let Some(slot) = all.get_mut(i)
                    {
                        *slot = Some(result);
                    }
                }
            });
        }
    });
    let mut flat = results.into_inner().unwrap_or_default().into_iter();
    let cells = sources
        .iter()
        .map(|_| {
            targets
                .iter()
                .map(|t| {
                    flat.next().flatten().unwrap_or_else(|| ProbeResult {
                        allowed: false,
                        source: None,
                        target: t.addr,
                        seen: None,
                        error: Some("not probed".into()),
                    })
                })
                .collect()
        })
        .collect();
    Matrix {
        sources: sources.iter().map(|s| s.label.clone()).collect(),
        targets: targets.to_vec(),
        cells,
    }
}

/// One cell: `.` allowed, `X` denied, `N` allowed but the receiver saw a translated source.
pub fn cell_char(result: &ProbeResult) -> char {
    if !result.allowed {
        'X'
    } else if result.seen.is_some() && !result.no_nat() {
        'N'
    } else {
        '.'
    }
}

/// The table: rows = sources, columns = targets numbered 1.., then a legend.
pub fn render(matrix: &Matrix) -> String {
    let width = matrix
        .sources
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(0)
        .max("from \\ to".len());
    let col = matrix.targets.len().to_string().len().max(1);
    let mut out = format!("{:<width$} ", "from \\ to");
    for i in 1..=matrix.targets.len() {
        out.push_str(&format!(" {i:>col$}"));
    }
    out.push('\n');
    for (label, row) in matrix.sources.iter().zip(&matrix.cells) {
        out.push_str(&format!("{label:<width$} "));
        for cell in row {
            out.push_str(&format!(" {:>col$}", cell_char(cell)));
        }
        out.push('\n');
    }
    out.push('\n');
    for (i, t) in matrix.targets.iter().enumerate() {
        out.push_str(&format!(
            "{:>col$} = {} {}/{}\n",
            i + 1,
            t.label,
            t.addr,
            t.protocol
        ));
    }
    let (allowed, total) = matrix.allowed_count();
    out.push_str(&format!(
        "{allowed}/{total} allowed; receiver saw a translated source on {} (legend: . allowed, X denied, N NAT)\n",
        matrix.nat_count()
    ));
    out
}

/// JSON: `{"targets":[..],"rows":[{"from":..,"results":[{"to":..,"allowed":..,..}]}]}`.
pub fn to_json(matrix: &Matrix) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = matrix
        .sources
        .iter()
        .zip(&matrix.cells)
        .map(|(from, row)| {
            let results: Vec<serde_json::Value> = row
                .iter()
                .zip(&matrix.targets)
                .map(|(r, t)| {
                    serde_json::json!({
                        "to": t.label,
                        "allowed": r.allowed,
                        "source": r.source,
                        "target": r.target,
                        "protocol": t.protocol,
                        "seen": r.seen,
                        "noNat": r.no_nat(),
                        "error": r.error,
                    })
                })
                .collect();
            serde_json::json!({ "from": from, "results": results })
        })
        .collect();
    let (allowed, total) = matrix.allowed_count();
    serde_json::json!({
        "targets": matrix.targets,
        "rows": rows,
        "allowed": allowed,
        "total": total,
        "natSeen": matrix.nat_count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(allowed: bool, source: &str, seen: Option<&str>) -> ProbeResult {
        ProbeResult {
            allowed,
            source: Some(source.parse().unwrap()),
            target: "10.244.2.2:80".parse().unwrap(),
            seen: seen.map(|s| s.parse().unwrap()),
            error: None,
        }
    }

    fn sample() -> Matrix {
        Matrix {
            sources: vec!["default/a".into(), "node/node1".into()],
            targets: vec![
                Target {
                    label: "default/a".into(),
                    addr: "10.244.1.2:80".parse().unwrap(),
                    protocol: Proto::Tcp,
                },
                Target {
                    label: "default/b".into(),
                    addr: "10.244.2.2:80".parse().unwrap(),
                    protocol: Proto::Tcp,
                },
            ],
            cells: vec![
                vec![
                    result(true, "10.244.1.2", Some("10.244.1.2")),
                    result(false, "10.244.1.2", None),
                ],
                vec![
                    result(true, "10.244.1.1", Some("10.244.1.1")),
                    result(true, "10.244.1.1", Some("198.18.0.11")),
                ],
            ],
        }
    }

    #[test]
    fn renders_rows_columns_and_legend() {
        let text = render(&sample());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "from \\ to   1 2");
        assert_eq!(lines[1], "default/a   . X");
        assert_eq!(lines[2], "node/node1  . N");
        assert!(text.contains("1 = default/a 10.244.1.2:80/TCP"));
        assert!(text.contains("3/4 allowed"), "{text}");
        assert!(text.contains("translated source on 1"), "{text}");
        assert!(!sample().all_allowed_without_nat());
    }

    #[test]
    fn json_has_every_cell() {
        let json = to_json(&sample());
        assert_eq!(json["rows"][0]["results"][1]["allowed"], false);
        assert_eq!(json["rows"][1]["results"][1]["noNat"], false);
        assert_eq!(json["rows"][1]["results"][0]["seen"], "10.244.1.1");
        assert_eq!(json["total"], 4);
        assert_eq!(json["natSeen"], 1);
    }
}
