//! How an upstream connection is made: TCP (no Nagle, keep-alive probes), TLS with rustls and
//! the platform's certificate verifier, HTTP/2 or HTTP/1.1 as ALPN settles it, and the proxy the
//! environment names (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, as curl and reqwest
//! read them): an `https` upstream through a `CONNECT` tunnel, an `http` one through the proxy
//! itself. The whole of it (proxy, TCP, TLS) within the provider's `connect` timeout.
//!
//! This is what reqwest's client did for ballast, without what ballast does not use (redirects,
//! cookies, decompression, per-request URL parsing): see ARCHITECTURE.md, "Deliberate choices".

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use http::uri::Scheme;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use rustls_platform_verifier::BuilderVerifierExt;
use tokio::net::TcpStream;
use tower::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A connection to the upstream, or to the proxy in front of it.
type Hop = MaybeHttpsStream<TokioIo<TcpStream>>;

/// The environment variables that name a proxy; without any, no request asks the matcher.
const PROXY_VARIABLES: [&str; 6] =
    ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

/// Makes upstream connections for one provider's client (cheap to clone: the pool clones it).
#[derive(Clone)]
pub struct Connector {
    /// TCP alone, for plain-HTTP upstreams reached without a proxy (`super::plain`).
    tcp: HttpConnector,
    hop: HttpsConnector<HttpConnector>,
    /// The TLS set-up for an upstream reached through a tunnel (the same as `hop`'s).
    tls: tokio_rustls::TlsConnector,
    proxies: Option<Arc<Matcher>>,
    timeout: Duration,
}

impl Connector {
    /// A connector that gives up on a connection after `timeout`, with the environment's proxies.
    pub fn new(timeout: Duration) -> Result<Self, String> {
        Ok(Self::with_proxies(timeout, tls_config()?, proxies_from_env()))
    }

    fn with_proxies(timeout: Duration, tls: ClientConfig, proxies: Option<Matcher>) -> Self {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_keepalive(Some(Duration::from_secs(30)));
        // The connector sets the ALPN protocols of its own (h2, http/1.1); the tunnel's, the same.
        let mut tunnel = tls.clone();
        tunnel.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let hop = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp.clone());
        let tls = Arc::new(tunnel).into();
        Self { tcp, hop, tls, proxies: proxies.map(Arc::new), timeout }
    }

    /// The proxy that `uri` goes through, if the environment names one for it.
    pub fn proxy_for(&self, uri: &Uri) -> Option<hyper_util::client::proxy::matcher::Intercept> {
        self.proxies.as_ref()?.intercept(uri)
    }

    /// Whether requests to `uri` go over a plain TCP connection of ballast's own client: an
    /// `http` upstream that no proxy is named for.
    pub fn is_plain(&self, uri: &Uri) -> bool {
        uri.scheme() == Some(&Scheme::HTTP) && self.proxy_for(uri).is_none()
    }

    /// A TCP connection to `uri`'s host (no TLS, no proxy), within the `connect` timeout.
    pub async fn plain(&self, uri: &Uri) -> Result<TcpStream, BoxError> {
        let connecting = self.tcp.clone().call(uri.clone());
        match tokio::time::timeout(self.timeout, connecting).await {
            Ok(connected) => Ok(connected?.into_inner()),
            Err(_) => Err(timed_out(self.timeout)),
        }
    }

    async fn connect(mut self, dst: Uri) -> Result<Conn, BoxError> {
        let Some(proxy) = self.proxy_for(&dst) else {
            return Ok(Conn::Direct { hop: self.hop.call(dst).await?, proxied: false });
        };
        if dst.scheme() != Some(&Scheme::HTTPS) {
            // Plain HTTP goes to the proxy, which is sent the absolute URI (`proxied`).
            return Ok(Conn::Direct {
                hop: self.hop.call(proxy.uri().clone()).await?,
                proxied: true,
            });
        }
        let mut tunnel = Tunnel::new(proxy.uri().clone(), self.hop.clone());
        if let Some(auth) = proxy.basic_auth() {
            tunnel = tunnel.with_auth(auth.clone());
        }
        let tunneled = tunnel.call(dst.clone()).await?;
        let host = dst.host().ok_or("the upstream URL has no host")?;
        // An IPv6 literal comes bracketed in a URI, not in a server name.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())?;
        let tls = self.tls.connect(name, TokioIo::new(tunneled)).await?;
        Ok(Conn::Tunneled(Box::new(MaybeHttpsStream::Https(TokioIo::new(tls)))))
    }
}

