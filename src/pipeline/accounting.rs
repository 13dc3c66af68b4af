//! Tokens, cost and quality of upstream answers, from the `usage` and `finish_reason` they carry.
//!
//! Streams are accounted as they pass: the gateway always asks a streaming upstream for its
//! usage chunk (`stream_options.include_usage`) and reads it here, so streamed and non-streamed
//! answers count the same tokens and cost. (The HTTP edge removes that chunk for clients that
//! did not ask for it.) A stream that breaks before its end is not counted in the metrics: its
//! usage never arrived. The per-key token limits are still told what it cost: a stream without
//! usage (its client left, it broke, or the upstream sends none) is charged a quarter of the
//! bytes of the text it streamed (content and tool-call names and arguments, the same estimator
//! as the prompt's), settled when the stream is dropped, however it ends. A stream with usage is
//! settled with that usage, once.

use std::sync::Arc;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use super::call::{Spent, UsageHook};
use super::observe::{Observer, observe};
use crate::anthropic::Usage as MessagesUsage;
use crate::config::Price;
use crate::dialect::Api;
use crate::json::text_size::NonEmpty;
use crate::metrics::{Metrics, QualityFlag};
use crate::openai::chat::{AN_ERROR_OBJECT, NO_CHOICES, Usage, completion_problem};
use crate::openai::chunk::ChunkFacts;
use crate::providers::{ChunkStream, Reply};
use crate::telemetry::traces;

/// Where an answer's numbers go.
pub struct Accounting {
    /// The dialect of the answer (the request's).
    pub api: Api,
    pub metrics: Arc<Metrics>,
    /// The configured model alias.
    pub model: Arc<str>,
    pub provider: Arc<str>,
    /// The upstream model's price, when the pricing table has it.
    pub price: Option<Price>,
    /// Also told the usage (per-key token limits).
    pub hook: Option<UsageHook>,
    /// The attempt's span (`Span::none()` while traces are off): told the usage and the model
    /// that answered, and kept open until a stream has passed.
    pub span: tracing::Span,
}

/// Reads a whole chat answer once, for the attempt and for accounting: why it is not a
/// completion (`openai::chat::completion_problem`), or what it shows (none for a completion this
/// cannot read, a `usage` of another shape say, which is answered but not accounted).
pub(super) fn read_completion(body: &[u8]) -> Result<Option<Observed>, &'static str> {
    match serde_json::from_slice::<Completion>(body) {
        Ok(Completion { error: Some(_), .. }) => Err(AN_ERROR_OBJECT),
        Ok(Completion { choices: None, .. }) => Err(NO_CHOICES),
        Ok(Completion { choices: Some(choices), usage, error: None }) => {
            Ok(Some(Observed::choices(&choices, usage)))
        }
        // Not what accounting reads: the shape check alone says whether it is a completion.
        Err(_) => completion_problem(body).map_or(Ok(None), Err),
    }
}

/// What was seen of one answer.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Observed {
    usage: Option<(u64, u64)>,
    /// Bytes of streamed text (content, tool-call names and arguments), for a stream's cost
    /// when no usage arrives.
    streamed: u64,
    has_content: bool,
    truncated: bool,
    filtered: bool,
    /// A Messages stream's counts so far: `message_start`'s, updated by each `message_delta`.
    counts: MessagesUsage,
}

#[derive(Deserialize)]
struct Completion {
    choices: Option<Vec<CompletionChoice>>,
    usage: Option<Usage>,
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct CompletionChoice {
    finish_reason: Option<Finish>,
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    content: Option<NonEmpty>,
    tool_calls: Option<IgnoredAny>,
}

/// The finish reasons accounting tells apart; the others are all alike here.
#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Finish {
    Length,
    ContentFilter,
    #[serde(other)]
    Other,
}

