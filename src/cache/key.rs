//! Cache keys: a hash of the normalised request within a scope (the auth key's space).
//!
//! The request is normalised by dropping what does not change the answer (`stream`,
//! `stream_options`, `user`) and writing the rest as canonical JSON (object keys sorted at every
//! level, no whitespace, strings with one escaping), so field order and formatting never change
//! the key. Two things are kept as the client wrote them, because they do change the answer:
//! numbers, spelled as sent (going through `f64` merged different numbers, such as two seeds
//! above 2^64), and the member order of a Structured Outputs schema
//! (`response_format.json_schema.schema`), where property order is the order the model
//! generates the properties in. The canonical text is written from the client's own bytes
//! (`ChatRequest::members`, `MessagesRequest::members`) as they are read, not from a parsed `Value` (a parsed number has lost
//! its spelling, and a tree of values costs many times the text). The hash is BLAKE3 (cryptographic: a crafted collision would serve one request
//! another's answer). The key carries a format version: a change of normalisation or entry
//! format bumps it, and old entries are simply never read again.

use crate::dialect::Request;

/// Bump when normalisation or the stored entry format changes.
pub const KEY_VERSION: &str = "v2";
/// What does not change a chat answer.
const CHAT_IGNORED: [&str; 3] = ["stream", "stream_options", "user"];
/// What does not change a Messages answer (`metadata` holds only `user_id`).
const MESSAGES_IGNORED: [&str; 2] = ["stream", "metadata"];
/// What does not change a Response (who asks, how it is delivered, whether it is stored; but
/// see `cache_key` for `store: false`).
const RESPONSES_IGNORED: [&str; 7] = [
    "stream",
    "stream_options",
    "user",
    "safety_identifier",
    "metadata",
    "store",
    "prompt_cache_key",
];
/// What does not change an embedding.
const EMBEDDINGS_IGNORED: [&str; 1] = ["user"];

/// The key of `request` in the cache space `scope`: `ballast:v2:<64 hex>` for chat (as before
/// there were other APIs), `ballast:v2:<api>:<64 hex>` for the others (`messages`, `responses`,
/// `embeddings`), so that the entries of two APIs never answer each other (SPEC §4: entries are
/// per dialect).
pub fn cache_key(scope: &str, request: &Request) -> String {
    match request {
        Request::Chat(chat) => keyed(scope, "", chat.members(), &CHAT_IGNORED),
        Request::Messages(messages) => {
            keyed(scope, "messages:", messages.request.members(), &MESSAGES_IGNORED)
        }
        Request::Responses(responses) => {
            // `store: false` does not change the Response, but it was then not kept
            // (`crate::conversations`, and not stored by OpenAI), so it must never answer a
            // request that may continue it by id: such entries have a space of their own.
            let api = if responses.may_keep() { "responses:" } else { "responses-unstored:" };
            keyed(scope, api, responses.request.members(), &RESPONSES_IGNORED)
        }
        Request::Embeddings(embeddings) => {
            keyed(scope, "embeddings:", embeddings.members(), &EMBEDDINGS_IGNORED)
        }
    }
}

fn keyed<'a>(
    scope: &str,
    api: &str,
    members: impl Iterator<Item = (&'a str, &'a [u8])>,
    ignored: &[&str],
) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(scope.as_bytes());
    hasher.update(b"\0{");
    // One member's canonical text at a time: the whole body is never copied at once.
    let mut canonical = Vec::with_capacity(256);
    let mut first = true;
    // Already sorted by key, a later duplicate having won.
    for (key, text) in members {
        if ignored.contains(&key) {
            continue;
        }
        canonical.clear();
        if !first {
            canonical.push(b',');
        }
        first = false;
        write_string(key, &mut canonical);
        canonical.push(b':');
        let place = Place::top(key);
        let mark = canonical.len();
        if Reader::new(text).value(place, &mut canonical).is_none() {
            // Not reached: the body was checked as JSON. The client's text still keys it.
            canonical.truncate(mark);
            canonical.extend_from_slice(text);
        }
        hasher.update(&canonical);
    }
    hasher.update(b"}");
    format!("ballast:{KEY_VERSION}:{api}{}", hasher.finalize().to_hex())
}

