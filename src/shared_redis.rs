//! `SharedRedis`: a Redis connection for state shared by replicas (the cache, rate limits),
//! which must never fail or stall a request.
//!
//! One server (`redis_url`) goes through a lazy connection manager (the gateway starts while
//! Redis is down) with a short reconnect policy; a Redis Cluster (`redis_cluster`) through the
//! async cluster client, which follows the slots and reconnects to nodes by itself once it has
//! connected; its first connect runs in a task of its own, started by the first call and again
//! by a call after a failed connect, so that no request waits for it beyond `CALL_TIMEOUT`.
//! Either may be TLS (`rediss://`), verified against the system roots or `redis_ca_file`.
//!
//! Every call is bounded by `CALL_TIMEOUT`; after `TRIP_AFTER` consecutive errors Redis is
//! skipped for `TRIP_FOR`, so while it is down or hung no request waits on it. Failures are
//! logged at most once per `LOG_EVERY`, never with a URL (which may hold the password); callers
//! fall back (uncached, per-replica).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt, Shared};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, RedisFuture, TlsCertificates, Value};
use tokio::time::Instant;

use crate::config::{RedisConfig, RedisNodes};
use crate::throttle::Throttle;

/// The most a Redis call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_millis(100);
/// The most one connection attempt (TCP, TLS and the handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
const TRIP_AFTER: u32 = 5;
const TRIP_FOR: Duration = Duration::from_secs(2);
const LOG_EVERY: Duration = Duration::from_secs(10);

pub struct SharedRedis {
    nodes: Nodes,
    health: Mutex<Health>,
    reachable: AtomicBool,
}

enum Nodes {
    Single(ConnectionManager),
    Cluster(Box<Cluster>),
}

/// A Redis Cluster: its client, and the connection once one has been made.
struct Cluster {
    client: ClusterClient,
    state: Mutex<ClusterState>,
}

/// A connect in flight, shared by the calls that wait for it: the connection, or none.
type Connecting = Shared<BoxFuture<'static, Option<ClusterConnection>>>;

enum ClusterState {
    Idle,
    Connecting(Connecting),
    Connected(ClusterConnection),
}

/// A connection for one command: to the server, or to the cluster (routed by key).
pub enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A failed (or skipped) Redis call.
#[derive(Debug)]
pub struct RedisUnavailable;

struct Health {
    consecutive_errors: u32,
    skip_until: Option<Instant>,
    failure_log: Throttle,
}

impl SharedRedis {
    /// Connects lazily to `config`'s server or cluster; never blocks.
    pub fn new(config: &RedisConfig) -> Result<Self, String> {
        let certificates = config
            .ca
            .as_ref()
            .map(|ca| TlsCertificates { client_tls: None, root_cert: Some(ca.pem.clone()) });
        let nodes = match &config.nodes {
            RedisNodes::Single(url) => {
                let client = match certificates {
                    Some(certificates) => redis::Client::build_with_tls(url.as_str(), certificates),
                    None => redis::Client::open(url.as_str()),
                }
                .map_err(|err| format!("invalid redis_url: {err}"))?;
                let config = ConnectionManagerConfig::new()
                    .set_number_of_retries(1)
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(CALL_TIMEOUT))
                    .set_max_delay(Duration::from_millis(500));
                let manager = ConnectionManager::new_lazy_with_config(client, config)
                    .map_err(|err| format!("cannot set up the Redis connection: {err}"))?;
                Nodes::Single(manager)
            }
            RedisNodes::Cluster(seeds) => {
                let mut builder = ClusterClientBuilder::new(seeds.iter().map(String::as_str))
                    .retries(1)
                    .min_retry_wait(10)
                    .max_retry_wait(50)
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(CALL_TIMEOUT);
                if let Some(certificates) = certificates {
                    builder = builder.certs(certificates);
                }
                let client =
                    builder.build().map_err(|err| format!("invalid redis_cluster: {err}"))?;
                Nodes::Cluster(Box::new(Cluster { client, state: Mutex::new(ClusterState::Idle) }))
            }
        };
        Ok(Self {
            nodes,
            health: Mutex::new(Health {
                consecutive_errors: 0,
                skip_until: None,
                failure_log: Throttle::new(LOG_EVERY),
            }),
            reachable: AtomicBool::new(true),
        })
    }

    /// False after a failed call, until one succeeds.
    pub fn is_reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// Runs one bounded command.
    pub async fn call<T, F, Fut>(&self, what: &str, command: F) -> Result<T, RedisUnavailable>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if self.lock().skip_until.is_some_and(|until| Instant::now() < until) {
            return Err(RedisUnavailable);
        }
        let outcome = tokio::time::timeout(CALL_TIMEOUT, async {
            match self.connection().await {
                Some(connection) => command(connection).await.map_err(Failed::Command),
                None => Err(Failed::NotConnected),
            }
        })
        .await;
        let mut health = self.lock();
        match outcome {
            Ok(Ok(value)) => {
                if !self.reachable.swap(true, Ordering::Relaxed) {
                    tracing::info!("Redis is reachable again");
                }
                health.consecutive_errors = 0;
                health.skip_until = None;
                Ok(value)
            }
            failed => {
                self.reachable.store(false, Ordering::Relaxed);
                health.consecutive_errors += 1;
                if health.consecutive_errors >= TRIP_AFTER {
                    health.skip_until = Some(Instant::now() + TRIP_FOR);
                }
                if health.failure_log.due() {
                    let error = match failed {
                        Ok(Err(Failed::Command(err))) => err.to_string(),
                        Ok(Err(Failed::NotConnected)) => "cannot connect to the cluster".to_owned(),
                        _ => format!("no answer within {CALL_TIMEOUT:?}"),
                    };
                    tracing::warn!(command = what, error = %error, "Redis call failed; carrying on without it (logged at most every 10 s)");
                }
                Err(RedisUnavailable)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection to run one command on; none while the cluster cannot be reached.
    async fn connection(&self) -> Option<Connection> {
        match &self.nodes {
            Nodes::Single(manager) => Some(Connection::Single(manager.clone())),
            Nodes::Cluster(cluster) => cluster.connection().await.map(Connection::Cluster),
        }
    }
}

/// Why a call failed, before the timeout.
enum Failed {
    Command(redis::RedisError),
    NotConnected,
}

impl Cluster {
    /// The cluster connection, connecting first if there is none. The connect runs in a task
    /// of its own, so a caller that stops waiting (its call timed out) does not cancel it: the
    /// next caller finds its result.
    async fn connection(&self) -> Option<ClusterConnection> {
        let connecting = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            match &*state {
                ClusterState::Connected(connection) => return Some(connection.clone()),
                ClusterState::Connecting(connecting) => connecting.clone(),
                ClusterState::Idle => {
                    let client = self.client.clone();
                    let task = tokio::spawn(async move {
                        let connect = client.get_async_connection();
                        match tokio::time::timeout(CONNECT_TIMEOUT * 2, connect).await {
                            Ok(Ok(connection)) => Some(connection),
                            Ok(Err(err)) => {
                                tracing::debug!(error = %err, "cannot connect to the Redis cluster");
                                None
                            }
                            Err(_elapsed) => None,
                        }
                    });
                    let connecting: Connecting =
                        task.map(Result::ok).map(Option::flatten).boxed().shared();
                    *state = ClusterState::Connecting(connecting.clone());
                    connecting
                }
            }
        };
        let connection = connecting.await;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*state, ClusterState::Connecting(_)) {
            *state = match &connection {
                Some(connection) => ClusterState::Connected(connection.clone()),
                None => ClusterState::Idle,
            };
        }
        connection
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}
