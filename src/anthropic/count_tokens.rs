//! `POST /v1/messages/count_tokens` for models without an Anthropic target (SPEC §3): the
//! request's input tokens estimated with OpenAI's `o200k_base` tokenizer, since Anthropic's own
//! is not public. Counted: every string of `system`, `messages` and `tools` (texts, tool inputs
//! and results, names, descriptions, schemas' strings), each object key of tool inputs and
//! schemas, [`MEDIA_TOKENS`] per image or document, and [`PER_MESSAGE`] per turn. An estimate,
//! marked as such (`x-ballast-estimate: true`); the tokenizer is loaded once, on first use (not
//! at start-up: it holds tens of MiB that a gateway whose clients never count would carry).

use serde_json::Value;

use super::MessagesRequest;

/// What an image or document part counts for: Anthropic's own estimate for an image of about
/// 1,000 × 1,000 pixels (width × height / 750); a count cannot see the real size.
pub const MEDIA_TOKENS: u64 = 1_334;
/// The framing of one turn (role and separators).
pub const PER_MESSAGE: u64 = 3;

/// The estimate for `request`; none only if the tokenizer cannot be loaded (its data is built
/// into the binary, so that is not expected).
pub fn estimate(request: &MessagesRequest) -> Option<u64> {
    let bpe = crate::tokens::tokenizer()?;
    let body = request.body();
    let mut text = String::new();
    let mut media = 0;
    for key in ["system", "messages", "tools"] {
        if let Some(value) = body.get(key) {
            collect(value, &mut text, &mut media);
        }
    }
    let turns = body.get("messages").and_then(Value::as_array).map_or(0, Vec::len) as u64;
    let tokens = bpe.encode_ordinary(&text).len() as u64;
    Some(tokens + media * MEDIA_TOKENS + turns * PER_MESSAGE)
}

/// Appends every string of `value` (and every object key but `type`) to `text`, one per line,
/// and counts its media parts; an explicit stack, so depth costs no recursion.
fn collect(value: &Value, text: &mut String, media: &mut u64) {
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::String(string) => {
                text.push_str(string);
                text.push('\n');
            }
            Value::Array(items) => pending.extend(items.iter().rev()),
            Value::Object(members) => {
                let kind = members.get("type").and_then(Value::as_str);
                if matches!(kind, Some("image" | "document")) {
                    *media += 1;
                    continue;
                }
                for (key, member) in members {
                    if key == "type" {
                        continue;
                    }
                    if key != "text" && key != "content" {
                        text.push_str(key);
                        text.push('\n');
                    }
                    pending.push(member);
                }
            }
            Value::Number(number) => {
                text.push_str(&number.to_string());
                text.push('\n');
            }
            Value::Null | Value::Bool(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(body: &str) -> u64 {
        let request = MessagesRequest::for_counting(body.as_bytes().to_vec().into()).unwrap();
        estimate(&request).unwrap()
    }

    #[test]
    fn counts_grow_with_the_text_and_count_media_parts() {
        let short = count(r#"{"model":"m","messages":[{"role":"user","content":"Hello"}]}"#);
        let long = count(
            r#"{"model":"m","system":"You are a careful assistant who answers in French.",
            "messages":[{"role":"user","content":"Hello, how are you doing today?"}]}"#,
        );
        assert!(short > PER_MESSAGE && long > short + 10, "{short} {long}");
        let image = count(
            r#"{"model":"m","messages":[{"role":"user","content":[
            {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo"}},
            {"type":"text","text":"Hello"}]}]}"#,
        );
        assert_eq!(image, short + MEDIA_TOKENS, "the image's bytes are not counted as text");
    }
}
