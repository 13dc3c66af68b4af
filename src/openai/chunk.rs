//! What a streamed `chat.completion.chunk` shows, for the stream's content check and its
//! accounting: its choices' finish reasons and texts, and its usage.
//!
//! Every chunk of every stream is read here, so it is read in one pass over its text
//! (`json::walk`), which takes only these members and skips the rest; a chunk the walk is not
//! sure of (an escaped key, a member of an unusual type, a repeated member) is parsed in full,
//! and the parse decides. Both ways agree on every chunk the walk is sure of (a property test).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::chat::Usage;
use crate::json::text_size::NonEmpty;
use crate::json::walk::Walker;

/// What one chunk shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkFacts {
    pub choices: usize,
    /// A choice has a finish reason, whichever.
    pub finished: bool,
    /// A choice finished for `length`.
    pub length: bool,
    /// A choice finished for `content_filter`.
    pub content_filter: bool,
    /// A delta has non-empty `content`.
    pub content: bool,
    /// A delta has a non-empty `refusal`, `reasoning_content` or `reasoning`.
    pub other_text: bool,
    /// A delta has `tool_calls` (not null).
    pub tool_calls: bool,
    /// A delta has `tool_calls` that are not an empty list.
    pub calls: bool,
    /// Bytes of text: content, tool-call names and arguments.
    pub streamed: u64,
    /// Prompt and completion tokens, when the chunk has a usage.
    pub usage: Option<(u64, u64)>,
}

impl ChunkFacts {
    /// What `data` shows; none when it is not a chunk (not JSON, or a member of another type).
    pub fn read(data: &str) -> Option<Self> {
        walk(data).or_else(|| parse(data))
    }

    /// What the one pass reads; none when it is not sure. (Public for the property test that
    /// holds it to [`parsed`](Self::parsed).)
    pub fn walked(data: &str) -> Option<Self> {
        walk(data)
    }

    /// What the full parse reads; none when `data` is not a chunk.
    pub fn parsed(data: &str) -> Option<Self> {
        parse(data)
    }

    /// Whether the chunk is past the stream's opening (`stream::carries_content`).
    pub fn carries_content(&self) -> bool {
        self.usage.is_some() || self.finished || self.content || self.other_text || self.calls
    }

    fn finish(&mut self, reason: &[u8]) {
        self.finished = true;
        self.length |= reason == b"length";
        self.content_filter |= reason == b"content_filter";
    }
}

/// The one pass; none when it is not sure.
fn walk(data: &str) -> Option<ChunkFacts> {
    let mut facts = ChunkFacts::default();
    let (mut choices, mut usage) = (false, false);
    let mut walker = Walker::new(data);
    walker.members(|walker, key| match key {
        b"choices" => {
            first(&mut choices)?;
            if !walker.null() {
                facts.choices = walker.elements(|walker| choice(walker, &mut facts))?;
            }
            Some(())
        }
        b"usage" => {
            first(&mut usage)?;
            if !walker.null() {
                facts.usage = Some(usage_of(walker)?);
            }
            Some(())
        }
        _ => walker.skip(),
    })?;
    walker.at_end().then_some(facts)
}

/// Marks a member seen; none the second time (a parse refuses a repeated member).
fn first(seen: &mut bool) -> Option<()> {
    (!std::mem::replace(seen, true)).then_some(())
}

fn choice(walker: &mut Walker<'_>, facts: &mut ChunkFacts) -> Option<()> {
    let (mut finish, mut delta) = (false, false);
    walker.members(|walker, key| match key {
        b"finish_reason" => {
            first(&mut finish)?;
            if !walker.null() {
                let reason = walker.string()?;
                if reason.escaped {
                    return None;
                }
                facts.finish(reason.raw);
            }
            Some(())
        }
        b"delta" => {
            first(&mut delta)?;
            if walker.null() { Some(()) } else { delta_of(walker, facts) }
        }
        _ => walker.skip(),
    })
}

fn delta_of(walker: &mut Walker<'_>, facts: &mut ChunkFacts) -> Option<()> {
    const CONTENT: usize = 0;
    const TOOL_CALLS: usize = 4;
    let mut seen = [false; 5];
    walker.members(|walker, key| {
        let member = match key {
            b"content" => CONTENT,
            b"refusal" => 1,
            b"reasoning_content" => 2,
            b"reasoning" => 3,
            b"tool_calls" => TOOL_CALLS,
            _ => return walker.skip(),
        };
        first(&mut seen[member])?;
        if walker.null() {
            return Some(());
        }
        if member == TOOL_CALLS {
            let (calls, text) = tool_calls(walker)?;
            facts.tool_calls = true;
            facts.calls |= calls > 0;
            facts.streamed += text;
            return Some(());
        }
        let text = walker.string()?.decoded_len;
        if member == CONTENT {
            facts.content |= text > 0;
            facts.streamed += text as u64;
        } else {
            facts.other_text |= text > 0;
        }
        Some(())
    })
}

/// How many calls, and the bytes of their function names and arguments.
fn tool_calls(walker: &mut Walker<'_>) -> Option<(usize, u64)> {
    let mut text = 0;
    let calls = walker.elements(|walker| {
        let mut function = false;
        walker.members(|walker, key| {
            if key != b"function" {
                return walker.skip();
            }
            first(&mut function)?;
            let (mut name, mut arguments) = (false, false);
            walker.members(|walker, key| {
                let seen = match key {
                    b"name" => &mut name,
                    b"arguments" => &mut arguments,
                    _ => return walker.skip(),
                };
                first(seen)?;
                text += walker.string()?.decoded_len as u64;
                Some(())
            })
        })
    })?;
    Some((calls, text))
}