impl Service<Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let (connector, timeout) = (self.clone(), self.timeout);
        Box::pin(async move {
            match tokio::time::timeout(timeout, connector.connect(dst)).await {
                Ok(connected) => connected,
                Err(_) => Err(timed_out(timeout)),
            }
        })
    }
}

fn timed_out(timeout: Duration) -> BoxError {
    format!("no connection within {timeout:?} (connect)").into()
}

/// rustls with the platform's verifier (the system's roots, `SSL_CERT_FILE` honoured on Linux),
/// TLS 1.2 and 1.3; ALPN is left to the connector.
fn tls_config() -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_platform_verifier())
        .map(|builder| builder.with_no_client_auth())
        .map_err(|err| format!("cannot set up TLS for upstreams: {err}"))
}

fn proxies_from_env() -> Option<Matcher> {
    PROXY_VARIABLES.iter().any(|name| std::env::var_os(name).is_some()).then(Matcher::from_env)
}

/// An upstream connection: straight (or to a plain-HTTP proxy), or TLS through a tunnel.
#[expect(
    clippy::large_enum_variant,
    reason = "the direct connection is nearly every one; the rare tunnel is the one boxed"
)]
pub enum Conn {
    Direct {
        hop: Hop,
        proxied: bool,
    },
    /// Boxed: it is rare, and holds two TLS states (to the proxy and through it).
    Tunneled(Box<MaybeHttpsStream<Hop>>),
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        match self {
            Self::Direct { hop, proxied } => hop.connected().proxy(*proxied),
            Self::Tunneled(tls) => tls.connected(),
        }
    }
}

/// Both kinds, for one method of `Read` or `Write`.
macro_rules! each {
    ($self:ident, $io:ident => $call:expr) => {
        match $self.get_mut() {
            Conn::Direct { hop: $io, .. } => $call,
            Conn::Tunneled(tls) => {
                let $io = &mut **tls;
                $call
            }
        }
    };
}

impl Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, io => Pin::new(io).poll_read(cx, buf))
    }
}

