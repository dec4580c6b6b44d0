//! The policy claim (docs: /work/policy-contract.md, "the claim socket"): after IPAM chose the
//! pod's addresses and before any interface exists, the plugin tells `weftd` which pod owns
//! them and waits until `weftd` has the pod's rules in the kernel. Without that wait a new pod
//! would be reachable, unfiltered, between ADD and the agent's next policy apply.
//!
//! The plugin is a short-lived synchronous process: plain `std` sockets with a deadline.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use weft_proto::{CniError, codes};

use crate::error::PluginError;

/// Default for `policyTimeoutMs`.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

/// An answer longer than this is not a claim answer.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Where and how long to claim (from the plugin configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimTarget {
    /// `policySocket`: weftd's unix stream socket.
    pub socket: PathBuf,
    /// `policyTimeoutMs`: the whole exchange (connect, send, answer) must fit in it.
    pub timeout: Duration,
}

/// The pod a claim is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim<'a> {
    /// `K8S_POD_NAMESPACE`.
    pub namespace: &'a str,
    /// `K8S_POD_NAME`.
    pub name: &'a str,
    /// `CNI_CONTAINERID`.
    pub container_id: &'a str,
    /// The addresses IPAM gave the pod.
    pub ips: Vec<IpAddr>,
}

/// Why a claim failed (always code 11 for the runtime: weftd may be back soon).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClaimError {
    /// Connecting, sending or receiving failed.
    #[error("{0}")]
    Io(String),
    /// No complete answer before the deadline.
    #[error("no answer within {0} ms")]
    Timeout(u128),
    /// The answer was not `{"ok":...}` JSON.
    #[error("unreadable answer {0:?}")]
    BadAnswer(String),
    /// weftd refused the claim.
    #[error("refused: {0}")]
    Refused(String),
}

/// The request line: one JSON object and a newline.
pub fn request_line(claim: &Claim<'_>) -> Vec<u8> {
    let ips: Vec<String> = claim.ips.iter().map(ToString::to_string).collect();
    let mut line = serde_json::json!({
        "op": "claim",
        "namespace": claim.namespace,
        "name": claim.name,
        "containerId": claim.container_id,
        "ips": ips,
    })
    .to_string()
    .into_bytes();
    line.push(b'\n');
    line
}

#[derive(Deserialize)]
struct Answer {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
}

/// Interprets the answer line (without its newline).
pub fn parse_answer(line: &[u8]) -> Result<(), ClaimError> {
    let answer: Answer = serde_json::from_slice(line)
        .map_err(|_| ClaimError::BadAnswer(String::from_utf8_lossy(line).into_owned()))?;
    if answer.ok {
        Ok(())
    } else {
        Err(ClaimError::Refused(
            answer.error.unwrap_or_else(|| "no reason given".into()),
        ))
    }
}

/// Sends the claim and waits for weftd's answer.
pub fn send(target: &ClaimTarget, claim: &Claim<'_>) -> Result<(), ClaimError> {
    let deadline = Instant::now() + target.timeout;
    let mut stream = connect_before(&target.socket, deadline, target.timeout)?;
    let io = |e: std::io::Error| ClaimError::Io(e.to_string());
    stream
        .set_write_timeout(Some(remaining(deadline, target.timeout)?))
        .map_err(io)?;
    stream
        .write_all(&request_line(claim))
        .map_err(|e| timeout_or_io(e, target.timeout))?;
    let line = read_line_before(&mut stream, deadline, target.timeout)?;
    parse_answer(&line)
}

/// The claim failure as the runtime sees it: code 11, naming weftd and the socket.
pub fn to_plugin_error(target: &ClaimTarget, e: &ClaimError) -> PluginError {
    PluginError::Cni(CniError::new(
        codes::TRY_AGAIN_LATER,
        format!(
            "policy claim to weftd at {} failed: {e} (is weftd running on this node?)",
            target.socket.display()
        ),
    ))
}

fn remaining(deadline: Instant, total: Duration) -> Result<Duration, ClaimError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(ClaimError::Timeout(total.as_millis()));
    }
    Ok(left)
}

fn timeout_or_io(e: std::io::Error, total: Duration) -> ClaimError {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            ClaimError::Timeout(total.as_millis())
        }
        _ => ClaimError::Io(e.to_string()),
    }
}

/// `connect` on a unix socket blocks while the listener's backlog is full (a stuck weftd),
/// and std has no connect timeout: it runs on a helper thread the deadline can abandon.
fn connect_before(
    path: &Path,
    deadline: Instant,
    total: Duration,
) -> Result<UnixStream, ClaimError> {
    let (tx, rx) = mpsc::channel();
    let owned = path.to_path_buf();
    std::thread::Builder::new()
        .name("policy-connect".into())
        .spawn(move || {
            let _ = tx.send(UnixStream::connect(owned));
        })
        .map_err(|e| ClaimError::Io(format!("spawn connect thread: {e}")))?;
    match rx.recv_timeout(remaining(deadline, total)?) {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(ClaimError::Io(format!("connect: {e}"))),
        Err(_) => Err(ClaimError::Timeout(total.as_millis())),
    }
}

fn read_line_before(
    stream: &mut UnixStream,
    deadline: Instant,
    total: Duration,
) -> Result<Vec<u8>, ClaimError> {
    let mut line = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        stream
            .set_read_timeout(Some(remaining(deadline, total)?))
            .map_err(|e| ClaimError::Io(e.to_string()))?;
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(timeout_or_io(e, total)),
        };
        let got = chunk.get(..n).unwrap_or_default();
        if let Some(end) = got.iter().position(|b| *b == b'\n') {
            line.extend_from_slice(got.get(..end).unwrap_or_default());
            return Ok(line);
        }
        line.extend_from_slice(got);
        if n == 0 {
            return Err(ClaimError::Io(if line.is_empty() {
                "weftd closed the connection without answering".into()
            } else {
                format!(
                    "answer not terminated by a newline: {:?}",
                    String::from_utf8_lossy(&line)
                )
            }));
        }
        if line.len() > MAX_ANSWER_BYTES {
            return Err(ClaimError::BadAnswer(format!(
                "longer than {MAX_ANSWER_BYTES} bytes"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn request_is_one_json_line_in_the_contract_shape() {
        let line = request_line(&Claim {
            namespace: "ns",
            name: "a",
            container_id: "c1",
            ips: vec!["10.244.1.5".parse().unwrap(), "fd00::5".parse().unwrap()],
        });
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"op":"claim","namespace":"ns","name":"a","containerId":"c1",
                "ips":["10.244.1.5","fd00::5"]})
        );
    }

    #[test]
    fn answers() {
        assert_eq!(parse_answer(br#"{"ok":true}"#), Ok(()));
        assert_eq!(
            parse_answer(br#"{"ok":false,"error":"no ruleset"}"#),
            Err(ClaimError::Refused("no ruleset".into()))
        );
        assert!(matches!(
            parse_answer(br#"{"ok":false}"#),
            Err(ClaimError::Refused(_))
        ));
        assert!(matches!(
            parse_answer(b"hello"),
            Err(ClaimError::BadAnswer(_))
        ));
    }

    #[test]
    fn error_is_code_11_naming_weftd_and_the_socket() {
        let target = ClaimTarget {
            socket: "/run/weft/policy.sock".into(),
            timeout: Duration::from_millis(5),
        };
        let e = to_plugin_error(&target, &ClaimError::Timeout(5)).into_cni();
        assert_eq!(e.code, 11);
        assert!(e.msg.contains("weftd") && e.msg.contains("/run/weft/policy.sock"));
    }
}
