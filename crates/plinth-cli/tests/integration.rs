//! The real `plinth` binary: starts on a free loopback port with embedded
//! defaults, answers, refuses bad configuration, and stops on SIGTERM.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should fail loudly

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_healthy(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn server_starts_with_embedded_defaults_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(["server", "--port", &port.to_string(), "--data-dir"])
        .arg(dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    assert!(wait_healthy(port), "server did not start");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let body: serde_json::Value = rt.block_on(async {
        reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get?experiment_id=0"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(body["experiment"]["name"], "Default");
    assert!(dir.path().join("data/plinth.db").exists());
    assert!(dir.path().join("data/artifacts").is_dir());
    // Graceful stop on SIGTERM.
    Command::new("kill").args(["-TERM", &server.0.id().to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut exited = None;
    while Instant::now() < deadline {
        if let Some(status) = server.0.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(exited.is_some_and(|s| s.success()), "server did not stop cleanly: {exited:?}");
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "prot = 5000\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_plinth")).arg("server").arg("--config").arg(&cfg).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid config file"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_plinth")).args(["server", "--host", "nowhere"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid host address"));
}