impl Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, io => Pin::new(io).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self, io => Pin::new(io).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Direct { hop, .. } => hop.is_write_vectored(),
            Self::Tunneled(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, io => Pin::new(io).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, io => Pin::new(io).poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use bytes::Bytes;
    use http::{Request, Version};
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use hyper_util::server::conn::auto;
    use rustls::RootCertStore;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    /// A test CA's server certificate for 127.0.0.1, and a client set-up that trusts it.
    fn certificates() -> (rustls::ServerConfig, ClientConfig) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let key = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let mut server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .unwrap();
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let mut roots = RootCertStore::empty();
        roots.add(ca_cert.der().clone()).unwrap();
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (server, client)
    }

    /// An HTTPS server that answers every request with the HTTP version it came in.
    async fn https_upstream(config: rustls::ServerConfig) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let Ok(tls) = acceptor.accept(tcp).await else { continue };
                let answer = service_fn(|request: Request<Incoming>| async move {
                    let version = format!("{:?}", request.version());
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(
                        version,
                    ))))
                });
                let builder = auto::Builder::new(TokioExecutor::new());
                tokio::spawn(async move {
                    let _ = builder.serve_connection(TokioIo::new(tls), answer).await;
                });
            }
        });
        port
    }

    /// A proxy that records each request head it gets: a `CONNECT` is answered 200 and tunnelled
    /// to its target; anything else is answered `200 proxied` by the proxy itself.
    async fn proxy(heads: Arc<Mutex<Vec<String>>>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let heads = Arc::clone(&heads);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    while !head.ends_with(b"\r\n\r\n") {
                        let mut byte = [0];
                        if client.read_exact(&mut byte).await.is_err() {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8(head).unwrap();
                    heads.lock().unwrap().push(head.clone());
                    let Some(target) = head.strip_prefix("CONNECT ") else {
                        let answer = "HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nproxied";
                        let _ = client.write_all(answer.as_bytes()).await;
                        return;
                    };
                    let target = target.split(' ').next().unwrap().to_owned();
                    let mut upstream = TcpStream::connect(target).await.unwrap();
                    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
        });
        port
    }

    async fn get(connector: Connector, uri: &str) -> (Version, String) {
        let client: Client<Connector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build(connector);
        let response = client.get(uri.parse().unwrap()).await.unwrap();
        let version = response.version();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (version, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn an_https_upstream_is_spoken_to_in_http2_when_it_offers_it() {
        let (server, client) = certificates();
        let port = https_upstream(server).await;
        let connector = Connector::with_proxies(Duration::from_secs(5), client, None);
        let (version, body) = get(connector, &format!("https://127.0.0.1:{port}/v1/x")).await;
        assert_eq!((version, body.as_str()), (Version::HTTP_2, "HTTP/2.0"));
    }

    #[tokio::test]
    async fn an_https_upstream_behind_a_proxy_is_reached_through_a_tunnel_with_its_credentials() {
        let (server, client) = certificates();
        let port = https_upstream(server).await;
        let heads = Arc::default();
        let proxy = proxy(Arc::clone(&heads)).await;
        let matcher =
            Matcher::builder().https(format!("http://me:secret@127.0.0.1:{proxy}")).build();
        let connector = Connector::with_proxies(Duration::from_secs(5), client, Some(matcher));
        let (version, body) = get(connector, &format!("https://127.0.0.1:{port}/v1/x")).await;
        assert_eq!((version, body.as_str()), (Version::HTTP_2, "HTTP/2.0"), "TLS end to end");
        let heads = heads.lock().unwrap();
        assert_eq!(heads.len(), 1, "{heads:?}");
        assert!(
            heads[0].starts_with(&format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n")),
            "{heads:?}"
        );
        // base64("me:secret")
        let credentials = heads[0].lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("proxy-authorization").then(|| value.trim())
        });
        assert_eq!(credentials, Some("Basic bWU6c2VjcmV0"), "{heads:?}");
    }

    #[tokio::test]
    async fn a_plain_http_upstream_behind_a_proxy_is_asked_for_through_it_by_absolute_uri() {
        let (_, client) = certificates();
        let heads = Arc::default();
        let proxy = proxy(Arc::clone(&heads)).await;
        let matcher = Matcher::builder().http(format!("http://127.0.0.1:{proxy}")).build();
        let connector = Connector::with_proxies(Duration::from_secs(5), client, Some(matcher));
        let (_, body) = get(connector, "http://upstream.invalid:8080/v1/x").await;
        assert_eq!(body, "proxied");
        let heads = heads.lock().unwrap();
        assert!(
            heads[0].starts_with("GET http://upstream.invalid:8080/v1/x HTTP/1.1\r\n"),
            "{heads:?}"
        );
    }

    #[test]
    fn only_an_http_upstream_without_a_proxy_goes_over_plain_tcp() {
        let (_, client) = certificates();
        let direct = Connector::with_proxies(Duration::from_secs(5), client.clone(), None);
        assert!(direct.is_plain(&"http://127.0.0.1:8000/v1".parse().unwrap()));
        assert!(!direct.is_plain(&"https://api.openai.com/v1".parse().unwrap()));
        let matcher = Matcher::builder().http("http://127.0.0.1:3128").build();
        let proxied = Connector::with_proxies(Duration::from_secs(5), client, Some(matcher));
        assert!(!proxied.is_plain(&"http://llm.internal/v1".parse().unwrap()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_not_made_within_the_connect_timeout_fails_when_it_passes() {
        // A proxy that takes the connection and never answers the `CONNECT`.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move { listener.accept().await });
        let (_, client) = certificates();
        let matcher = Matcher::builder().https(format!("http://127.0.0.1:{proxy}")).build();
        let mut connector = Connector::with_proxies(Duration::from_secs(3), client, Some(matcher));
        let started = tokio::time::Instant::now();
        let failed = connector.call("https://127.0.0.1:9/".parse().unwrap()).await;
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        let Err(err) = failed else { panic!("connected") };
        assert!(err.to_string().contains("(connect)"), "{err}");
        drop(held);
    }
}
