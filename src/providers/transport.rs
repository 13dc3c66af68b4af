//! The HTTP side of a network provider: its clients, credential header, `post` and body reads.
//!
//! Per provider and worker thread, two clients with their own pools: ballast's own HTTP/1.1
//! client for plain-HTTP upstreams reached without a proxy ([`plain`]), hyper-util's for the
//! rest (TLS, proxies, HTTP/2); connections are made by [`Connector`] (`connect` timeout, TLS,
//! proxies). The key header is built once and marked sensitive, non-2xx answers are read and
//! classified into a [`Failure`], and bodies read through [`UpstreamBody`] (the `idle` timeout
//! on every gap), whole ones bounded. Nothing follows a redirect: an LLM API never sends one,
//! and following it could carry the key elsewhere.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderName, HeaderValue, PROXY_AUTHORIZATION,
    USER_AGENT,
};
use http::uri::Scheme;
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::Client as Pooled;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::body::{Answer, UpstreamBody};
use super::connect::Connector;
use super::plain::{self, Plain};
use crate::config::Timeouts;
use crate::failure::{Failure, FailureClass};
use crate::workers::PerWorker;

/// The largest non-streamed answer read from an upstream.
pub(super) const MAX_ANSWER_BYTES: usize = 16 << 20;
/// Sent upstream with the request's id, for correlation.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The most of an error body read (to pass a client error's message on).
const MAX_ERROR_BYTES: usize = 64 << 10;
/// How long an unused upstream connection is kept open.
const IDLE_CONNECTION: Duration = Duration::from_secs(60);
const BALLAST: HeaderValue =
    HeaderValue::from_static(concat!("ballast/", env!("CARGO_PKG_VERSION")));

/// One connection pool and the client that uses it.
type Client = Pooled<Connector, Full<Bytes>>;
/// An upstream's answer, its body not read yet.
pub(super) type Response = http::Response<Answer>;

/// Builds a network provider's [`Transport`] from its credential header (name and value) and
/// the headers it sends on every request; the name and timeouts are the provider's.
pub(super) type Connect<'a> = &'a dyn Fn(
    Option<(HeaderName, String)>,
    Vec<(HeaderName, HeaderValue)>,
) -> Result<Transport, String>;

/// The HTTP side of a network provider: its own clients (a connection pool per worker thread,
/// so an upstream connection is always driven by the thread that uses it), its credential
/// header and the headers its config adds. Nothing of the client's request is ever sent.
pub(super) struct Transport {
    pub(super) name: Arc<str>,
    clients: PerWorker<Client>,
    /// ballast's own client for plain-HTTP upstreams reached without a proxy, per worker too.
    plain: PerWorker<Plain>,
    /// What every client connects with (asked, too, which proxy an upstream goes through).
    connector: Connector,
    credential: Option<(HeaderName, HeaderValue)>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The longest gap allowed between two reads of a response body.
    idle: Duration,
}

impl Transport {
    /// `credential` is a header name and its value (none for keyless servers); the value is
    /// marked sensitive, so it never appears in debug output. `headers` follow it on every
    /// request.
    pub(super) fn new(
        name: &Arc<str>,
        timeouts: &Timeouts,
        workers: usize,
        credential: Option<(HeaderName, String)>,
        headers: Vec<(HeaderName, HeaderValue)>,
    ) -> Result<Self, String> {
        let connector = Connector::new(timeouts.connect)?;
        let clients = PerWorker::try_new(workers, |_| Ok::<_, String>(client(&connector)))?;
        let plain = PerWorker::try_new(workers, |_| Ok::<_, String>(Plain::new(IDLE_CONNECTION)))?;
        let credential = match credential {
            Some((header, value)) => {
                // The error names the header, never the value.
                let mut value = HeaderValue::from_str(&value).map_err(|_| {
                    format!(
                        "provider `{name}`: the api_key cannot be sent in the `{header}` header"
                    )
                })?;
                value.set_sensitive(true);
                Some((header, value))
            }
            None => None,
        };
        Ok(Self {
            name: Arc::clone(name),
            clients,
            plain,
            connector,
            credential,
            headers,
            idle: timeouts.idle,
        })
    }