/// Where a value sits, for the one subtree whose member order is kept.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Plain,
    /// The top-level `response_format`.
    ResponseFormat,
    /// `response_format.json_schema`.
    JsonSchema,
    /// Messages' top-level `output_config`, or Responses' `text`.
    OutputConfig,
    /// `output_config.format`.
    OutputFormat,
    /// `response_format.json_schema.schema` (or Messages' `output_config.format.schema`, or
    /// Responses' `text.format.schema`) and everything in it: order kept.
    Schema,
}

impl Place {
    /// The place of the top-level member `key`.
    fn top(key: &str) -> Place {
        match key {
            "response_format" => Place::ResponseFormat,
            "output_config" | "text" => Place::OutputConfig,
            _ => Place::Plain,
        }
    }

    /// The place of the member `key` of an object at `self`.
    fn member(self, key: &str) -> Place {
        match (self, key) {
            (Place::ResponseFormat, "json_schema") => Place::JsonSchema,
            (Place::OutputConfig, "format") => Place::OutputFormat,
            (Place::JsonSchema | Place::OutputFormat, "schema") | (Place::Schema, _) => {
                Place::Schema
            }
            _ => Place::Plain,
        }
    }

    /// The place of an item of an array at `self`.
    fn item(self) -> Place {
        if self == Place::Schema { Place::Schema } else { Place::Plain }
    }
}

/// Writes JSON text that was already checked (so it only has to be right on valid JSON) as
/// canonical JSON, in one pass and without building values: an array or a schema is written as
/// it is read, and only an object whose members must be sorted holds its members' canonical text
/// until it has them all, so the cost is about twice the text, at any depth. The depth is bounded
/// by the check (serde_json's nesting limit), and so is the recursion.
struct Reader<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(text: &'a [u8]) -> Self {
        Self { text, at: 0 }
    }

    fn peek(&mut self) -> Option<u8> {
        while let Some(&byte) = self.text.get(self.at) {
            if !matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(byte);
            }
            self.at += 1;
        }
        None
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        if self.peek()? != byte {
            return None;
        }
        self.at += 1;
        Some(())
    }

    /// Reads one value and writes it canonically to `out`.
    fn value(&mut self, place: Place, out: &mut Vec<u8>) -> Option<()> {
        match self.peek()? {
            b'{' if place == Place::Schema => {
                out.push(b'{');
                let mut first = true;
                self.members(|key, reader| {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    write_string(&key, out);
                    out.push(b':');
                    reader.value(place.member(&key), out)
                })?;
                out.push(b'}');
            }
            b'{' => {
                let mut members: Vec<(String, Vec<u8>)> = Vec::new();
                self.members(|key, reader| {
                    let mut text = Vec::new();
                    reader.value(place.member(&key), &mut text)?;
                    members.push((key, text));
                    Some(())
                })?;
                // Sorted (stably), and of a repeated key the last one kept, as a parse into
                // `Value` does.
                members.sort_by(|a, b| a.0.cmp(&b.0));
                members.dedup_by(|later, kept| {
                    let same = later.0 == kept.0;
                    if same {
                        std::mem::swap(later, kept);
                    }
                    same
                });
                out.push(b'{');
                for (index, (key, text)) in members.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    write_string(key, out);
                    out.push(b':');
                    out.extend_from_slice(text);
                }
                out.push(b'}');
            }
            b'[' => {
                self.at += 1;
                out.push(b'[');
                if self.peek()? == b']' {
                    self.at += 1;
                    out.push(b']');
                    return Some(());
                }
                loop {
                    self.value(place.item(), out)?;
                    match self.peek()? {
                        b',' => {
                            self.at += 1;
                            out.push(b',');
                        }
                        b']' => break,
                        _ => return None,
                    }
                }
                self.at += 1;
                out.push(b']');
            }
            b'"' => {
                let raw = self.raw_string()?;
                if raw.contains(&b'\\') {
                    write_string(&decode(raw)?, out);
                } else {
                    // Without escapes (checked JSON has no raw control characters) the text is
                    // already canonical.
                    out.extend_from_slice(raw);
                }
            }
            _ => {
                let start = self.at;
                while self.text.get(self.at).is_some_and(|b| {
                    !matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r')
                }) {
                    self.at += 1;
                }
                out.extend_from_slice(self.text.get(start..self.at).filter(|l| !l.is_empty())?);
            }
        }
        Some(())
    }

    /// Reads an object, handing each member's key (decoded) to `member`, which reads its value.
    fn members(&mut self, mut member: impl FnMut(String, &mut Self) -> Option<()>) -> Option<()> {
        self.expect(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            let key = decode(self.raw_string()?)?;
            self.expect(b':')?;
            member(key, self)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => break,
                _ => return None,
            }
        }
        self.at += 1;
        Some(())
    }

    /// A string's text, quotes included, as written.
    fn raw_string(&mut self) -> Option<&'a [u8]> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.at;
        self.at += 1;
        loop {
            match self.text.get(self.at)? {
                b'\\' => self.at += 2,
                b'"' => break,
                _ => self.at += 1,
            }
        }
        self.at += 1;
        self.text.get(start..self.at)
    }
}

