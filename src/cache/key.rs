//! Cache keys: a hash of the normalised request within a scope (the auth key's space).
//!
//! The request is normalised by dropping what does not change the answer (`stream`,
//! `stream_options`, `user`) and writing the rest as canonical JSON (object keys sorted at every
//! level, no whitespace, strings with one escaping), so field order and formatting never change
//! the key. Two things are kept as the client wrote them, because they do change the answer:
//! numbers, spelled as sent (going through `f64` merged different numbers, such as two seeds
//! above 2^64), and the member order of a Structured Outputs schema
//! (`response_format.json_schema.schema`), where property order is the order the model
//! generates the properties in. The canonical text is read from the client's own bytes
//! (`ChatRequest::members`), not from a parsed `Value`, since a parsed number has lost its
//! spelling. The hash is BLAKE3 (cryptographic: a crafted collision would serve one request
//! another's answer). The key carries a format version: a change of normalisation or entry
//! format bumps it, and old entries are simply never read again.

use serde_json::Value;

use crate::openai::chat::ChatRequest;

/// Bump when normalisation or the stored entry format changes.
pub const KEY_VERSION: &str = "v2";
const IGNORED: [&str; 3] = ["stream", "stream_options", "user"];

/// `ballast:v2:<64 hex>` for `request` in the cache space `scope`.
pub fn cache_key(scope: &str, request: &ChatRequest) -> String {
    let mut canonical = Vec::with_capacity(256);
    canonical.extend_from_slice(scope.as_bytes());
    canonical.push(0);
    canonical.push(b'{');
    let mut first = true;
    // Already sorted by key, a later duplicate having won.
    for (key, text) in request.members() {
        if IGNORED.contains(&key) {
            continue;
        }
        if !first {
            canonical.push(b',');
        }
        first = false;
        write_string(key, &mut canonical);
        canonical.push(b':');
        let place = if key == "response_format" { Place::ResponseFormat } else { Place::Plain };
        match Reader::new(text).node() {
            Some(node) => write_canonical(&node, place, &mut canonical),
            // Not reached: the body was checked as JSON. The client's text still keys it.
            None => canonical.extend_from_slice(text),
        }
    }
    canonical.push(b'}');
    format!("ballast:{KEY_VERSION}:{}", blake3::hash(&canonical).to_hex())
}

/// Where a value sits, for the one subtree whose member order is kept.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Plain,
    /// The top-level `response_format`.
    ResponseFormat,
    /// `response_format.json_schema`.
    JsonSchema,
    /// `response_format.json_schema.schema` and everything in it: order kept.
    Schema,
}

impl Place {
    /// The place of the member `key` of an object at `self`.
    fn member(self, key: &str) -> Place {
        match (self, key) {
            (Place::ResponseFormat, "json_schema") => Place::JsonSchema,
            (Place::JsonSchema, "schema") | (Place::Schema, _) => Place::Schema,
            _ => Place::Plain,
        }
    }
}

/// A JSON value read from its text: numbers and literals keep their spelling.
enum Node<'a> {
    Object(Vec<(String, Node<'a>)>),
    Array(Vec<Node<'a>>),
    String(String),
    /// A number, `true`, `false` or `null`, as written.
    Literal(&'a [u8]),
}

/// Reads JSON text that was already checked (so it only has to be right on valid JSON), in one
/// pass: a deep body costs its size, not its size per level. The depth is bounded by the check
/// (serde_json's nesting limit), so the recursion is too.
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

    fn node(&mut self) -> Option<Node<'a>> {
        match self.peek()? {
            b'{' => {
                self.at += 1;
                let mut members = Vec::new();
                if self.peek()? == b'}' {
                    self.at += 1;
                    return Some(Node::Object(members));
                }
                loop {
                    let key = self.string()?;
                    self.expect(b':')?;
                    members.push((key, self.node()?));
                    match self.peek()? {
                        b',' => self.at += 1,
                        b'}' => break,
                        _ => return None,
                    }
                }
                self.at += 1;
                Some(Node::Object(members))
            }
            b'[' => {
                self.at += 1;
                let mut items = Vec::new();
                if self.peek()? == b']' {
                    self.at += 1;
                    return Some(Node::Array(items));
                }
                loop {
                    items.push(self.node()?);
                    match self.peek()? {
                        b',' => self.at += 1,
                        b']' => break,
                        _ => return None,
                    }
                }
                self.at += 1;
                Some(Node::Array(items))
            }
            b'"' => self.string().map(Node::String),
            _ => {
                let start = self.at;
                while self.text.get(self.at).is_some_and(|b| {
                    !matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r')
                }) {
                    self.at += 1;
                }
                let literal = self.text.get(start..self.at).filter(|l| !l.is_empty())?;
                Some(Node::Literal(literal))
            }
        }
    }

    /// A string, its escapes decoded (serde_json decodes the one string it is given).
    fn string(&mut self) -> Option<String> {
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
        serde_json::from_slice(self.text.get(start..self.at)?).ok()
    }
}

fn write_canonical(node: &Node<'_>, place: Place, out: &mut Vec<u8>) {
    match node {
        Node::Object(members) => {
            out.push(b'{');
            let mut order: Vec<&(String, Node<'_>)> = members.iter().collect();
            if place != Place::Schema {
                // Sorted, and of a repeated key the last one kept, as a parse into `Value` does.
                order.sort_by(|a, b| a.0.cmp(&b.0));
                let mut kept: Vec<&(String, Node<'_>)> = Vec::with_capacity(order.len());
                for member in order {
                    match kept.last_mut() {
                        Some(last) if last.0 == member.0 => *last = member,
                        _ => kept.push(member),
                    }
                }
                order = kept;
            }
            for (index, (key, value)) in order.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_canonical(value, place.member(key), out);
            }
            out.push(b'}');
        }
        Node::Array(items) => {
            out.push(b'[');
            let place = if place == Place::Schema { Place::Schema } else { Place::Plain };
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_canonical(item, place, out);
            }
            out.push(b']');
        }
        Node::String(text) => write_string(text, out),
        Node::Literal(text) => out.extend_from_slice(text),
    }
}

fn write_string(text: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(Value::from(text).to_string().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scope: &str, body: &str) -> String {
        cache_key(scope, &ChatRequest::from_slice(body.as_bytes()).unwrap())
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
