//! The cache-key reader (`cache::key`), which writes canonical JSON straight from the client's
//! bytes: on every body the gateway accepts it must not panic, and formatting must never change
//! the key, so the same body with whitespace around every structural character keys the same.

#![no_main]

use ballast::cache::key::{KEY_VERSION, cache_key};
use ballast::openai::chat::ChatRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = ChatRequest::from_slice(data) else {
        return;
    };
    let key = cache_key("fuzz", &request.clone().into());
    assert!(key.starts_with(&format!("ballast:{KEY_VERSION}:")));
    assert_eq!(cache_key("fuzz", &request.clone().into()), key, "the key is a function of the request");
    let spaced = spaced(data);
    let again = ChatRequest::from_slice(&spaced).expect("whitespace between tokens keeps JSON valid");
    assert_eq!(cache_key("fuzz", &again.into()), key, "formatting changed the key");
    assert_ne!(cache_key("other", &request.clone().into()), key, "scopes are separate spaces");
});

/// `json` with a space, a tab or a newline (in turn) on both sides of every structural
/// character outside strings.
fn spaced(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() * 3);
    let (mut in_string, mut escaped, mut turn) = (false, false, 0usize);
    for &byte in json {
        if in_string {
            out.push(byte);
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'{' | b'}' | b'[' | b']' | b',' | b':' => {
                let space = [b' ', b'\t', b'\n'][turn % 3];
                turn += 1;
                out.extend_from_slice(&[space, byte, space]);
            }
            b'"' => {
                in_string = true;
                out.push(byte);
            }
            _ => out.push(byte),
        }
    }
    out
}
