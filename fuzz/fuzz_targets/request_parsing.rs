//! Request bodies: arbitrary bytes through `ChatRequest::from_slice`, and every accepted request
//! through what the gateway does next with it: the cache key and the upstream body.

#![no_main]

use ballast::cache::key::{KEY_VERSION, cache_key};
use ballast::openai::chat::ChatRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = ChatRequest::from_slice(data) else {
        return;
    };
    assert!(!request.model.is_empty());
    assert!(!request.messages().is_empty());
    let key = cache_key("fuzz", &request.clone().into());
    assert!(key.starts_with(&format!("ballast:{KEY_VERSION}:")));
    let upstream = request.for_upstream("m");
    assert!(upstream.is_ok(), "an accepted request must serialise: {upstream:?}");
    // The upstream body is written from the client's own JSON text: it must still be JSON,
    // with the model swapped and the same keys as the request.
    let upstream: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&upstream.unwrap_or_default()).expect("the upstream body is JSON");
    assert_eq!(upstream.get("model").and_then(|m| m.as_str()), Some("m"));
    for key in request.body().keys() {
        assert!(upstream.contains_key(key), "`{key}` reached the upstream");
    }
});
