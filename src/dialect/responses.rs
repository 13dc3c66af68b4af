//! OpenAI Responses in the pipeline: the request as it travels (the checked body, the
//! conversation its `previous_response_id` names when this gateway kept it, and its translation
//! for chat targets, made once), and what the stages need to know of a Response: which stream
//! events carry content, how a stream ends, how a stream adds up to a Response (its terminal
//! event carries it whole) and how a Response is streamed again, and the Response a degraded
//! reply is.
//!
//! A conversation survives a provider outage (SPEC §4): a request that continues a response goes
//! as is (with its `previous_response_id`) to the provider that produced and stored it; to any
//! other target it goes as the whole conversation, the kept items followed by its own input,
//! without the id. The kept conversation is looked up before the request enters the pipeline
//! (`crate::conversations`), so the routing and every attempt see it.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use crate::failure::Refusal;
use crate::openai::chat::ChatRequest;
use crate::openai::responses::ResponsesRequest;
pub use crate::translate::responses_chat::stream::events_of;
use crate::translate::responses_chat::{head, new_response_id, to_chat};

/// A Responses request on its way through the pipeline.
pub struct Responses {
    pub request: ResponsesRequest,
    /// The conversation `previous_response_id` names, when this gateway kept it.
    pub history: Option<History>,
    /// The body with the kept conversation in `input` and no `previous_response_id`, made on
    /// first use (for a target other than the one that stored the conversation).
    expanded: OnceLock<Map<String, Value>>,
    chat: OnceLock<Result<AsChat, Refusal>>,
    builtin_tool: OnceLock<bool>,
    /// What the whole conversation leaves out of the kept items (`reasoning`, when it had any).
    expanded_drops: Vec<String>,
}

/// A conversation as this gateway kept it: every item up to and including a response's output.
#[derive(Clone, Debug, PartialEq)]
pub struct History {
    /// The configured provider that produced the response ("" for a degraded reply).
    pub provider: String,
    /// The provider keeps the response itself (it served the Responses API natively and was
    /// not told `store: false`), so it can be continued there by id.
    pub stored_upstream: bool,
    /// The conversation's items: earlier input, earlier output, this input, this output.
    pub items: Vec<Value>,
}

/// The request as a chat target is sent it.
pub struct AsChat {
    /// Names the alias as its model; the provider swaps in its upstream model.
    pub request: ChatRequest,
    /// What the translation left out, by name (`x-ballast-dropped`).
    pub dropped: Vec<String>,
}

impl Responses {
    pub fn new(request: ResponsesRequest, history: Option<History>) -> Self {
        let reasoned =
            history.as_ref().is_some_and(|history| history.items.iter().any(is_reasoning));
        Self {
            expanded_drops: if reasoned { vec!["reasoning".to_owned()] } else { Vec::new() },
            request,
            history,
            expanded: OnceLock::new(),
            chat: OnceLock::new(),
            builtin_tool: OnceLock::new(),
        }
    }

    /// The chat translation, made on first use and kept for every chat target and retry.
    pub fn as_chat(&self) -> Result<&AsChat, &Refusal> {
        self.chat.get_or_init(|| self.translate()).as_ref()
    }

    fn translate(&self) -> Result<AsChat, Refusal> {
        if self.request.previous_response_id.is_some() && self.history.is_none() {
            return Err(Refusal::new(
                "previous_response_id",
                "This response is not one the gateway kept, so only an OpenAI target, which \
                 may have stored it, can continue it; none of this model's OpenAI targets \
                 could be used.",
            ));
        }
        let body = self.body_for_others();
        let translated = to_chat(body, &self.request.model)?;
        let chat = ChatRequest::from_bytes(translated.body.into())
            .map_err(|invalid| Refusal::new(invalid.param.unwrap_or("input"), invalid.message))?;
        // The kept reasoning items never reached the translation: named here.
        let mut dropped = self.expanded_drops.clone();
        for name in translated.dropped {
            if !dropped.contains(&name) {
                dropped.push(name);
            }
        }
        Ok(AsChat { request: chat, dropped })
    }

    /// The body for a target other than the one that stored the conversation: with the kept
    /// items in place of `previous_response_id`, or the client's body when it continues
    /// nothing (or nothing this gateway kept).
    fn body_for_others(&self) -> &Map<String, Value> {
        match &self.history {
            Some(history) => self.expanded.get_or_init(|| expand(&self.request, history)),
            None => self.request.body(),
        }
    }

