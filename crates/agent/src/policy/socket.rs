//! The claim socket `<run-dir>/policy.sock`: one JSON line in, one JSON line out per
//! connection. The answer waits for the policy task, which sends it only once the rules
//! covering the claimed addresses are in the kernel.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use super::Msg;
use super::claims::{Claim, parse_request, reply_line};

/// A request line longer than this is refused (a claim is a few hundred bytes).
const MAX_REQUEST: u64 = 64 * 1024;
/// A client that connects but sends nothing is dropped after this.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds the socket, replacing a stale one left by an earlier weftd, mode 0600: a claim
/// decides what a pod may reach, so only root may make one.
pub fn bind(path: &Path) -> Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(path = %path.display(), "removed stale policy socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("remove {}", path.display())),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let listener = UnixListener::bind(path).with_context(|| format!("bind {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(listener)
}

/// Accepts connections until the task is dropped; each is served on its own task so a
/// slow client never holds up another.
pub async fn serve(listener: UnixListener, tx: mpsc::Sender<Msg>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(handle(stream, tx.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "policy socket accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(stream: UnixStream, tx: mpsc::Sender<Msg>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read.take(MAX_REQUEST));
    let mut line = String::new();
    let result = match tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line)).await {
        Ok(Ok(_)) => match parse_request(&line) {
            Ok(claim) => submit(claim, &tx).await,
            Err(e) => Err(e),
        },
        Ok(Err(e)) => Err(format!("read request: {e}")),
        Err(_) => Err(format!("no request within {READ_TIMEOUT:?}")),
    };
    if let Err(e) = &result {
        tracing::warn!(error = %e, "claim refused");
    }
    if let Err(e) = write.write_all(reply_line(&result).as_bytes()).await {
        tracing::warn!(error = %e, "cannot answer a claim (client gone)");
    }
}

async fn submit(claim: Claim, tx: &mpsc::Sender<Msg>) -> Result<(), String> {
    tracing::info!(pod = %claim.pod_key(), container = %claim.container_id, ips = ?claim.ips, "claim");
    let (reply, answer) = oneshot::channel();
    tx.send(Msg::Claim(claim, reply))
        .await
        .map_err(|_| "weftd's policy task stopped".to_string())?;
    answer
        .await
        .map_err(|_| "weftd dropped the claim".to_string())?
}