/// A string's text (quotes included) with its escapes decoded.
fn decode(raw: &[u8]) -> Option<String> {
    if !raw.contains(&b'\\') {
        return std::str::from_utf8(raw.get(1..raw.len() - 1)?).ok().map(str::to_owned);
    }
    serde_json::from_slice(raw).ok()
}

fn write_string(text: &str, out: &mut Vec<u8>) {
    // Writing a `str` to a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::anthropic::MessagesRequest;
    use crate::dialect::{Messages, Responses};
    use crate::openai::chat::ChatRequest;
    use crate::openai::responses::ResponsesRequest;

    fn key(scope: &str, body: &str) -> String {
        cache_key(scope, &Request::Chat(ChatRequest::from_slice(body.as_bytes()).unwrap()))
    }

    fn messages_key(body: &str) -> String {
        let request = MessagesRequest::from_slice(body.as_bytes()).unwrap();
        cache_key("", &Request::Messages(Messages::new(request, Vec::new())))
    }

    fn responses_key(body: &str) -> String {
        let request = ResponsesRequest::from_slice(body.as_bytes()).unwrap();
        cache_key("", &Request::Responses(Responses::new(request, None)))
    }

    #[test]
    fn an_unstored_response_never_answers_a_request_that_may_continue_it() {
        let body = r#"{"model":"m","input":"hi"}"#;
        let stored = r#"{"model":"m","input":"hi","store":true,"metadata":{"a":"b"}}"#;
        let unstored = r#"{"model":"m","input":"hi","store":false}"#;
        assert!(responses_key(body).starts_with("ballast:v2:responses:"));
        assert_eq!(responses_key(body), responses_key(stored), "stored is the default");
        assert_ne!(responses_key(body), responses_key(unstored));
        assert!(responses_key(unstored).starts_with("ballast:v2:responses-unstored:"));
        assert_eq!(
            responses_key(unstored),
            responses_key(r#"{"store":false,"input":"hi","stream":true,"model":"m"}"#)
        );
    }

    #[test]
    fn a_messages_request_has_a_key_of_its_own_that_ignores_stream_and_metadata() {
        let body = r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
        let same = r#"{"messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":5,
            "model":"m","metadata":{"user_id":"u"}}"#;
        assert!(messages_key(body).starts_with("ballast:v2:messages:"));
        assert_eq!(messages_key(body), messages_key(same));
        let chat = r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
        assert_ne!(messages_key(body), key("", chat));
        let schema = |order: &str| {
            format!(
                r#"{{"model":"m","max_tokens":5,"messages":[{{"role":"user","content":"hi"}}],
                "output_config":{{"format":{{"type":"json_schema","schema":{order}}}}}}}"#
            )
        };
        assert_ne!(
            messages_key(&schema(r#"{"b":1,"a":2}"#)),
            messages_key(&schema(r#"{"a":2,"b":1}"#)),
            "a schema's member order is the order the model writes them in"
        );
    }

    /// Entries stored under `v2` keys stay readable only while the same request gives the same
    /// key: a change that moves this hash must bump `KEY_VERSION`.
    #[test]
    fn the_key_of_a_known_request_is_stable_within_its_version() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"caf\u00e9 \"q\" \/ \n é"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function",
            "function":{"name":"f","arguments":"{}"}}]}],"temperature":0.50,"seed":12345678901234567890123,
            "z":{"b":[1,{"d":true,"c":false}],"a":"x","a":"y"},"stream":true,"user":"u",
            "response_format":{"type":"json_schema","json_schema":{"strict":true,"name":"s",
            "schema":{"type":"object","properties":{"y":{"type":"string"},"x":{"type":"integer"}},
            "required":["y","x"],"y":1,"y":2}}}}"#;
        assert_eq!(
            key("team", body),
            "ballast:v2:10de1e8a030c5b15f7f46787f06701fdc0dfbe20903b50a06af02171535bce91"
        );
    }

    #[test]
    fn field_order_formatting_and_delivery_fields_do_not_change_the_key() {
        let a =
            key("", r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0}"#);
        let b = key(
            "",
            r#"{ "temperature": 0, "messages": [ {"content": "hi", "role": "user"} ], "model": "m",
                         "stream": true, "stream_options": {"include_usage": true}, "user": "u-42" }"#,
        );
        assert_eq!(a, b);
        assert!(a.starts_with("ballast:v2:") && a.len() == "ballast:v2:".len() + 64);
    }

    #[test]
    fn what_changes_the_answer_changes_the_key() {
        let base = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let variants = [
            r#"{"model":"m2","messages":[{"role":"user","content":"hi"}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi!"}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.5}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"n":2}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"seed":1}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}"#,
        ];
        for variant in variants {
            assert_ne!(key("", base), key("", variant), "{variant}");
        }
        assert_ne!(key("team-a", base), key("team-b", base), "scopes are separate spaces");
    }

    #[test]
    fn numbers_are_keyed_as_spelled_so_large_ones_never_merge() {
        let with = |seed: &str| {
            key(
                "",
                &format!(
                    r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"seed":{seed}}}"#
                ),
            )
        };
        assert_ne!(with("9007199254740993"), with("9007199254740992"));
        assert_ne!(with("18446744073709551617"), with("18446744073709551616"), "above u64: f64");
        assert_ne!(with("0.10000000000000001"), with("0.1"));
        let nested = |n: &str| {
            key(
                "",
                &format!(
                    r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"x":{{"a":[{n}]}}}}"#
                ),
            )
        };
        assert_ne!(nested("1.0"), nested("1"), "spelled as sent");
    }

    #[test]
    fn a_structured_outputs_schema_keeps_its_property_order_and_the_rest_stays_sorted() {
        let with = |format: &str| {
            key(
                "",
                &format!(
                    r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"response_format":{format}}}"#
                ),
            )
        };
        let schema = |properties: &str| {
            format!(
                r#"{{"type":"json_schema","json_schema":{{"name":"s","strict":true,"schema":{{"type":"object","properties":{properties}}}}}}}"#
            )
        };
        let ab = schema(r#"{"a":{"type":"string"},"b":{"type":"string"}}"#);
        let ba = schema(r#"{"b":{"type":"string"},"a":{"type":"string"}}"#);
        assert_ne!(with(&ab), with(&ba), "property order is meaningful in a schema");
        // Outside the schema, order still does not matter.
        let reordered = r#"{"json_schema":{"schema":{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}}},"strict":true,"name":"s"},"type":"json_schema"}"#;
        assert_eq!(with(&ab), with(reordered));
        let tools = |tools: &str| {
            key(
                "",
                &format!(
                    r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"tools":{tools}}}"#
                ),
            )
        };
        assert_eq!(tools(r#"[{"p":1,"q":2}]"#), tools(r#"[{"q":2,"p":1}]"#));
    }
}
