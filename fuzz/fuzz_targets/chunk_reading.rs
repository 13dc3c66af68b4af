//! The stream chunk reader (`openai::chunk`), which reads every chunk of every stream in one pass
//! and parses in full only what the pass is not sure of: on any text it must not panic, and on
//! valid JSON a sure pass must read what the full parse reads.

#![no_main]

use ballast::openai::chunk::ChunkFacts;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let read = ChunkFacts::read(text);
    let walked = ChunkFacts::walked(text);
    if serde_json::from_str::<serde_json::Value>(text).is_ok() {
        if let Some(walked) = walked {
            assert_eq!(Some(walked), ChunkFacts::parsed(text), "the pass and the parse disagree");
            assert_eq!(read, Some(walked));
        }
    }
});