/// What accounting reads of a Messages stream event.
#[derive(Deserialize)]
struct MessagesEvent<'a> {
    #[serde(rename = "type")]
    kind: EventKind,
    message: Option<MessageHead>,
    content_block: Option<BlockHead>,
    #[serde(borrow)]
    delta: Option<EventDelta<'a>>,
    usage: Option<MessagesUsage>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum EventKind {
    MessageStart,
    ContentBlockStart,
    ContentBlockDelta,
    MessageDelta,
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct MessageHead {
    usage: Option<MessagesUsage>,
}

#[derive(Deserialize)]
struct BlockHead {
    #[serde(rename = "type")]
    kind: BlockKind,
    /// A tool use's name.
    name: Option<NonEmpty>,
}

#[derive(Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum BlockKind {
    Text,
    #[serde(other)]
    Other,
}

/// A `content_block_delta`'s delta (one of its texts) or a `message_delta`'s (the stop reason).
#[derive(Deserialize)]
struct EventDelta<'a> {
    text: Option<NonEmpty>,
    partial_json: Option<NonEmpty>,
    thinking: Option<NonEmpty>,
    #[serde(borrow)]
    stop_reason: Option<std::borrow::Cow<'a, str>>,
}

impl Accounting {
    /// Accounts a whole answer: a `chat.completion`, a Message, a Response or embeddings.
    pub fn complete(&self, body: &[u8]) {
        let seen = match self.api {
            Api::Chat => read_completion(body).ok().flatten(),
            Api::Messages => Observed::message(body),
            Api::Responses => Observed::response(body),
            Api::Embeddings => Observed::embeddings(body),
        };
        self.whole(body, seen);
    }

    /// Accounts `reply`, a whole answer with what `read_completion` saw of it when it was read
    /// already (none: read it here).
    pub fn account_read(self, reply: Reply, seen: Option<Observed>) -> Reply {
        match (reply, seen) {
            (Reply::Complete(body), Some(seen)) => {
                self.whole(&body, Some(seen));
                Reply::Complete(body)
            }
            (reply, _) => self.account(reply),
        }
    }

    fn whole(&self, body: &[u8], seen: Option<Observed>) {
        if !self.span.is_none() {
            traces::response_model(&self.span, body);
        }
        if let Some(seen) = seen {
            self.record(&seen);
            if seen.usage.is_some() {
                self.settle(&seen);
            }
        }
    }

    /// Accounts a stream as it passes.
    /// Accounts `reply`: a whole answer now, a stream as it passes.
    pub fn account(self, reply: Reply) -> Reply {
        match reply {
            Reply::Complete(body) => {
                self.complete(&body);
                Reply::Complete(body)
            }
            Reply::Stream(chunks) => Reply::Stream(self.stream(chunks)),
        }
    }

    pub fn stream(self, chunks: ChunkStream) -> ChunkStream {
        // With no span there is no model to find.
        let model_seen = self.span.is_none();
        observe(
            chunks,
            StreamAccounting { accounting: self, seen: Observed::default(), model_seen },
        )
    }

    fn record(&self, seen: &Observed) {
        let provider = &self.provider;
        if let Some((prompt, completion)) = seen.usage {
            traces::usage(&self.span, prompt, completion);
            let cost = self.price.map_or(0.0, |price| price.cost(prompt, completion));
            self.metrics.record_usage(&self.model, provider, prompt, completion, cost);
        }
        let flag = if seen.filtered {
            QualityFlag::ContentFilter
        } else if seen.truncated {
            QualityFlag::Truncated
        } else if !seen.has_content {
            QualityFlag::Empty
        } else {
            QualityFlag::Ok
        };
        self.metrics.record_quality(&self.model, provider, flag);
    }

    /// Tells the hook what the answer cost: its usage, or else an estimate of what it streamed.
    fn settle(&self, seen: &Observed) {
        let Some(hook) = &self.hook else { return };
        hook(match seen.usage {
            Some((prompt, completion)) => Spent::Reported { prompt, completion },
            None => Spent::Streamed { completion: seen.streamed.div_ceil(4) },
        });
    }
}

/// A stream's accounting: what it showed so far, recorded when it ends cleanly and settled when
/// it is dropped (after a clean end too: `ended` takes the observer, which is then dropped), so
/// every stream is settled exactly once, whether it ended, broke or lost its client.
struct StreamAccounting {
    accounting: Accounting,
    seen: Observed,
    /// The answering model is on the span (or there is no span to tell).
    model_seen: bool,
}