/// A usage's prompt and completion tokens (`total_tokens`, when there, must be a count too).
fn usage_of(walker: &mut Walker<'_>) -> Option<(u64, u64)> {
    let (mut prompt, mut completion, mut total) = (None, None, false);
    walker.members(|walker, key| {
        let count = match key {
            b"prompt_tokens" => &mut prompt,
            b"completion_tokens" => &mut completion,
            b"total_tokens" => {
                first(&mut total)?;
                return walker.u64().map(drop);
            }
            _ => return walker.skip(),
        };
        if count.is_some() {
            return None;
        }
        *count = Some(walker.u64()?);
        Some(())
    })?;
    Some((prompt?, completion?))
}

/// The full parse, for what the walk is not sure of.
fn parse(data: &str) -> Option<ChunkFacts> {
    #[derive(Deserialize)]
    struct Chunk<'a> {
        #[serde(borrow)]
        choices: Option<Vec<Choice<'a>>>,
        usage: Option<Usage>,
    }
    #[derive(Deserialize)]
    struct Choice<'a> {
        #[serde(borrow)]
        finish_reason: Option<Cow<'a, str>>,
        delta: Option<Delta>,
    }
    #[derive(Deserialize)]
    struct Delta {
        content: Option<NonEmpty>,
        refusal: Option<NonEmpty>,
        reasoning_content: Option<NonEmpty>,
        reasoning: Option<NonEmpty>,
        tool_calls: Option<Value>,
    }
    let chunk: Chunk<'_> = serde_json::from_str(data).ok()?;
    let choices = chunk.choices.unwrap_or_default();
    let mut facts = ChunkFacts {
        choices: choices.len(),
        usage: chunk.usage.map(|usage| (usage.prompt_tokens, usage.completion_tokens)),
        ..ChunkFacts::default()
    };
    for choice in choices {
        if let Some(reason) = &choice.finish_reason {
            facts.finish(reason.as_bytes());
        }
        let Some(delta) = choice.delta else { continue };
        let text = |text: &Option<NonEmpty>| text.as_ref().is_some_and(|text| text.0);
        facts.content |= text(&delta.content);
        facts.other_text |=
            text(&delta.refusal) || text(&delta.reasoning_content) || text(&delta.reasoning);
        facts.streamed += delta.content.as_ref().map_or(0, |content| content.1);
        if let Some(calls) = &delta.tool_calls {
            facts.tool_calls = true;
            facts.calls |= !matches!(calls, Value::Array(calls) if calls.is_empty());
            facts.streamed += tool_call_text(calls);
        }
    }
    Some(facts)
}

/// Bytes of the function names and arguments in a chunk's `tool_calls`.
fn tool_call_text(tool_calls: &Value) -> u64 {
    let calls = tool_calls.as_array().map_or(&[][..], Vec::as_slice);
    let text = |call: &Value, field: &str| {
        call["function"][field].as_str().map_or(0, |text| text.len() as u64)
    };
    calls.iter().map(|call| text(call, "name") + text(call, "arguments")).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_chunks_are_read_in_one_pass() {
        let chunks = [
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"fp","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#"{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"Hi \"there\"\n"},"logprobs":{"content":[{"token":"Hi","logprob":-0.1,"bytes":[72,105],"top_logprobs":[]}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get","arguments":"{\"a\":"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"},{"index":1,"finish_reason":"content_filter"}]}"#,
            r#"{"id":"x","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0}}}"#,
            " {\n  \"choices\" : [ { \"delta\" : { \"reasoning_content\" : \"hm\" } } ]\n} ",
        ];
        for chunk in chunks {
            assert_eq!(walk(chunk), parse(chunk), "{chunk}");
            assert!(walk(chunk).is_some(), "{chunk}");
        }
        let facts = |chunk: &str| walk(chunk).unwrap_or_default();
        assert!(!facts(chunks[0]).carries_content());
        assert_eq!(facts(chunks[1]).streamed, 11);
        assert!(facts(chunks[1]).content);
        assert_eq!((facts(chunks[2]).streamed, facts(chunks[2]).calls), (8, true));
        let finished = facts(chunks[3]);
        assert!(finished.length && finished.content_filter && finished.finished);
        assert!(finished.carries_content() && finished.choices == 2);
        assert_eq!((facts(chunks[4]).choices, facts(chunks[4]).usage), (0, Some((9, 12))));
        assert!(facts(chunks[5]).other_text && facts(chunks[5]).carries_content());
    }

    #[test]
    fn what_the_walk_is_not_sure_of_the_parse_decides() {
        for (chunk, read) in [
            (r#"{"choices":[{"delta":{"content":["a"]}}]}"#, true),
            (r#"{"choices":[{"finish_reason":"l\u0065ngth"}]}"#, true),
            (r#"{"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":null}}"#, false),
            (r#"{"choices":[],"choices":[]}"#, false),
            (r#"{"choices":[{"delta":{"tool_calls":{}}}]}"#, true),
            (r#"{"choices":[1]}"#, false),
            ("not a chunk", false),
        ] {
            assert_eq!(walk(chunk), None, "{chunk}");
            assert_eq!(ChunkFacts::read(chunk).is_some(), read, "{chunk}");
        }
        let escaped = ChunkFacts::read(r#"{"choices":[{"finish_reason":"l\u0065ngth"}]}"#);
        assert!(escaped.is_some_and(|facts| facts.length));
    }
}