    /// POSTs a JSON `body`. A non-2xx answer is read (up to [`MAX_ERROR_BYTES`]) and returned
    /// as its classified [`Failure`]; a 2xx one is returned unread.
    pub(super) async fn post(
        &self,
        to: &Endpoint,
        body: Vec<u8>,
        stream: bool,
        request_id: &str,
    ) -> Result<Response, Failure> {
        self.post_with(to, body, stream, request_id, &[]).await
    }

    /// [`post`](Self::post), with `forwarded` headers of the client's, each in place of a
    /// configured header of its name (an Anthropic target's `anthropic-version`).
    pub(super) async fn post_with(
        &self,
        to: &Endpoint,
        body: Vec<u8>,
        stream: bool,
        request_id: &str,
        forwarded: &[(HeaderName, HeaderValue)],
    ) -> Result<Response, Failure> {
        // Room for every header, with the `content-length` the client adds: never regrown.
        let mut headers = HeaderMap::with_capacity(8 + self.headers.len());
        // Static values: no copy per request.
        let json = HeaderValue::from_static("application/json");
        let accept =
            if stream { HeaderValue::from_static("text/event-stream") } else { json.clone() };
        headers.insert(CONTENT_TYPE, json);
        headers.insert(ACCEPT, accept);
        let id = HeaderValue::from_str(request_id).map_err(|_| {
            Failure::new(FailureClass::ClientError, &self.name, "cannot send the request id")
        })?;
        headers.insert(X_REQUEST_ID, id);
        let configured =
            self.headers.iter().filter(|(name, _)| forwarded.iter().all(|(own, _)| own != name));
        for (name, value) in self.credential.iter().chain(forwarded).chain(configured) {
            headers.append(name, value.clone());
        }
        // With traces on: this attempt's `traceparent` (never the client's own header).
        for (name, value) in crate::telemetry::traces::upstream_headers() {
            headers.append(name, value);
        }
        // Ours unless the config sets them (a virtual host, another user agent).
        headers.entry(HOST).or_insert_with(|| to.host.clone());
        headers.entry(USER_AGENT).or_insert(BALLAST);
        let response = if self.connector.is_plain(&to.uri) {
            let path = to.uri.path_and_query().map_or("/", |path| path.as_str());
            let head = plain::head::request(path, &headers, body.len());
            let sent = self.plain.get().send(&self.connector, &to.uri, &head, &body);
            sent.await.map_err(|err| Failure::from_plain(&self.name, &err))?.map(Answer::Plain)
        } else {
            // A plain-HTTP upstream behind a proxy with credentials: the proxy reads them per
            // request.
            if to.uri.scheme() == Some(&Scheme::HTTP)
                && let Some(proxy) = self.connector.proxy_for(&to.uri)
                && let Some(auth) = proxy.basic_auth()
            {
                headers.insert(PROXY_AUTHORIZATION, auth.clone());
            }
            let mut request = Request::new(Full::new(Bytes::from(body)));
            *request.method_mut() = Method::POST;
            *request.uri_mut() = to.uri.clone();
            *request.headers_mut() = headers;
            let sent = self.clients.get().request(request).await;
            sent.map_err(|err| Failure::from_client(&self.name, &err))?.map(Answer::Pooled)
        };
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let headers = response.headers().clone();
        let body = self.read(response, MAX_ERROR_BYTES).await.unwrap_or_default();
        Err(Failure::from_status(&self.name, status, &headers, &body))
    }

    /// The body of `response`, chunk by chunk, within the `idle` timeout.
    pub(super) fn body(&self, response: Response) -> UpstreamBody {
        UpstreamBody::new(&self.name, response.into_body(), self.idle)
    }

