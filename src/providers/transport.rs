//! The HTTP side of a network provider: its clients, credential header, `post` and body reads.
//!
//! One reqwest client per provider and worker thread (its own pool, `connect` timeout, redirects
//! off), the key header built once and marked sensitive, non-2xx answers read and classified
//! into a [`Failure`], and bodies read through [`UpstreamBody`] (the `idle` timeout on every
//! gap), whole ones bounded.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::{Client, IntoUrl, Response, redirect};

use super::body::UpstreamBody;
use crate::config::Timeouts;
use crate::failure::{Failure, FailureClass};
use crate::workers::PerWorker;

/// The largest non-streamed answer read from an upstream.
pub(super) const MAX_ANSWER_BYTES: usize = 16 << 20;
/// Sent upstream with the request's id, for correlation.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The most of an error body read (to pass a client error's message on).
const MAX_ERROR_BYTES: usize = 64 << 10;

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
        let clients = PerWorker::try_new(workers, |_| client(name, timeouts))?;
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
        Ok(Self { name: Arc::clone(name), clients, credential, headers, idle: timeouts.idle })
    }

    /// POSTs a JSON `body`. A non-2xx answer is read (up to [`MAX_ERROR_BYTES`]) and returned
    /// as its classified [`Failure`]; a 2xx one is returned unread.
    pub(super) async fn post(
        &self,
        url: impl IntoUrl,
        body: Vec<u8>,
        stream: bool,
        request_id: &str,
    ) -> Result<Response, Failure> {
        self.post_with(url, body, stream, request_id, &[]).await
    }

    /// [`post`](Self::post), with `forwarded` headers of the client's, each in place of a
    /// configured header of its name (an Anthropic target's `anthropic-version`).
    pub(super) async fn post_with(
        &self,
        url: impl IntoUrl,
        body: Vec<u8>,
        stream: bool,
        request_id: &str,
        forwarded: &[(HeaderName, HeaderValue)],
    ) -> Result<Response, Failure> {
        // Static values: no copy per request.
        let json = HeaderValue::from_static("application/json");
        let accept =
            if stream { HeaderValue::from_static("text/event-stream") } else { json.clone() };
        let mut builder = self
            .clients
            .get()
            .post(url)
            .header(CONTENT_TYPE, json)
            .header(ACCEPT, accept)
            .header(X_REQUEST_ID, request_id)
            .body(body);
        let configured =
            self.headers.iter().filter(|(name, _)| forwarded.iter().all(|(own, _)| own != name));
        for (name, value) in self.credential.iter().chain(forwarded).chain(configured) {
            builder = builder.header(name, value);
        }
        // With traces on: this attempt's `traceparent` (never the client's own header).
        for (name, value) in crate::telemetry::traces::upstream_headers() {
            builder = builder.header(name, value);
        }
        let response =
            builder.send().await.map_err(|err| Failure::from_reqwest(&self.name, &err))?;
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
        UpstreamBody::new(&self.name, response, self.idle)
    }

    /// Reads a whole body of at most `limit` bytes. A body that arrives in one chunk (the usual
    /// case for an answer) is kept as it came, without a copy.
    pub(super) async fn read(&self, response: Response, limit: usize) -> Result<Bytes, Failure> {
        let mut body = self.body(response);
        // The body while it is a single chunk; `joined` once a second one came.
        let mut single = Bytes::new();
        let mut joined: Option<BytesMut> = None;
        while let Some(chunk) = body.next().await.transpose()? {
            let so_far = joined.as_ref().map_or(single.len(), BytesMut::len);
            if so_far + chunk.len() > limit {
                return Err(Failure::new(
                    FailureClass::ServerError,
                    &self.name,
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
}

/// `path` under a configured base URL, however many slashes the base ends with. Parsed once at
/// start-up, so no request pays for it.
pub(super) fn endpoint(base_url: &reqwest::Url, path: &str) -> Result<reqwest::Url, String> {
    let text = format!("{}/{path}", base_url.as_str().trim_end_matches('/'));
    // The base URL is shown redacted: it may carry a password or a key in its query.
    reqwest::Url::parse(&text).map_err(|err| {
        format!("`{}/{path}` is not a URL: {err}", crate::config::redacted_url(base_url.as_str()))
    })
}

/// One HTTP client and its connection pool.
fn client(name: &str, timeouts: &Timeouts) -> Result<Client, String> {
    Client::builder()
        .connect_timeout(timeouts.connect)
        // No `read_timeout`: reqwest would also apply it to the wait for a whole answer's head
        // (which `total` bounds) and reset a timer per chunk; `UpstreamBody` applies `idle`.
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .tcp_keepalive(Duration::from_secs(30))
        // An LLM API never redirects; following one could carry the key elsewhere.
        .redirect(redirect::Policy::none())
        .user_agent(concat!("ballast/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| format!("cannot build the HTTP client for `{name}`: {err}"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use futures_util::stream;

    use super::{FailureClass, Transport};
    use crate::config::Timeouts;

    fn transport() -> Transport {
        let second = Duration::from_secs(1);
        let timeouts =
            Timeouts { connect: second, first_byte: second, idle: second, total: second };
        Transport::new(&"up".into(), &timeouts, 1, None, Vec::new()).unwrap()
    }

    fn answer(chunks: &[&'static str]) -> reqwest::Response {
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            chunks.iter().map(|chunk| Ok(Bytes::from_static(chunk.as_bytes()))).collect();
        let body = reqwest::Body::wrap_stream(stream::iter(chunks));
        reqwest::Response::from(http::Response::new(body))
    }

    #[tokio::test]
    async fn a_whole_body_is_read_in_one_piece_or_many_up_to_its_limit() {
        let transport = transport();
        for chunks in [&[][..], &["{}"], &["{\"a\"", ":", "1}"], &["", "{}"]] {
            let body = transport.read(answer(chunks), 16).await.unwrap();
            assert_eq!(body, chunks.concat(), "{chunks:?}");
        }
        let too_long = transport.read(answer(&["0123456789", "0123456789"]), 16).await;
        assert_eq!(too_long.unwrap_err().class, FailureClass::ServerError);
        let exactly = transport.read(answer(&["01234567", "89abcdef"]), 16).await.unwrap();
        assert_eq!(exactly, "0123456789abcdef");
    }
}
