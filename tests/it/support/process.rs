//! `GatewayProcess`: the `ballast` binary run as a child process, its JSON logs collected.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

/// The `ballast` binary serving `yaml` on a free port, its stderr (the logs) collected.
pub struct GatewayProcess {
    pub addr: SocketAddr,
    child: std::process::Child,
    logs: Option<std::thread::JoinHandle<String>>,
    /// Its stderr while nobody reads it (`start_with_logs_unread`), and what was read so far.
    unread: Option<(Lines, String)>,
    /// The config's directory, when written here: kept while the process runs.
    _dir: Option<tempfile::TempDir>,
}

type Lines = std::io::Lines<std::io::BufReader<std::process::ChildStderr>>;

impl GatewayProcess {
    /// Starts `ballast serve` with `env` added, and waits for its `listening` line.
    pub fn start(yaml: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, yaml).unwrap();
        Self::start_from(&path, env, Some(dir), true)
    }

    /// [`start`](Self::start), but nothing reads its stderr after the `listening` line (a stuck
    /// log collector) until [`stop`](Self::stop).
    pub fn start_with_logs_unread(yaml: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, yaml).unwrap();
        Self::start_from(&path, env, Some(dir), false)
    }

    /// Starts `ballast serve --config path` (a file the test keeps, and may rewrite).
    pub fn start_from_file(path: &std::path::Path, env: &[(&str, &str)]) -> Self {
        Self::start_from(path, env, None, true)
    }

    fn start_from(
        path: &std::path::Path,
        env: &[(&str, &str)],
        dir: Option<tempfile::TempDir>,
        read_logs: bool,
    ) -> Self {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ballast"))
            .args(["serve", "--log-format", "json", "--listen", "127.0.0.1:0", "--config"])
            .arg(path)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = String::new();
        let addr = loop {
            let line = lines.next().expect("ballast logs `listening` before exiting").unwrap();
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("\"listening\"") {
                let log: Value = serde_json::from_str(&line).unwrap();
                break log["fields"]["addr"].as_str().unwrap().parse().unwrap();
            }
        };
        if !read_logs {
            return Self { addr, child, logs: None, unread: Some((lines, seen)), _dir: dir };
        }
        Self { addr, child, logs: Some(read_all(lines, seen)), unread: None, _dir: dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGHUP: reload the config file.
    pub fn hangup(&self) {
        let pid = self.child.id().to_string();
        assert!(
            std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success()
        );
    }

    /// SIGTERM, then everything it logged; panics unless it exits 0 within 10 s.
    pub fn stop(mut self) -> String {
        if let Some((lines, seen)) = self.unread.take() {
            self.logs = Some(read_all(lines, seen));
        }
        let pid = self.child.id().to_string();
        assert!(
            std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success()
        );
        let (done, exited) = std::sync::mpsc::channel();
        std::thread::spawn(move || done.send(self.child.wait().unwrap()));
        let status =
            exited.recv_timeout(Duration::from_secs(10)).expect("ballast stops within 10 s");
        assert_eq!(status.code(), Some(0));
        self.logs.take().unwrap().join().unwrap()
    }
}

/// Reads the rest of a process's log lines on a thread, after those `seen` already.
fn read_all(lines: Lines, seen: String) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        lines.map_while(Result::ok).fold(seen, |mut all, line| {
            all.push_str(&line);
            all.push('\n');
            all
        })
    })
}
