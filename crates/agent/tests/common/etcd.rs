//! etcd for tests, run inside the fabric namespace on 198.18.0.1:2379 (where the lab puts
//! it), with its data dir in the cluster's temp dir. Killed on drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use weft_testns::TestNs;

pub const ETCD: &str = "/usr/bin/etcd";
pub const CLIENT_URL: &str = "http://198.18.0.1:2379";

pub struct Etcd {
    child: Option<Child>,
    dir: PathBuf,
}

impl Etcd {
    /// Starts etcd in `fabric` (whose bridge holds 198.18.0.1) and waits for health.
    pub fn start(fabric: &TestNs, dir: PathBuf) -> Etcd {
        assert!(
            std::path::Path::new(ETCD).exists(),
            "these tests need etcd: apt-get install etcd-server"
        );
        let mut etcd = Etcd { child: None, dir };
        etcd.spawn(fabric);
        etcd
    }

    fn spawn(&mut self, fabric: &TestNs) {
        std::fs::create_dir_all(&self.dir).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("etcd.log"))
            .unwrap();
        let peer = "http://127.0.0.1:2380";
        let data = self.dir.join("data");
        let child = fabric.run(|| {
            Command::new(ETCD)
                .arg("--name=weft-agent-test")
                .arg(format!("--data-dir={}", data.display()))
                .arg(format!("--listen-client-urls={CLIENT_URL}"))
                .arg(format!("--advertise-client-urls={CLIENT_URL}"))
                .arg(format!("--listen-peer-urls={peer}"))
                .arg(format!("--initial-advertise-peer-urls={peer}"))
                .arg(format!("--initial-cluster=weft-agent-test={peer}"))
                .arg("--logger=zap")
                .arg("--log-level=warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap()
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !fabric.run(healthy) {
            assert!(
                Instant::now() < deadline,
                "etcd not healthy:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default()
    }

    /// Kills etcd like a crash; the data dir stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self, fabric: &TestNs) {
        self.stop();
        self.spawn(fabric);
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn healthy() -> bool {
    let Ok(mut s) = TcpStream::connect(("198.18.0.1", 2379)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = "GET /health HTTP/1.1\r\nHost: 198.18.0.1\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.contains("\"health\":\"true\"")
}