impl Observer for StreamAccounting {
    fn chunk(&mut self, chunk: &str) {
        // An OpenTelemetry span ends when it was last exited: entered per chunk, the attempt's
        // span lasts as long as its stream (a no-op without traces).
        let _entered = self.accounting.span.enter();
        if !self.model_seen {
            self.model_seen = traces::response_model(&self.accounting.span, chunk.as_bytes());
        }
        match self.accounting.api {
            Api::Chat => self.seen.chunk(chunk),
            Api::Messages => self.seen.event(chunk),
            Api::Responses => self.seen.responses_event(chunk),
            // Never streamed.
            Api::Embeddings => {}
        }
    }

    fn ended(self) {
        self.accounting.record(&self.seen);
    }
}

impl Drop for StreamAccounting {
    fn drop(&mut self) {
        let _entered = self.accounting.span.enter();
        self.accounting.settle(&self.seen);
    }
}

impl Observed {
    /// What a whole `chat.completion`'s choices and usage show.
    fn choices(choices: &[CompletionChoice], usage: Option<Usage>) -> Self {
        let mut seen = Self {
            usage: usage.map(|u| (u.prompt_tokens, u.completion_tokens)),
            ..Self::default()
        };
        for choice in choices {
            seen.finish(choice.finish_reason);
            if let Some(message) = &choice.message {
                let text = message.content.as_ref().is_some_and(|content| content.0);
                seen.has_content |= text || message.tool_calls.is_some();
            }
        }
        seen
    }

    fn finish(&mut self, reason: Option<Finish>) {
        match reason {
            Some(Finish::Length) => self.truncated = true,
            Some(Finish::ContentFilter) => self.filtered = true,
            Some(Finish::Other) | None => {}
        }
    }

    /// Takes in one chunk.
    fn chunk(&mut self, data: &str) {
        let Some(facts) = ChunkFacts::read(data) else { return };
        self.truncated |= facts.length;
        self.filtered |= facts.content_filter;
        self.has_content |= facts.content || facts.tool_calls;
        self.streamed += facts.streamed;
        if facts.usage.is_some() {
            self.usage = facts.usage;
        }
    }
}

/// What accounting reads of a Message and of Messages events.
impl Observed {
    /// What a whole Message shows; none when it is not one.
    fn message(body: &[u8]) -> Option<Self> {
        let message: Value = serde_json::from_slice(body).ok()?;
        if message["type"] != "message" {
            return None;
        }
        let mut seen = Self::default();
        let usage = MessagesUsage::of(&message["usage"]);
        seen.usage = Some((usage.input(), usage.output()));
        seen.has_content = message["content"].as_array().is_some_and(|blocks| !blocks.is_empty());
        seen.stop_reason(message["stop_reason"].as_str());
        Some(seen)
    }

    /// Takes in one Messages event: the prompt from `message_start`, content and streamed text
    /// from the blocks and deltas, the stop reason and final usage from `message_delta`. Read
    /// like chat chunks, without copying the text.
    fn event(&mut self, data: &str) {
        let Ok(event) = serde_json::from_str::<MessagesEvent<'_>>(data) else { return };
        match event.kind {
            EventKind::MessageStart => {
                self.usage = None;
                self.counts = event.message.and_then(|m| m.usage).unwrap_or_default();
            }
            EventKind::ContentBlockStart => {
                let Some(block) = event.content_block else { return };
                self.has_content |= block.kind != BlockKind::Text;
                self.streamed += block.name.map_or(0, |name| name.1);
            }
            EventKind::ContentBlockDelta => {
                let Some(delta) = event.delta else { return };
                let text = delta.text.or(delta.partial_json).or(delta.thinking);
                self.has_content |= text.as_ref().is_some_and(|text| text.0);
                self.streamed += text.map_or(0, |text| text.1);
            }
            EventKind::MessageDelta => {
                self.stop_reason(event.delta.and_then(|d| d.stop_reason).as_deref());
                if let Some(usage) = event.usage {
                    self.counts.update(usage);
                    self.usage = Some((self.counts.input(), self.counts.output()));
                }
            }
            EventKind::Other => {}
        }
    }

