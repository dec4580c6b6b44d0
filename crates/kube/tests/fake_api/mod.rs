//! A scripted Kubernetes API server on 127.0.0.1 (HTTP/1.1, one request per connection)
//! replaying recorded API responses, so a real `kube::Client` and kube-rs watcher run
//! against it unchanged.
//!
//! Routes are (method, path, watch?) with a queue of replies each; the last reply of a
//! queue repeats. Watch replies are chunked streams of newline-delimited WatchEvents that
//! end cleanly, are cut off mid-event (a dropped connection), or stay open.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: Option<String>,
    pub body: String,
}

impl Recorded {
    pub fn is_watch(&self) -> bool {
        self.query
            .split('&')
            .any(|p| p == "watch=true" || p == "watch=1")
    }

    /// A query parameter's (still URL-encoded) value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
    }
}

/// How a watch stream ends after its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Terminating chunk: the API server's watch timeout.
    Close,
    /// Half an event, then the socket is closed: a dropped connection.
    Drop,
    /// Stays open until the client goes away.
    Hang,
}

/// A scripted reply.
#[derive(Debug, Clone)]
pub enum Reply {
    Json { status: u16, body: String },
    Watch { events: Vec<String>, end: End },
}

impl Reply {
    pub fn ok(body: impl Into<String>) -> Reply {
        Reply::Json {
            status: 200,
            body: body.into(),
        }
    }

    /// A watch stream from newline-delimited events (blank lines ignored).
    pub fn watch(lines: &str, end: End) -> Reply {
        Reply::Watch {
            events: lines
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
            end,
        }
    }

    pub fn not_found(kind: &str, name: &str) -> Reply {
        Reply::Json {
            status: 404,
            body: format!(
                r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":"{kind} \"{name}\" not found","reason":"NotFound","details":{{"name":"{name}","kind":"{kind}"}},"code":404}}"#
            ),
        }
    }
}

type RouteKey = (String, String, bool);

#[derive(Default)]
struct Script {
    routes: HashMap<RouteKey, VecDeque<Reply>>,
    requests: Vec<Recorded>,
}

/// The running server; stops with the test's runtime.
#[derive(Clone)]
pub struct FakeApi {
    pub addr: SocketAddr,
    script: Arc<Mutex<Script>>,
}

impl FakeApi {
    pub async fn start() -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(Mutex::new(Script::default()));
        let shared = Arc::clone(&script);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, Arc::clone(&shared)));
            }
        });
        FakeApi { addr, script }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube client with the real client stack pointed at this server.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url().parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    /// Queues replies for `method path` (watch requests are a separate route).
    pub fn route(&self, method: &str, path: &str, watch: bool, replies: Vec<Reply>) {
        let mut script = self.script.lock().unwrap();
        script
            .routes
            .entry((method.into(), path.into(), watch))
            .or_default()
            .extend(replies);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.script.lock().unwrap().requests.clone()
    }

    pub fn count(&self, method: &str, path: &str, watch: bool) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path == path && r.is_watch() == watch)
            .count()
    }
}

fn next_reply(script: &Mutex<Script>, request: Recorded) -> Reply {
    let mut script = script.lock().unwrap();
    let key = (
        request.method.clone(),
        request.path.clone(),
        request.is_watch(),
    );
    script.requests.push(request);
    match script.routes.get_mut(&key) {
        Some(queue) if queue.len() > 1 => queue.pop_front().unwrap(),
        Some(queue) if !queue.is_empty() => queue.front().unwrap().clone(),
        _ => Reply::not_found("route", &key.1),
    }
}

async fn read_request(socket: &mut TcpStream) -> Option<Recorded> {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let mut content_length = 0;
    let mut content_type = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => content_length = value.trim().parse().ok()?,
            "content-type" => content_type = Some(value.trim().to_string()),
            _ => {}
        }
    }
    let mut body = buf[head_end..].to_vec();
    while body.len() < content_length {
        let mut chunk = vec![0u8; content_length - body.len()];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    Some(Recorded {
        method,
        path,
        query,
        content_type,
        body: String::from_utf8_lossy(&body).to_string(),
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        404 => "Not Found",
        409 => "Conflict",
        410 => "Gone",
        _ => "Error",
    }
}

async fn serve(mut socket: TcpStream, script: Arc<Mutex<Script>>) {
    let Some(request) = read_request(&mut socket).await else {
        return;
    };
    match next_reply(&script, request) {
        Reply::Json { status, body } => {
            let response = format!(
                "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                reason(status),
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
        Reply::Watch { events, end } => stream_watch(socket, events, end).await,
    }
}

async fn write_chunk(socket: &mut TcpStream, data: &str) -> std::io::Result<()> {
    socket
        .write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())
        .await?;
    socket.flush().await
}

async fn stream_watch(mut socket: TcpStream, events: Vec<String>, end: End) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    if socket.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    for event in &events {
        if write_chunk(&mut socket, &format!("{event}\n"))
            .await
            .is_err()
        {
            return;
        }
        // One event per read on the client side, as from a real API server.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match end {
        End::Close => {
            let _ = socket.write_all(b"0\r\n\r\n").await;
            let _ = socket.shutdown().await;
        }
        End::Drop => {
            let _ = write_chunk(&mut socket, r#"{"type":"MODIFIED","object":{"kind":"#).await;
            // Dropping the socket without the terminating chunk.
        }
        End::Hang => {
            let mut sink = [0u8; 512];
            while let Ok(n) = socket.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        }
    }
}
