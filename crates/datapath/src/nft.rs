//! nftables through the `nft` binary: a whole script is one atomic transaction, so a
//! rejected script leaves the previous ruleset untouched.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::error::{DatapathError, Result};
use crate::netns::{NetnsFd, run_in_netns};

/// Longest identifier accepted by [`validate_ident`] (nft's NFT_NAME_MAXLEN is 256).
pub const MAX_IDENT_LEN: usize = 64;

/// Applies `script` with `nft -f -` in `netns` (or the calling thread's namespace).
///
/// On rejection the error carries nft's stderr.
pub fn apply_nft(script: &str, netns: Option<&NetnsFd>) -> Result<()> {
    let output = run_nft(&["-f", "-"], Some(script), netns)?;
    check(&output)
}

/// Runs `nft -j <args>` (e.g. `["list", "table", "inet", "weft"]`) and parses the JSON.
pub fn nft_list_json(args: &[&str], netns: Option<&NetnsFd>) -> Result<serde_json::Value> {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    let output = run_nft(&full, None, netns)?;
    check(&output)?;
    serde_json::from_slice(&output.stdout).map_err(|e| DatapathError::Nft {
        stderr: format!("unparsable JSON from nft: {e}"),
    })
}

/// Checks a name for tables, chains, sets and maps: `[A-Za-z][A-Za-z0-9_]*`.
///
/// Such names can still collide with nft keywords (a chain named `fwd` fails to parse), so
/// weft always builds them with a prefix; see [`prefixed_ident`].
pub fn validate_ident(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_IDENT_LEN;
    if ok {
        Ok(())
    } else {
        Err(DatapathError::Invalid(format!(
            "bad nft identifier {name:?}"
        )))
    }
}

/// Builds `<prefix>_<name>` and validates it; the prefix keeps keywords out of names.
pub fn prefixed_ident(prefix: &str, name: &str) -> Result<String> {
    let ident = format!("{prefix}_{name}");
    validate_ident(prefix)?;
    validate_ident(&ident)?;
    Ok(ident)
}

/// Quotes free text (e.g. a comment) as an nft string literal; rejects characters nft
/// strings cannot carry.
pub fn quote(text: &str) -> Result<String> {
    let bad = text
        .chars()
        .any(|c| c == '"' || c == '\\' || c.is_control());
    if bad || text.len() > 128 {
        return Err(DatapathError::Invalid(format!(
            "cannot quote {text:?} for nft"
        )));
    }
    Ok(format!("\"{text}\""))
}

fn run_nft(args: &[&str], stdin: Option<&str>, netns: Option<&NetnsFd>) -> Result<Output> {
    let spawn = || -> Result<Output> {
        let mut child = Command::new("nft")
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| DatapathError::io("spawn nft", e))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // nft reads the whole script before parsing; dropping the pipe ends the input.
            pipe.write_all(text.as_bytes())
                .map_err(|e| DatapathError::io("write script to nft", e))?;
        }
        child
            .wait_with_output()
            .map_err(|e| DatapathError::io("wait for nft", e))
    };
    // A child inherits the network namespace of the thread that spawns it.
    match netns {
        Some(netns) => run_in_netns(netns, spawn)?,
        None => spawn(),
    }
}

fn check(output: &Output) -> Result<()> {
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
    Err(DatapathError::Nft {
        stderr: if stderr.is_empty() {
            format!("nft exited with {}", output.status)
        } else {
            stderr
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(validate_ident("weft_fwd").is_ok());
        for bad in ["", "1abc", "a-b", "a b", "a;b", "a\"b"] {
            assert!(validate_ident(bad).is_err(), "{bad:?}");
        }
        assert_eq!(prefixed_ident("weft", "fwd").unwrap(), "weft_fwd");
        assert!(prefixed_ident("weft", "x y").is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("pod ns1/a").unwrap(), "\"pod ns1/a\"");
        assert!(quote("a\"b").is_err());
        assert!(quote("a\nb").is_err());
    }
}
