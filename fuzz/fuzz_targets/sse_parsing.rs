//! Upstream SSE bodies: arbitrary bytes through `SseParser`, pushed in two or three pieces
//! (where to cut is taken from the first input byte), draining events after every push as the
//! gateway does. No input may panic, and no dispatched event may be larger than the limit.

#![no_main]

use ballast::providers::sse::{MAX_EVENT_BYTES, SseParser};
use libfuzzer_sys::fuzz_target;

#[path = "pieces.rs"]
mod pieces;

fuzz_target!(|data: &[u8]| {
    let Some(pieces) = pieces::pieces(data) else {
        return;
    };
    let input = data.len() - 1;
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
                input
            );
        }
    }
});