    /// The body for an OpenAI-shaped Responses upstream, the configured provider `provider`,
    /// naming `upstream_model`: the client's bytes as they came (model swapped) when the request
    /// continues nothing, continues what this gateway did not keep, or continues a response
    /// `provider` itself stored; otherwise the whole conversation.
    pub fn native_body(
        &self,
        provider: &str,
        upstream_model: &str,
    ) -> Result<Vec<u8>, serde_json::Error> {
        match &self.history {
            Some(history) if !(history.stored_upstream && history.provider == provider) => {
                let mut body = self.body_for_others().clone();
                body.insert("model".to_owned(), json!(upstream_model));
                serde_json::to_vec(&body)
            }
            _ => self.request.for_upstream(upstream_model),
        }
    }

    /// What the body for the native target `provider` leaves out: the kept reasoning items,
    /// when it is sent the whole conversation.
    pub fn dropped_at(&self, provider: &str) -> &[String] {
        match &self.history {
            Some(_) if !self.continues_at(provider) => &self.expanded_drops,
            _ => &[],
        }
    }

    /// Whether a target, the configured provider `provider`, is where this request goes first:
    /// the one that stored the conversation it continues.
    pub fn continues_at(&self, provider: &str) -> bool {
        self.history.as_ref().is_some_and(|h| h.stored_upstream && h.provider == provider)
    }

    /// Whether a tool is one only OpenAI runs (any tool whose `type` is not `function`).
    /// Reads `tools` alone, once: a passthrough never parses the rest of the body.
    pub fn has_builtin_tool(&self) -> bool {
        *self.builtin_tool.get_or_init(|| {
            let Ok(Some(Value::Array(tools))) = self.request.member("tools") else { return false };
            tools.iter().any(|tool| tool.get("type").and_then(Value::as_str) != Some("function"))
        })
    }

    /// Whether the client allows the response to be kept (`store`, true unless it said false).
    pub fn may_keep(&self) -> bool {
        !matches!(self.request.member("store"), Ok(Some(Value::Bool(false))))
    }

    /// The conversation after `response`: the kept one (if any), this request's input, and the
    /// response's output.
    pub fn history_after(&self, response: &Value) -> Vec<Value> {
        let mut items = self.history.as_ref().map(|h| h.items.clone()).unwrap_or_default();
        items.extend(self.request.input_items());
        if let Some(output) = response.get("output").and_then(Value::as_array) {
            items.extend(output.iter().cloned());
        }
        items
    }
}

/// `request` continuing `history` without the upstream's help: the kept items, then the
/// request's own input, and no `previous_response_id`. Items' ids are left out and reasoning items
/// too: both refer to what the provider that made them stored, which another provider cannot read.
fn expand(request: &ResponsesRequest, history: &History) -> Map<String, Value> {
    let mut expanded = request.body().clone();
    expanded.remove("previous_response_id");
    let portable = history.items.iter().filter(|item| !is_reasoning(item)).map(|item| {
        let mut item = item.clone();
        if let Some(fields) = item.as_object_mut() {
            fields.remove("id");
        }
        item
    });
    let input: Vec<Value> = portable.chain(request.input_items()).collect();
    expanded.insert("input".to_owned(), Value::Array(input));
    expanded
}

/// Whether a Responses event is past the stream's opening (SPEC §4 "Streams never lie"): all
/// but `response.created`, `response.queued`, `response.in_progress`, the addition of a message
/// without content or of a reasoning item without a summary, and the addition of a part with
/// empty text. Parses the event only for those additions.
pub fn carries_content(data: &str) -> bool {
    match super::event_type(data).as_deref() {
        None | Some("response.created" | "response.queued" | "response.in_progress") => false,
        Some("response.output_item.added") => {
            let event: Value = serde_json::from_str(data).unwrap_or(Value::Null);
            let item = &event["item"];
            let empty = |key: &str| item[key].as_array().is_none_or(Vec::is_empty);
            match item["type"].as_str() {
                Some("message") => !empty("content"),
                Some("reasoning") => !empty("summary") || !empty("content"),
                _ => true,
            }
        }
        Some("response.content_part.added") => {
            let event: Value = serde_json::from_str(data).unwrap_or(Value::Null);
            let part = &event["part"];
            ["text", "refusal"]
                .iter()
                .any(|key| part[*key].as_str().is_some_and(|text| !text.is_empty()))
        }
        Some(_) => true,
    }
}

