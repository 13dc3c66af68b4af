//! Properties of the plain HTTP/1.1 client's body framing: a chunked body, encoded however a
//! server might (any chunk sizes, upper- or lower-case hex, extensions, trailers) and arriving
//! in any pieces, reads back as exactly its bytes, and leaves what follows it in the buffer.

#![expect(
    clippy::unwrap_used,
    reason = "a helper of the properties: a failed unwrap is a failed case"
)]

use ballast::providers::plain::framing::{Framing, Step};
use bytes::BytesMut;
use proptest::prelude::*;

use super::{CASES, Rng, config};

/// `body` in the chunked coding, cut into chunks by `rng`, with extensions and trailers.
fn chunked(body: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let size = rng.below(rest.len()) + 1;
        let (chunk, later) = rest.split_at(size);
        let hex = if rng.below(2) == 0 { format!("{size:x}") } else { format!("{size:X}") };
        wire.extend_from_slice(hex.as_bytes());
        if rng.below(4) == 0 {
            wire.extend_from_slice(b";name=\"a value\"");
        }
        wire.extend_from_slice(b"\r\n");
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
        rest = later;
    }
    wire.extend_from_slice(b"0\r\n");
    for _ in 0..rng.below(3) {
        wire.extend_from_slice(b"x-trailer: value\r\n");
    }
    wire.extend_from_slice(b"\r\n");
    wire
}

/// What `framing` reads from `wire` arriving in pieces cut by `rng`, and what it left.
fn read(mut framing: Framing, wire: &[u8], rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
    let (mut buf, mut body, mut rest) = (BytesMut::new(), Vec::new(), wire);
    loop {
        match framing.next(&mut buf).unwrap() {
            Step::Data(data) => body.extend_from_slice(&data),
            Step::End => {
                buf.extend_from_slice(rest);
                return (body, buf.to_vec());
            }
            Step::More => {
                assert!(!rest.is_empty(), "the body ended early: {body:?}");
                let piece = rng.below(rest.len()) + 1;
                let (now, later) = rest.split_at(piece);
                buf.extend_from_slice(now);
                rest = later;
            }
        }
    }
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn a_chunked_body_reads_back_as_its_bytes_however_it_is_cut(
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        seed in any::<u64>(),
    ) {
        let mut rng = Rng(seed);
        let mut wire = chunked(&body, &mut rng);
        wire.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        let (read, left) = read(Framing::chunked(), &wire, &mut rng);
        prop_assert_eq!(read, body);
        prop_assert_eq!(left, b"HTTP/1.1 200 OK\r\n".to_vec());
    }

    #[test]
    fn a_length_framed_body_reads_back_as_its_bytes_however_it_is_cut(
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        seed in any::<u64>(),
    ) {
        let mut rng = Rng(seed);
        let mut wire = body.clone();
        wire.extend_from_slice(b"next");
        let (read, left) = read(Framing::Length(body.len() as u64), &wire, &mut rng);
        prop_assert_eq!(read, body);
        prop_assert_eq!(left, b"next".to_vec());
    }
}
