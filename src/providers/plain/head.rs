//! The heads of a plain HTTP/1.1 exchange: the request's as ballast writes it, the answer's as
//! `httparse` reads it (its header values kept as slices of the bytes read, not copied), with
//! how the answer's body is framed and whether the connection can carry another request.

use std::io::Write as _;

use bytes::BytesMut;
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version};

use super::framing::{Framing, Malformed};

/// The most header lines an answer may have (hyper's default).
const MAX_HEADERS: usize = 100;
/// The largest answer head read (one LLM API's is about 1 KiB).
pub const MAX_HEAD_BYTES: usize = 64 << 10;

/// Writes a POST's head for `path` (with its query), `headers` and a body of `length` bytes.
/// `content-length` is ballast's own: a configured framing header is not written.
pub fn request(path: &str, headers: &HeaderMap, length: usize) -> Vec<u8> {
    let mut size = path.len() + 64;
    for (name, value) in headers {
        size += name.as_str().len() + value.len() + 4;
    }
    let mut head = Vec::with_capacity(size);
    head.extend_from_slice(b"POST ");
    head.extend_from_slice(path.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    // Writing to a `Vec` cannot fail.
    let _ = write!(head, "content-length: {length}\r\n\r\n");
    head
}

/// An answer's head.
#[derive(Debug)]
pub struct Head {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// The connection can carry another request once the body is read to its end.
    pub reusable: bool,
}

/// Reads an answer's head off the front of `buf`: `None` while it is incomplete. Interim
/// answers (`100 Continue`, `103 Early Hints`) are passed over.
pub fn parse(buf: &mut BytesMut) -> Result<Option<Head>, Malformed> {
    loop {
        let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut answer = httparse::Response::new(&mut lines);
        let length = match answer.parse(buf) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
                return Err(Malformed("the answer's head is too large"));
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Malformed("the answer has too many header lines"));
            }
            Err(_) => return Err(Malformed("the answer's head is not HTTP/1.1")),
        };
        let code = answer.code.unwrap_or_default();
        let status = StatusCode::from_u16(code)
            .map_err(|_| Malformed("the answer's status is not a status code"))?;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(Malformed("the upstream switched protocols unasked"));
        }
        let version = if answer.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
        // Where each value lies in `buf`, so that it can be kept as a slice once `buf` is split.
        let base = buf.as_ptr() as usize;
        let mut found = Vec::with_capacity(answer.headers.len());
        for line in answer.headers.iter() {
            let name = HeaderName::from_bytes(line.name.as_bytes())
                .map_err(|_| Malformed("an answer header's name is invalid"))?;
            // httparse's values lie in the head it read; checked all the same, so that no
            // slice below can be out of bounds.
            let start = (line.value.as_ptr() as usize)
                .checked_sub(base)
                .filter(|start| start + line.value.len() <= length)
                .ok_or(Malformed("an answer header's value is invalid"))?;
            found.push((name, start..start + line.value.len()));
        }
        let head = buf.split_to(length).freeze();
        if status.is_informational() {
            continue;
        }
        let mut headers = HeaderMap::with_capacity(found.len());
        for (name, range) in found {
            let value = HeaderValue::from_maybe_shared(head.slice(range))
                .map_err(|_| Malformed("an answer header's value is invalid"))?;
            headers.append(name, value);
        }
        let (framing, framed_for_reuse) = framing(status, &headers)?;
        let reusable = framed_for_reuse && version == Version::HTTP_11 && !says_close(&headers);
        return Ok(Some(Head { status, version, headers, framing, reusable }));
    }
}

/// How the body after this head is framed (RFC 9112 §6.3, for an answer to a POST), and
/// whether that framing leaves the connection usable.
fn framing(status: StatusCode, headers: &HeaderMap) -> Result<(Framing, bool), Malformed> {
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok((Framing::Done, true));
    }
    let mut codings = headers.get_all(TRANSFER_ENCODING).iter().peekable();
    if codings.peek().is_some() {
        let last = codings.last().and_then(|value| last_token(value.as_bytes()));
        // A length beside a coding is ignored; the connection is not trusted afterwards.
        let alone = !headers.contains_key(CONTENT_LENGTH);
        return Ok(match last {
            Some(coding) if coding.eq_ignore_ascii_case(b"chunked") => (Framing::chunked(), alone),
            _ => (Framing::UntilClose, false),
        });
    }
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&byte| byte == b',') {
            let part = part.trim_ascii();
            let parsed = (!part.is_empty() && part.iter().all(u8::is_ascii_digit))
                .then(|| std::str::from_utf8(part).ok()?.parse::<u64>().ok())
                .flatten()
                .ok_or(Malformed("the answer's content-length is not a number"))?;
            if length.is_some_and(|seen| seen != parsed) {
                return Err(Malformed("the answer has two different content-lengths"));
            }
            length = Some(parsed);
        }
    }
    Ok(match length {
        Some(length) => (Framing::Length(length), true),
        None => (Framing::UntilClose, false),
    })
}