fn is_reasoning(item: &Value) -> bool {
    item.get("type").and_then(Value::as_str) == Some("reasoning")
}

/// Whether a whole answer is a Response (an upstream 200 that is not one is a failure). A
/// `failed` one is an upstream failure too.
pub fn is_response(body: &Value) -> bool {
    body["object"] == "response" && body["output"].is_array() && body["status"] != "failed"
}

/// Whether a Response is finished (`completed`, or `incomplete` at its token limit): only those
/// are kept in the cache, never one still `queued` or `in_progress` (`background`).
pub fn is_finished(response: &Value) -> bool {
    is_response(response) && matches!(response["status"].as_str(), Some("completed" | "incomplete"))
}

/// What an event of a Responses stream means for the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum EventRole {
    /// `response.completed` or `response.incomplete`: the answer is whole.
    End,
    /// `response.failed` or `error`: the upstream gave up.
    Failed,
    /// Any other.
    Part,
}

/// The role of the event named `name`.
pub fn event_role(name: &str) -> EventRole {
    match name {
        "response.completed" | "response.incomplete" => EventRole::End,
        "response.failed" | "error" => EventRole::Failed,
        _ => EventRole::Part,
    }
}

/// The Response a complete stream adds up to: the one its terminal event carries.
pub fn assemble(events: &[String]) -> Option<Value> {
    let last: Value = serde_json::from_str(events.last()?).ok()?;
    if event_role(last["type"].as_str()?) != EventRole::End {
        return None;
    }
    let response = last.get("response")?.clone();
    is_response(&response).then_some(response)
}

/// The Response of a degraded reply to `request`: `text` as its one message, no tokens.
pub fn degraded(request: &Map<String, Value>, model: &str, text: &str) -> Value {
    let id = new_response_id();
    let mut response = head(request, model, &id, crate::providers::unix_now());
    response.insert("status".to_owned(), json!("completed"));
    response.insert(
        "output".to_owned(),
        json!([{
            "id": format!("msg_degraded_{:016x}", rand::random::<u64>()),
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
        }]),
    );
    response.insert(
        "usage".to_owned(),
        json!({"input_tokens": 0, "input_tokens_details": {"cached_tokens": 0},
               "output_tokens": 0, "output_tokens_details": {"reasoning_tokens": 0},
               "total_tokens": 0}),
    );
    Value::Object(response)
}

/// What a Responses stream needs to end well when it breaks after content: the response it
/// opened (from `response.created`) and the next sequence number. The edge feeds it every event
/// and, on a break, sends [`StreamTail::failed`] (SPEC §4: `response.failed`, never a clean end).
#[derive(Default)]
pub struct StreamTail {
    response: Option<Value>,
    next_sequence: u64,
}

impl StreamTail {
    pub fn saw(&mut self, data: &str) {
        #[derive(serde::Deserialize)]
        struct Seen {
            sequence_number: Option<u64>,
        }
        if let Ok(Seen { sequence_number: Some(n) }) = serde_json::from_str::<Seen>(data) {
            self.next_sequence = n + 1;
        }
        // Only the opening event is parsed whole.
        if self.response.is_none()
            && super::event_type(data).as_deref() == Some("response.created")
            && let Ok(mut event) = serde_json::from_str::<Value>(data)
        {
            self.response = Some(event["response"].take());
        }
    }

