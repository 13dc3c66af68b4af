//! `RedisServer`: a `redis-server` of a test's own, which it can kill, pause and restart; over
//! TLS with certificates of a `TestCa`, or as a node of a `RedisCluster` of the test's own.

use std::path::PathBuf;
use std::time::Duration;

/// A `redis-server` of this test's own, on a free port; killed when dropped.
pub struct RedisServer {
    pub port: u16,
    /// Options beyond port and persistence: TLS files, cluster mode.
    extra: Vec<String>,
    tls: bool,
    /// The working directory (a cluster node's `nodes.conf` lives there).
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl RedisServer {
    pub async fn start() -> Self {
        Self::start_with(Vec::new(), None).await
    }

    /// A server that speaks only TLS, with `ca`'s certificate for 127.0.0.1; clients need no
    /// certificate of their own.
    pub async fn start_tls(ca: &TestCa) -> Self {
        Self::start_with(Vec::new(), Some(ca)).await
    }

    /// With `ca`, over TLS only (and `redis-cli` keeps a copy of the CA to trust).
    async fn start_with(mut extra: Vec<String>, ca: Option<&TestCa>) -> Self {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        if let Some(ca) = ca {
            extra.extend(ca.server_args());
            std::fs::copy(ca.ca_file(), dir.path().join("ca.pem")).unwrap();
        }
        let tls = ca.is_some();
        let mut server = Self { port, extra, tls, dir, child: None };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: the server is gone at once, connections reset.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A stopped process does not die of SIGKILL until it is continued.
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): a hung server that still holds its connections.
    pub fn pause(&self, paused: bool) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let signal = if paused { "-STOP" } else { "-CONT" };
        assert!(
            std::process::Command::new("kill").args([signal, &pid]).status().unwrap().success()
        );
    }

    /// Starts (again) on the same port and waits until it accepts connections.
    pub async fn restart(&mut self) {
        self.kill();
        let port = self.port.to_string();
        let ports: [&str; 4] =
            if self.tls { ["--port", "0", "--tls-port", &port] } else { ["--port", &port, "", ""] };
        let child = std::process::Command::new("redis-server")
            .args(ports.iter().filter(|arg| !arg.is_empty()))
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(&self.extra)
            .current_dir(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (tests/run.sh installs it)");
        self.child = Some(child);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// Runs `redis-cli` against this server (over TLS when it is) and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut command = std::process::Command::new("redis-cli");
        command.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if self.tls {
            let ca = self.dir.path().join("ca.pem");
            command.args(["--tls", "--cacert"]).arg(ca);
        }
        let output = command.args(args).output().expect("redis-cli is installed");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A certificate authority of the test's own and a server certificate it signed for
/// 127.0.0.1 and localhost, as PEM files.
pub struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "ballast test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server_params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .unwrap();
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), server_cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).unwrap();
        Self { dir }
    }

    /// The CA certificate: what `redis_ca_file` names.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// `redis-server`'s TLS options.
    fn server_args(&self) -> Vec<String> {
        let path = |name: &str| self.dir.path().join(name).display().to_string();
        vec![
            "--tls-cert-file".into(),
            path("server.pem"),
            "--tls-key-file".into(),
            path("server.key"),
            "--tls-ca-cert-file".into(),
            path("ca.pem"),
            "--tls-auth-clients".into(),
            "no".into(),
        ]
    }
}

/// A Redis Cluster of the test's own: `masters` nodes on loopback, no replicas, every slot
/// covered. A killed node's slots are down until it restarts (it keeps its `nodes.conf`).
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// `ca`: every node speaks only TLS, the cluster bus too.
    pub async fn start(masters: usize, ca: Option<&TestCa>) -> Self {
        let mut nodes = Vec::with_capacity(masters);
        for _ in 0..masters {
            let mut extra: Vec<String> = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "1000",
            ]
            .map(String::from)
            .into();
            if ca.is_some() {
                extra.extend(["--tls-cluster".into(), "yes".into()]);
            }
            nodes.push(RedisServer::start_with(extra, ca).await);
        }
        let cluster = Self { nodes };
        let addresses: Vec<String> =
            cluster.nodes.iter().map(|node| format!("127.0.0.1:{}", node.port)).collect();
        let mut create = vec!["--cluster", "create"];
        create.extend(addresses.iter().map(String::as_str));
        create.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        cluster.nodes[0].cli(&create);
        cluster.wait_until_ok().await;
        cluster
    }

    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Waits (at most 15 s) until every running node reports `cluster_state:ok`.
    pub async fn wait_until_ok(&self) {
        for _ in 0..300 {
            let ok = self
                .nodes
                .iter()
                .filter(|node| node.child.is_some())
                .all(|node| node.cli(&["cluster", "info"]).contains("cluster_state:ok"));
            if ok {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the Redis cluster did not become ok");
    }

    /// Keys held by each node.
    pub fn keys_per_node(&self) -> Vec<u64> {
        self.nodes.iter().map(|node| node.cli(&["dbsize"]).parse().unwrap_or(0)).collect()
    }
}