/// The last comma-separated token of a header value, trimmed.
fn last_token(value: &[u8]) -> Option<&[u8]> {
    value.rsplit(|&byte| byte == b',').next().map(<[u8]>::trim_ascii)
}

/// `connection: close` among the answer's headers.
fn says_close(headers: &HeaderMap) -> bool {
    headers.get_all(CONNECTION).iter().any(|value| {
        value
            .as_bytes()
            .split(|&byte| byte == b',')
            .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(wire: &str) -> Result<Option<Head>, Malformed> {
        parse(&mut BytesMut::from(wire))
    }

    fn head(wire: &str) -> Head {
        parsed(wire).unwrap().unwrap()
    }

    #[test]
    fn a_request_head_has_the_path_the_headers_and_ballasts_own_length() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("llm.internal:8000"));
        headers.insert("authorization", HeaderValue::from_static("Bearer k"));
        // A configured framing header would break the request: ballast's own is written.
        headers.insert("content-length", HeaderValue::from_static("3"));
        headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        let head = request("/v1/chat/completions?x=1", &headers, 1234);
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: llm.internal:8000\r\n\
             authorization: Bearer k\r\ncontent-length: 1234\r\n\r\n"
        );
    }

    #[test]
    fn an_answer_head_is_read_once_it_is_whole_and_its_body_is_left() {
        let wire = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nX-Request-Id: r1\r\n\
                    transfer-encoding: chunked\r\n\r\n5\r\nhello";
        for end in 0..wire.find("\r\n\r\n").unwrap() + 3 {
            assert!(parsed(&wire[..end]).unwrap().is_none(), "{end} bytes are not a head");
        }
        let mut buf = BytesMut::from(wire);
        let head = parse(&mut buf).unwrap().unwrap();
        assert_eq!((head.status, head.version), (StatusCode::OK, Version::HTTP_11));
        assert_eq!(head.headers["content-type"], "text/event-stream");
        assert_eq!(head.headers["x-request-id"], "r1");
        assert_eq!((head.framing, head.reusable), (Framing::chunked(), true));
        assert_eq!(&buf[..], b"5\r\nhello");
    }

    #[test]
    fn interim_answers_are_passed_over() {
        let head = head(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n\
                         HTTP/1.1 429 Too Many Requests\r\nretry-after: 2\r\ncontent-length: 2\r\n\r\n{}",
        );
        assert_eq!(head.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!((head.headers.len(), head.headers["retry-after"].as_bytes()), (2, &b"2"[..]));
        assert!(!head.headers.contains_key("link"));
    }

    #[test]
    fn the_framing_follows_the_answers_headers() {
        let cases = [
            ("content-length: 12", Framing::Length(12), true),
            ("content-length: 12\r\ncontent-length: 12", Framing::Length(12), true),
            ("content-length: 7, 7", Framing::Length(7), true),
            ("transfer-encoding: gzip, Chunked", Framing::chunked(), true),
            // A length beside a coding: the coding counts, and the connection is not reused.
            ("transfer-encoding: chunked\r\ncontent-length: 5", Framing::chunked(), false),
            ("transfer-encoding: gzip", Framing::UntilClose, false),
            ("content-type: application/json", Framing::UntilClose, false),
            ("content-length: 5\r\nconnection: keep-alive, Close", Framing::Length(5), false),
        ];
        for (headers, framing, reusable) in cases {
            let read = head(&format!("HTTP/1.1 200 OK\r\n{headers}\r\n\r\n"));
            assert_eq!((read.framing, read.reusable), (framing, reusable), "{headers}");
        }
        let empty = head("HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!((empty.framing, empty.reusable), (Framing::Done, true));
        let old = head("HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n{}");
        assert_eq!(
            (old.version, old.framing, old.reusable),
            (Version::HTTP_10, Framing::Length(2), false)
        );
    }

    #[test]
    fn a_broken_answer_head_is_malformed() {
        let too_many = format!("HTTP/1.1 200 OK\r\n{}\r\n", "a: b\r\n".repeat(MAX_HEADERS + 1));
        let too_large = format!("HTTP/1.1 200 OK\r\nx: {}", "y".repeat(MAX_HEAD_BYTES));
        for (wire, why) in [
            ("SSH-2.0-OpenSSH\r\n\r\n", "the answer's head is not HTTP/1.1"),
            ("HTTP/1.1 2000 OK\r\n\r\n", "the answer's head is not HTTP/1.1"),
            ("HTTP/1.1 101 Switching Protocols\r\n\r\n", "the upstream switched protocols unasked"),
            (
                "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
                "the answer's content-length is not a number",
            ),
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 1 2\r\n\r\n",
                "the answer's content-length is not a number",
            ),
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
                "the answer's content-length is not a number",
            ),
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
                "the answer has two different content-lengths",
            ),
            (&too_many, "the answer has too many header lines"),
            (&too_large, "the answer's head is too large"),
        ] {
            assert_eq!(parsed(wire).unwrap_err(), Malformed(why), "{wire:.40}");
        }
    }
}