    /// Reads a whole body of at most `limit` bytes. A body that arrives in one chunk (the usual
    /// case for an answer) is kept as it came, without a copy.
    pub(super) async fn read(&self, response: Response, limit: usize) -> Result<Bytes, Failure> {
        read_whole(&self.name, self.body(response), limit).await
    }
}

/// The whole of `body`, at most `limit` bytes, kept as it came when it is a single chunk.
async fn read_whole(
    name: &Arc<str>,
    mut body: impl Stream<Item = Result<Bytes, Failure>> + Unpin,
    limit: usize,
) -> Result<Bytes, Failure> {
    // The body while it is a single chunk; `joined` once a second one came.
    let mut single = Bytes::new();
    let mut joined: Option<BytesMut> = None;
    while let Some(chunk) = body.next().await.transpose()? {
        let so_far = joined.as_ref().map_or(single.len(), BytesMut::len);
        if so_far + chunk.len() > limit {
            return Err(Failure::new(
                FailureClass::ServerError,
                name,
                format!("upstream answer larger than {limit} bytes"),
            ));
        }
        match &mut joined {
            Some(joined) => joined.extend_from_slice(&chunk),
            None if single.is_empty() => single = chunk,
            None => {
                let mut both = BytesMut::with_capacity(so_far + chunk.len());
                both.extend_from_slice(&single);
                both.extend_from_slice(&chunk);
                joined = Some(both);
            }
        }
    }
    Ok(joined.map_or(single, BytesMut::freeze))
}

/// Where requests go: the URI and its `host` header, made once (by [`endpoint`], at start-up)
/// rather than by the client on every request.
pub(super) struct Endpoint {
    uri: Uri,
    host: HeaderValue,
}

impl Endpoint {
    fn new(uri: Uri) -> Result<Self, String> {
        let authority = uri.authority().ok_or_else(|| format!("`{uri}` names no host"))?;
        let default_port = match uri.scheme_str() {
            Some("https") => 443,
            _ => 80,
        };
        // As the client would write it: the port only when it is not the scheme's own.
        let host = match authority.port_u16() {
            Some(port) if port != default_port => authority.as_str(),
            _ => authority.host(),
        };
        let host = HeaderValue::from_str(host).map_err(|_| format!("`{uri}`: unusable host"))?;
        Ok(Self { uri, host })
    }
}

/// `path` under a configured base URL, however many slashes the base ends with. Parsed once at
/// start-up, so no request pays for it.
pub(super) fn endpoint(base_url: &url::Url, path: &str) -> Result<Endpoint, String> {
    let text = format!("{}/{path}", base_url.as_str().trim_end_matches('/'));
    let url = url::Url::parse(&text).map_err(|err| {
        // The base URL is shown redacted: it may carry a password or a key in its query.
        format!("`{}/{path}` is not a URL: {err}", crate::config::redacted_url(base_url.as_str()))
    })?;
    sendable(&url)
}

/// `url` as the client sends it (its user and password left out: they go as a header, see
/// [`url_credentials`]).
pub(super) fn sendable(url: &url::Url) -> Result<Endpoint, String> {
    let path = &url[url::Position::BeforePath..];
    let authority = &url[url::Position::BeforeHost..url::Position::AfterPort];
    let text = format!("{}://{authority}{path}", url.scheme());
    let uri = Uri::try_from(text).map_err(|err| {
        format!("`{}` cannot be sent to: {err}", crate::config::redacted_url(url.as_str()))
    })?;
    Endpoint::new(uri)
}