    fn stop_reason(&mut self, reason: Option<&str>) {
        match reason {
            Some("max_tokens" | "model_context_window_exceeded") => self.truncated = true,
            Some("refusal") => self.filtered = true,
            _ => {}
        }
    }
}

/// What accounting reads of a Response, whole or as the `response` of a terminal event.
#[derive(Deserialize)]
struct ResponseSeen {
    status: Option<String>,
    #[serde(default)]
    output: Vec<IgnoredAny>,
    incomplete_details: Option<IncompleteDetails>,
    usage: Option<ResponseUsage>,
}

#[derive(Deserialize)]
struct IncompleteDetails {
    reason: Option<String>,
}

#[derive(Clone, Copy, Deserialize)]
struct ResponseUsage {
    input_tokens: u64,
    output_tokens: u64,
}

/// What accounting reads of a Responses stream event.
#[derive(Deserialize)]
struct ResponsesEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    delta: Option<NonEmpty>,
    response: Option<ResponseSeen>,
}

#[derive(Deserialize)]
struct EmbeddingsSeen {
    #[serde(default)]
    data: Vec<IgnoredAny>,
    usage: Option<EmbeddingsUsage>,
}

#[derive(Deserialize)]
struct EmbeddingsUsage {
    prompt_tokens: u64,
}

/// What accounting reads of a Response and of Responses events, and of embeddings.
impl Observed {
    /// What a whole Response shows; none when it is not one.
    fn response(body: &[u8]) -> Option<Self> {
        let response = serde_json::from_slice::<ResponseSeen>(body).ok()?;
        let mut seen = Self::default();
        seen.finished(&response);
        Some(seen)
    }

    fn finished(&mut self, response: &ResponseSeen) {
        self.usage = response.usage.map(|usage| (usage.input_tokens, usage.output_tokens));
        self.has_content |= !response.output.is_empty();
        if response.status.as_deref() == Some("incomplete") {
            match response.incomplete_details.as_ref().and_then(|d| d.reason.as_deref()) {
                Some("content_filter") => self.filtered = true,
                _ => self.truncated = true,
            }
        }
    }

    /// Takes in one Responses event: text and arguments as they stream, the usage and status
    /// from the terminal event's Response.
    fn responses_event(&mut self, data: &str) {
        let Ok(event) = serde_json::from_str::<ResponsesEvent<'_>>(data) else { return };
        match &*event.kind {
            "response.output_text.delta"
            | "response.refusal.delta"
            | "response.function_call_arguments.delta"
            | "response.reasoning_summary_text.delta" => {
                let delta = event.delta.unwrap_or(NonEmpty(false, 0));
                self.has_content |= delta.0;
                self.streamed += delta.1;
            }
            "response.completed" | "response.incomplete" => {
                if let Some(response) = &event.response {
                    self.finished(response);
                }
            }
            _ => {}
        }
    }