    /// The events that end a broken stream: an `error` event (its fields both nested and flat,
    /// as PROTOCOL §12.4 advises, so every SDK reads it), then `response.failed`.
    pub fn failed(&mut self, code: &str, message: &str) -> [String; 2] {
        let error = json!({
            "type": "error",
            "sequence_number": self.next_sequence,
            "code": code,
            "message": message,
            "param": null,
            "error": {"type": "server_error", "code": code, "message": message, "param": null},
        });
        let mut response = self.response.take().unwrap_or_else(|| json!({"object": "response"}));
        if let Some(fields) = response.as_object_mut() {
            fields.insert("status".to_owned(), json!("failed"));
            fields.insert("error".to_owned(), json!({"code": "server_error", "message": message}));
        }
        let failed = json!({
            "type": "response.failed",
            "sequence_number": self.next_sequence + 1,
            "response": response,
        });
        self.next_sequence += 2;
        [error.to_string(), failed.to_string()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(provider: &str, stored: bool) -> History {
        History {
            provider: provider.to_owned(),
            stored_upstream: stored,
            items: vec![
                json!({"type": "message", "role": "user", "content": "first"}),
                json!({"type": "reasoning", "id": "rs_1", "summary": []}),
                json!({"id": "msg_1", "type": "message", "role": "assistant",
                       "content": [{"type": "output_text", "text": "one"}]}),
            ],
        }
    }

    fn request(body: &str) -> ResponsesRequest {
        ResponsesRequest::from_slice(body.as_bytes()).unwrap()
    }

    #[test]
    fn a_continuation_goes_as_is_to_the_provider_that_stored_it_and_whole_elsewhere() {
        let body = r#"{"model":"alias","previous_response_id":"resp_1","input":"second"}"#;
        let responses = Responses::new(request(body), Some(history("openai", true)));
        let as_is = responses.native_body("openai", "gpt-x").unwrap();
        assert_eq!(as_is, br#"{"model":"gpt-x","previous_response_id":"resp_1","input":"second"}"#);
        assert!(responses.continues_at("openai") && !responses.continues_at("azure"));
        assert!(responses.dropped_at("openai").is_empty());
        assert_eq!(responses.dropped_at("azure"), ["reasoning"], "named, never a silent drop");

        let whole: Value =
            serde_json::from_slice(&responses.native_body("azure", "dep").unwrap()).unwrap();
        assert_eq!(whole["model"], "dep");
        assert!(whole.get("previous_response_id").is_none());
        assert_eq!(
            whole["input"],
            json!([
                {"type": "message", "role": "user", "content": "first"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "one"}]},
                {"type": "message", "role": "user", "content": "second"},
            ]),
            "the kept items without ids or reasoning, then the new input"
        );
    }

    #[test]
    fn an_unknown_continuation_goes_as_is_and_cannot_be_translated() {
        let body = r#"{"model":"alias","previous_response_id":"resp_x","input":"more"}"#;
        let responses = Responses::new(request(body), None);
        assert_eq!(
            responses.native_body("openai", "m").unwrap(),
            br#"{"model":"m","previous_response_id":"resp_x","input":"more"}"#
        );
        assert_eq!(
            responses.as_chat().err().map(|r| r.param.as_str()),
            Some("previous_response_id")
        );
    }

    #[test]
    fn a_stream_adds_up_to_the_response_its_terminal_event_carries() {
        let response =
            json!({"id": "resp_1", "object": "response", "status": "completed", "output": []});
        let events = vec![
            json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1"}})
                .to_string(),
            json!({"type": "response.completed", "sequence_number": 1, "response": response})
                .to_string(),
        ];
        assert_eq!(assemble(&events), Some(response));
        assert_eq!(assemble(&events[..1]), None);
    }

    #[test]
    fn a_broken_stream_ends_with_an_error_and_a_failed_response_in_sequence() {
        let mut tail = StreamTail::default();
        tail.saw(
            &json!({"type": "response.created", "sequence_number": 0,
            "response": {"id": "resp_1", "object": "response", "status": "in_progress"}})
            .to_string(),
        );
        tail.saw(r#"{"type":"response.output_text.delta","sequence_number":4,"delta":"x"}"#);
        let [error, failed] = tail.failed("upstream_stream_error", "broke");
        let error: Value = serde_json::from_str(&error).unwrap();
        let failed: Value = serde_json::from_str(&failed).unwrap();
        assert_eq!(
            (error["type"].as_str(), error["sequence_number"].as_u64()),
            (Some("error"), Some(5))
        );
        assert_eq!(error["error"]["code"], "upstream_stream_error");
        assert_eq!(failed["type"], "response.failed");
        assert_eq!(failed["sequence_number"], 6);
        assert_eq!(failed["response"]["id"], "resp_1");
        assert_eq!(failed["response"]["status"], "failed");
    }
}
