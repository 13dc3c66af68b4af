//! Upstream SSE bodies: arbitrary bytes through `SseParser`, pushed in two or three pieces
//! (where to cut is taken from the first input byte), draining events after every push as the
//! gateway does. No input may panic, and no dispatched event may be larger than the limit.

#![no_main]

use ballast::providers::sse::{MAX_EVENT_BYTES, SseParser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    // Low bits: the first cut; bit 7: whether to cut a second time, at the middle of the rest.
    let first = usize::from(selector & 0x7f).min(body.len());
    let (head, tail) = body.split_at(first);
    let pieces: Vec<&[u8]> = if selector & 0x80 != 0 {
        let (middle, rest) = tail.split_at(tail.len() / 2);
        vec![head, middle, rest]
    } else {
        vec![head, tail]
    };
    let mut parser = SseParser::default();
    for piece in pieces {
        if parser.push(piece).is_err() {
            // The gateway fails the stream here and drops the parser.
            return;
        }
        while let Some(event) = parser.next_event() {
            assert!(
                event.data.len() <= MAX_EVENT_BYTES,
                "event data of {} bytes from {} input bytes",
                event.data.len(),
                body.len()
            );
        }
    }
});
