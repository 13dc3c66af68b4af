//! Property tests (proptest) of the parsers that read what clients and upstreams send.
//!
//! One module per parser: the SSE parser, the stream chunk reader, the plain client's body
//! framing, request parsing, and the cache key's normalisation, with the JSON generators and
//! shuffling serialiser they share in `json`. Each property runs a few hundred generated cases;
//! together they take a few seconds. The same code paths are fuzzed by the cargo-fuzz targets
//! under `fuzz/`.

mod cache_key;
mod chunk;
mod json;
mod plain;
mod request_parsing;
mod sse;

use proptest::test_runner::Config;

/// Cases per property: enough to shake out ordering and splitting bugs, cheap in a debug build.
pub const CASES: u32 = 256;

/// Proptest settings for `cases` cases per property.
pub fn config(cases: u32) -> Config {
    // No regression files: a failure prints its minimal input, and known ones become plain tests.
    Config { cases, failure_persistence: None, ..Config::default() }
}

// === A small seeded generator, for shuffles and formatting chosen inside a case ===

/// SplitMix64: deterministic for a seed that proptest generates (and shrinks towards 0).
pub struct Rng(pub u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`; `n` must be positive.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}
