//! Upstream answers on a plain HTTP/1.1 connection: arbitrary bytes through ballast's own
//! client's readers, the answer's head (`head::parse`) and then its body (`Framing::next`), the
//! bytes arriving in two or three pieces (where to cut is taken from the first input byte) as
//! reads from a socket would. No input may panic; a body never yields more bytes than arrived,
//! a length-framed one never more than its length, and bytes are consumed only from the front.

#![no_main]

use ballast::providers::plain::framing::{Framing, Step};
use ballast::providers::plain::head;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

#[path = "pieces.rs"]
mod pieces;

fuzz_target!(|data: &[u8]| {
    let Some(mut pieces) = pieces::pieces(data) else {
        return;
    };
    pieces.reverse();
    let mut buf = BytesMut::new();
    let mut arrived = 0;
    let framing = loop {
        match head::parse(&mut buf) {
            Ok(Some(head)) => break head.framing,
            Ok(None) => {}
            Err(_) => return,
        }
        let Some(piece) = pieces.pop() else { return };
        buf.extend_from_slice(piece);
        arrived += piece.len();
    };
    let length = match framing {
        Framing::Length(length) => Some(length),
        _ => None,
    };
    let mut framing = framing;
    let (mut body, mut read) = (0u64, arrived - buf.len());
    loop {
        let before = buf.len();
        match framing.next(&mut buf) {
            Ok(Step::Data(data)) => {
                assert!(!data.is_empty(), "an empty data step");
                body += data.len() as u64;
            }
            Ok(Step::End) => break,
            Ok(Step::More) => match pieces.pop() {
                Some(piece) => {
                    buf.extend_from_slice(piece);
                    arrived += piece.len();
                }
                None => {
                    let _ = framing.at_close();
                    break;
                }
            },
            Err(_) => break,
        }
        read += before.saturating_sub(buf.len());
        assert!(body <= read as u64 && read <= arrived, "{body} of {read} read, {arrived} arrived");
    }
    if let Some(length) = length {
        assert!(body <= length, "{body} body bytes for a length of {length}");
    }
});