    /// What an embeddings list shows: its input tokens (embeddings have no output).
    fn embeddings(body: &[u8]) -> Option<Self> {
        let list = serde_json::from_slice::<EmbeddingsSeen>(body).ok()?;
        Some(Self {
            usage: list.usage.map(|usage| (usage.prompt_tokens, 0)),
            has_content: !list.data.is_empty(),
            ..Self::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_usage_content_and_finish_reasons_from_a_completion() {
        let seen = |choice: &str| {
            let body = format!(
                r#"{{"id":"x","choices":[{choice}],"usage":{{"prompt_tokens":5,"completion_tokens":3}}}}"#
            );
            read_completion(body.as_bytes()).unwrap().unwrap()
        };
        let answered = seen(
            r#"{"message":{"role":"assistant","content":"Hi \"there\""},"finish_reason":"stop"}"#,
        );
        assert_eq!(
            answered,
            Observed {
                usage: Some((5, 3)),
                streamed: 0,
                has_content: true,
                truncated: false,
                filtered: false,
                counts: MessagesUsage::default(),
            }
        );
        assert!(!seen(r#"{"message":{"content":""},"finish_reason":"stop"}"#).has_content);
        assert!(!seen(r#"{"message":{"content":null},"finish_reason":"stop"}"#).has_content);
        assert!(!seen(r#"{"message":{"content":[]},"finish_reason":"stop"}"#).has_content);
        assert!(seen(r#"{"message":{"content":[{"type":"text","text":"a"}]}}"#).has_content);
        assert!(
            seen(r#"{"message":{"content":null,"tool_calls":[]},"finish_reason":"tool_calls"}"#)
                .has_content
        );
        assert!(seen(r#"{"message":{"content":"cut"},"finish_reason":"length"}"#).truncated);
        assert!(seen(r#"{"message":{"content":""},"finish_reason":"content_filter"}"#).filtered);
        assert!(!seen(r#"{"message":{"content":"x"},"finish_reason":"something_new"}"#).truncated);
    }

    #[test]
    fn a_whole_chat_answer_that_is_not_a_completion_says_why_and_an_odd_one_is_not_accounted() {
        let problem = |body: &str| read_completion(body.as_bytes()).err();
        assert_eq!(problem(""), Some("upstream answered 200 with an empty body"));
        assert_eq!(
            problem("not json"),
            Some("upstream answered 200 with a body that is not a JSON completion")
        );
        let error = r#"{"error":{"message":"overloaded"},"choices":[]}"#;
        assert_eq!(problem(error), Some("upstream answered 200 with an error object"));
        assert_eq!(problem(r#"{"id":"x"}"#), Some("upstream answered 200 without choices"));
        assert_eq!(problem(r#"{"choices":null}"#), Some("upstream answered 200 without choices"));
        // The same verdicts as the shape check alone, which translated answers get.
        for body in ["", "not json", error, r#"{"id":"x"}"#, r#"{"choices":null}"#] {
            assert_eq!(problem(body), completion_problem(body.as_bytes()), "{body}");
        }
        // Completions this cannot read are answered, not accounted.
        assert_eq!(read_completion(br#"{"choices":"odd"}"#), Ok(None));
        assert_eq!(read_completion(br#"{"choices":[],"usage":{"prompt_tokens":"x"}}"#), Ok(None));
        assert_eq!(
            read_completion(br#"{"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":1}}"#)
                .map(|seen| seen.and_then(|seen| seen.usage)),
            Ok(Some((2, 1)))
        );
    }

    #[test]
    fn reads_usage_content_and_stop_reasons_from_a_message_and_its_events() {
        let body = br#"{"type":"message","content":[{"type":"text","text":"hi"}],"stop_reason":"max_tokens",
            "usage":{"input_tokens":3,"cache_read_input_tokens":10,"output_tokens":4}}"#;
        let seen = Observed::message(body).unwrap();
        assert_eq!((seen.usage, seen.has_content, seen.truncated), (Some((13, 4)), true, true));
        assert_eq!(Observed::message(br#"{"type":"error"}"#), None);
        let mut streamed = Observed::default();
        for event in [
            r#"{"type":"message_start","message":{"usage":{"input_tokens":9,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"refusal"},"usage":{"output_tokens":6}}"#,
        ] {
            assert!(streamed.usage.is_none(), "usage comes with message_delta");
            streamed.event(event);
        }
        assert_eq!((streamed.usage, streamed.streamed), (Some((9, 6)), 5));
        assert!(streamed.has_content && streamed.filtered);
    }

    #[test]
    fn reads_usage_content_and_finish_reasons_from_chunks() {
        let mut seen = Observed::default();
        seen.chunk(r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#);
        assert!(!seen.has_content);
        seen.chunk(r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#);
        seen.chunk(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#);
        assert_eq!(seen.usage, None);
        seen.chunk(
            r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}}"#,
        );
        assert_eq!(
            seen,
            Observed {
                usage: Some((7, 2)),
                streamed: 2,
                has_content: true,
                truncated: true,
                filtered: false,
                counts: MessagesUsage::default(),
            }
        );
        // vLLM-style usage chunks carry `choices: null`.
        let mut vllm = Observed::default();
        vllm.chunk(r#"{"choices":null,"usage":{"prompt_tokens":1,"completion_tokens":1}}"#);
        assert_eq!(vllm.usage, Some((1, 1)));
    }

    #[test]
    fn reads_usage_content_and_status_from_a_response_and_its_events() {
        let body = br#"{"object":"response","status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},
            "output":[{"type":"message"}],"usage":{"input_tokens":8,"output_tokens":2,"total_tokens":10}}"#;
        let seen = Observed::response(body).unwrap();
        assert_eq!((seen.usage, seen.has_content, seen.truncated), (Some((8, 2)), true, true));
        let mut streamed = Observed::default();
        for event in [
            r#"{"type":"response.created","sequence_number":0,"response":{"status":"in_progress","output":[]}}"#,
            r#"{"type":"response.output_text.delta","sequence_number":3,"delta":"Hello"}"#,
            r#"{"type":"response.completed","sequence_number":6,"response":{"status":"completed","output":[{}],
                "usage":{"input_tokens":4,"output_tokens":1}}}"#,
        ] {
            assert!(streamed.usage.is_none(), "usage comes with the terminal event");
            streamed.responses_event(event);
        }
        assert_eq!(
            (streamed.usage, streamed.streamed, streamed.has_content),
            (Some((4, 1)), 5, true)
        );
        let embeddings = br#"{"object":"list","data":[{"embedding":[0.1]}],"usage":{"prompt_tokens":3,"total_tokens":3}}"#;
        assert_eq!(Observed::embeddings(embeddings).unwrap().usage, Some((3, 0)));
    }

    use std::sync::Mutex;

    use futures_util::{StreamExt, stream};

    /// An accounting whose hook records every settlement.
    fn accounting() -> (Accounting, Arc<Mutex<Vec<Spent>>>) {
        let spent = Arc::new(Mutex::new(Vec::new()));
        let hook: UsageHook = {
            let spent = Arc::clone(&spent);
            Arc::new(move |cost| spent.lock().unwrap().push(cost))
        };
        let accounting = Accounting {
            api: Api::Chat,
            metrics: Arc::new(Metrics::new().unwrap()),
            model: Arc::from("m"),
            provider: Arc::from("p"),
            price: None,
            hook: Some(hook),
            span: tracing::Span::none(),
        };
        (accounting, spent)
    }

    fn content(text: &str) -> String {
        format!(
            r#"{{"choices":[{{"index":0,"delta":{{"content":"{text}"}},"finish_reason":null}}]}}"#
        )
    }

    fn chunks(items: Vec<String>) -> ChunkStream {
        stream::iter(items.into_iter().map(Ok)).boxed()
    }

    #[tokio::test]
    async fn a_stream_that_ends_with_usage_is_settled_once_with_that_usage() {
        let (accounting, spent) = accounting();
        let usage = r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2}}"#;
        let out: Vec<_> =
            accounting.stream(chunks(vec![content("Hi"), usage.to_owned()])).collect().await;
        assert_eq!(out.len(), 2);
        assert_eq!(*spent.lock().unwrap(), [Spent::Reported { prompt: 7, completion: 2 }]);
    }

    #[tokio::test]
    async fn a_stream_dropped_by_its_client_is_charged_what_it_streamed() {
        let (accounting, spent) = accounting();
        let tool = r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{\"a\":1}"}}]}}]}"#;
        let mut stream = accounting.stream(chunks(vec![
            content(&"x".repeat(4000)),
            tool.to_owned(),
            content("never read"),
        ]));
        assert!(stream.next().await.is_some());
        assert!(stream.next().await.is_some());
        assert!(spent.lock().unwrap().is_empty(), "nothing is settled while it runs");
        drop(stream);
        // 4000 bytes of content, then "f" and `{"a":1}`: 4008 bytes.
        assert_eq!(*spent.lock().unwrap(), [Spent::Streamed { completion: 1002 }]);
    }

    #[tokio::test]
    async fn a_stream_that_ends_without_usage_is_charged_what_it_streamed_once() {
        let (accounting, spent) = accounting();
        let out: Vec<_> = accounting.stream(chunks(vec![content("abcdefgh")])).collect().await;
        assert_eq!(out.len(), 1);
        assert_eq!(*spent.lock().unwrap(), [Spent::Streamed { completion: 2 }]);
    }
}