/// A `base_url`'s user and password, as the `authorization: Basic` header they stand for (a
/// server behind a password-protected proxy), unless the provider's key already takes that
/// header.
pub(super) fn url_credentials(
    url: &url::Url,
    credential: &Option<(HeaderName, String)>,
) -> Option<(HeaderName, HeaderValue)> {
    use base64::Engine as _;
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    if credential.as_ref().is_some_and(|(name, _)| *name == AUTHORIZATION) {
        return None;
    }
    let decode = |part| percent_encoding::percent_decode_str(part).decode_utf8_lossy();
    let pair = format!("{}:{}", decode(url.username()), decode(url.password().unwrap_or("")));
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
    let mut value = HeaderValue::try_from(format!("Basic {encoded}")).ok()?;
    value.set_sensitive(true);
    Some((AUTHORIZATION, value))
}

/// One connection pool and its client. Idle connections are closed after a minute.
fn client(connector: &Connector) -> Client {
    Pooled::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(IDLE_CONNECTION)
        .build(connector.clone())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use futures_util::stream;

    use http::header::{AUTHORIZATION, HeaderName};

    use super::{FailureClass, endpoint, read_whole, url_credentials};
    use crate::failure::Failure;

    fn answer(chunks: &[&'static str]) -> impl futures_util::Stream<Item = Result<Bytes, Failure>> {
        let chunks: Vec<Result<Bytes, Failure>> =
            chunks.iter().map(|chunk| Ok(Bytes::from_static(chunk.as_bytes()))).collect();
        stream::iter(chunks)
    }

    #[tokio::test]
    async fn a_whole_body_is_read_in_one_piece_or_many_up_to_its_limit() {
        let name = Arc::from("up");
        for chunks in [&[][..], &["{}"], &["{\"a\"", ":", "1}"], &["", "{}"]] {
            let body = read_whole(&name, answer(chunks), 16).await.unwrap();
            assert_eq!(body, chunks.concat(), "{chunks:?}");
        }
        let too_long = read_whole(&name, answer(&["0123456789", "0123456789"]), 16).await;
        assert_eq!(too_long.unwrap_err().class, FailureClass::ServerError);
        let exactly = read_whole(&name, answer(&["01234567", "89abcdef"]), 16).await.unwrap();
        assert_eq!(exactly, "0123456789abcdef");
    }

    #[test]
    fn a_base_urls_user_and_password_are_sent_as_basic_credentials_unless_a_key_is() {
        let url = |text: &str| url::Url::parse(text).unwrap();
        let (name, value) =
            url_credentials(&url("http://me:p%40ss@llm.internal/v1"), &None).unwrap();
        // base64("me:p@ss")
        assert_eq!((name, value.to_str().unwrap()), (AUTHORIZATION, "Basic bWU6cEBzcw=="));
        assert!(value.is_sensitive());
        assert!(url_credentials(&url("http://llm.internal/v1"), &None).is_none());
        let bearer = Some((AUTHORIZATION, "Bearer k".to_owned()));
        assert!(url_credentials(&url("http://me:pw@llm.internal/v1"), &bearer).is_none());
        let other = Some((HeaderName::from_static("x-api-key"), "k".to_owned()));
        assert!(url_credentials(&url("http://me:pw@llm.internal/v1"), &other).is_some());
    }

    #[test]
    fn an_endpoint_is_its_base_url_and_path_without_the_user_and_password() {
        let url = |text: &str| url::Url::parse(text).unwrap();
        let to =
            endpoint(&url("https://me:pw@llm.internal:8443/v1//"), "chat/completions").unwrap();
        assert_eq!(to.uri.to_string(), "https://llm.internal:8443/v1/chat/completions");
        assert_eq!(to.host, "llm.internal:8443");
        let to = endpoint(&url("http://[::1]:8080/v1"), "embeddings").unwrap();
        assert_eq!(to.uri.to_string(), "http://[::1]:8080/v1/embeddings");
        assert_eq!(to.host, "[::1]:8080");
        let to = endpoint(&url("https://api.openai.com:443/v1"), "responses").unwrap();
        assert_eq!(to.host, "api.openai.com", "no port when it is the scheme's own");
    }
}
