//! The built-in offline provider: deterministic answers derived from the prompt, with realistic
//! usage numbers and SSE chunking, the configured latency and an injectable failure rate.
//!
//! Equal prompts get equal answers (the text is drawn from a fixed vocabulary by a seeded
//! generator), so streamed and non-streamed calls can be compared. With `tools` and a user turn
//! last it calls a tool, and after a `tool` turn it answers in text, so a tool round trip works.
//! Tokens are counted as the real APIs roughly do: about four characters of prompt per token,
//! and one token per generated word (each word is one streamed chunk).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, stream};
use rand::Rng;
use serde_json::{Map, Value, json};

use super::{Reply, content_ready, mock_embeddings, unix_now};
use crate::config::{MockBadAnswer, MockSettings};
use crate::failure::Failure;
use crate::openai::chat::{
    AssistantMessage, ChatCompletion, ChatRequest, Choice, FunctionCall, ToolCall, Usage,
};
use crate::openai::embeddings::EmbeddingsRequest;
use crate::openai::stream::{carries_content, chunks_of};
use crate::tokens::max_output_tokens;

const VOCABULARY: [&str; 48] = [
    "the",
    "gateway",
    "answers",
    "quickly",
    "while",
    "every",
    "provider",
    "stays",
    "healthy",
    "requests",
    "flow",
    "through",
    "a",
    "steady",
    "stream",
    "of",
    "tokens",
    "and",
    "latency",
    "remains",
    "low",
    "because",
    "retries",
    "are",
    "bounded",
    "by",
    "budgets",
    "cache",
    "hits",
    "save",
    "money",
    "when",
    "models",
    "repeat",
    "themselves",
    "operators",
    "sleep",
    "well",
    "at",
    "night",
    "with",
    "clear",
    "metrics",
    "alerts",
    "dashboards",
    "failover",
    "keeps",
    "working",
];
const MAX_N: u64 = 128;

pub(super) struct Mock {
    name: Arc<str>,
    latency: Duration,
    chunk_interval: Duration,
    failure_rate: f64,
    failure_status: http::StatusCode,
    bad_answer: Option<(MockBadAnswer, f64)>,
    context_limit: Option<u64>,
}

impl Mock {
    pub(super) fn new(name: Arc<str>, settings: &MockSettings) -> Self {
        Self {
            name,
            latency: settings.latency,
            chunk_interval: settings.chunk_interval,
            failure_rate: settings.failure_rate,
            failure_status: settings.failure_status,
            bad_answer: settings.bad_answer,
            context_limit: settings.context_limit,
        }
    }

    /// The configured latency, then the configured failure rate: what every answer goes through.
    async fn arrive(&self) -> Result<(), Failure> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        if self.failure_rate > 0.0 && rand::rng().random_bool(self.failure_rate) {
            let body = json!({"error": {"message": "The mock provider failed this request on purpose (failure_rate).",
                "type": "server_error", "param": null, "code": "mock_failure"}});
            let no_headers = http::HeaderMap::new();
            let body = body.to_string();
            return Err(Failure::from_status(
                &self.name,
                self.failure_status,
                &no_headers,
                body.as_bytes(),
            ));
        }
        Ok(())
    }

    /// Deterministic unit vectors for the inputs (`mock_embeddings`).
    pub(super) async fn send_embeddings(
        &self,
        request: &EmbeddingsRequest,
        model: &str,
    ) -> Result<Reply, Failure> {
        self.arrive().await?;
        if request.dimensions.is_some_and(|d| d > mock_embeddings::MAX_DIMENSIONS) {
            let message = format!(
                "`dimensions` must be at most {} for the mock provider.",
                mock_embeddings::MAX_DIMENSIONS
            );
            let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": "dimensions", "code": "invalid_value"}});
            let body = body.to_string();
            return Err(Failure::from_status(
                &self.name,
                http::StatusCode::BAD_REQUEST,
                &http::HeaderMap::new(),
                body.as_bytes(),
            ));
        }
        Ok(Reply::Complete(mock_embeddings::answer(request, model).into()))
    }

    pub(super) async fn send(&self, request: &ChatRequest, model: &str) -> Result<Reply, Failure> {
        self.arrive().await?;
        let rejected = |message: String, param: &str, code: Option<&str>| {
            let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}});
            let body = body.to_string();
            Failure::from_status(
                &self.name,
                http::StatusCode::BAD_REQUEST,
                &http::HeaderMap::new(),
                body.as_bytes(),
            )
        };
        let mut completion =
            compose(request, model, unix_now()).map_err(|message| rejected(message, "n", None))?;
        if let Some(limit) = self.context_limit {
            let asked = completion.usage.prompt_tokens + max_output_tokens(request.body());
            if asked > limit {
                // OpenAI's own words and code for it.
                let message = format!(
                    "This model's maximum context length is {limit} tokens. However, you requested \
                     {asked} tokens. Please reduce the length of the messages or completion."
                );
                return Err(rejected(message, "messages", Some("context_length_exceeded")));
            }
        }
        if let Some((kind, rate)) = self.bad_answer
            && rand::rng().random_bool(rate)
        {
            spoil(&mut completion, kind);
        }
        if !request.stream {
            let body = serde_json::to_vec(&completion).unwrap_or_default();
            return Ok(Reply::Complete(body.into()));
        }
        let interval = self.chunk_interval;
        let chunks = stream::iter(chunks_of(&completion, true).into_iter().enumerate()).then(
            move |(index, chunk)| async move {
                if index > 0 && !interval.is_zero() {
                    tokio::time::sleep(interval).await;
                }
                Ok(serde_json::to_string(&chunk).unwrap_or_default())
            },
        );
        content_ready(&self.name, chunks.boxed(), carries_content).await
    }
}

/// Makes every choice of `completion` the useless answer `kind` asks for (`bad_answer`).
fn spoil(completion: &mut ChatCompletion, kind: MockBadAnswer) {
    for choice in &mut completion.choices {
        let message = &mut choice.message;
        message.tool_calls.clear();
        choice.finish_reason = "stop".to_owned();
        match kind {
            MockBadAnswer::Empty => message.content = Some(String::new()),
            MockBadAnswer::InvalidJson => {
                message.content =
                    Some("Sure! Here is the JSON you asked for: {\"answer\": ".to_owned());
            }
            MockBadAnswer::Refusal => {
                message.content = None;
                message.refusal = Some("I'm sorry, but I can't help with that.".to_owned());
            }
        }
    }
}

/// The whole answer to `request`, deterministic but for `created`.
fn compose(request: &ChatRequest, model: &str, created: u64) -> Result<ChatCompletion, String> {
    let n = request.body().get("n").and_then(Value::as_u64).unwrap_or(1);
    if !(1..=MAX_N).contains(&n) {
        return Err(format!("`n` must be between 1 and {MAX_N}."));
    }
    let max_tokens = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|key| request.body().get(*key).and_then(Value::as_u64))
        .unwrap_or(u64::MAX);
    let messages = request.messages();
    let seed = fnv1a(serde_json::to_string(messages).unwrap_or_default().as_bytes());
    let last = messages.last();
    let last_role = last.and_then(|m| m.get("role")).and_then(Value::as_str).unwrap_or("");
    let tool = pick_tool(request.body()).filter(|_| last_role == "user");

    let mut choices = Vec::new();
    let mut completion_tokens = 0;
    for index in 0..n {
        let choice_seed = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let (message, finish_reason, tokens) = match &tool {
            Some(tool) => tool_call(tool, last.map_or("", text_of), choice_seed),
            None => {
                let prefix = (last_role == "tool").then(|| last.map_or("", text_of));
                let (mut message, finish, tokens) = text_answer(prefix, choice_seed, max_tokens);
                if let Some(json) = json_answer(request.body(), &message, last.map_or("", text_of))
                {
                    message.content = Some(json);
                }
                (message, finish, tokens)
            }
        };
        completion_tokens += tokens;
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        choices.push(Choice { index, message, logprobs: None, finish_reason });
    }
    let prompt_tokens = 3 + messages
        .iter()
        .map(|m| 4 + (text_of(m).chars().count() as u64).div_ceil(4))
        .sum::<u64>();
    Ok(ChatCompletion {
        id: format!("chatcmpl-mock{seed:016x}"),
        object: "chat.completion".to_owned(),
        created,
        model: model.to_owned(),
        choices,
        usage: Usage::new(prompt_tokens, completion_tokens),
    })
}

/// The answer as the JSON `response_format` asks for, when it asks: `{"answer": text}` for
/// `json_object`, an object that fits the schema's properties for `json_schema` (as tool
/// arguments are made).
fn json_answer(
    body: &Map<String, Value>,
    message: &AssistantMessage,
    prompt: &str,
) -> Option<String> {
    let format = body.get("response_format")?;
    match format.get("type").and_then(Value::as_str)? {
        "json_object" => {
            Some(json!({"answer": message.content.as_deref().unwrap_or("")}).to_string())
        }
        "json_schema" => {
            let schema = format.pointer("/json_schema/schema").unwrap_or(&Value::Null);
            Some(Value::Object(arguments_for(schema, prompt)).to_string())
        }
        _ => None,
    }
}

/// The tool the answer calls: the one `tool_choice` names, else the first; none for `"none"`.
fn pick_tool(body: &Map<String, Value>) -> Option<Value> {
    let tools = body.get("tools")?.as_array()?;
    match body.get("tool_choice") {
        Some(Value::String(choice)) if choice == "none" => None,
        Some(Value::Object(choice)) => {
            let wanted = choice.get("function")?.get("name")?.as_str()?;
            tools.iter().find(|t| t["function"]["name"].as_str() == Some(wanted)).cloned()
        }
        _ => tools.first().cloned(),
    }
}

fn tool_call(tool: &Value, prompt: &str, seed: u64) -> (AssistantMessage, String, u64) {
    let function = &tool["function"];
    let name = function["name"].as_str().unwrap_or("tool").to_owned();
    let arguments = Value::Object(arguments_for(&function["parameters"], prompt)).to_string();
    let tokens = 8 + (arguments.len() as u64).div_ceil(4);
    let call = ToolCall {
        id: format!("call_{:024x}", u128::from(seed) << 32 | u128::from(seed >> 32)),
        kind: "function".to_owned(),
        function: FunctionCall { name, arguments },
    };
    let message = AssistantMessage {
        role: "assistant".to_owned(),
        content: None,
        refusal: None,
        tool_calls: vec![call],
    };
    (message, "tool_calls".to_owned(), tokens)
}

/// Arguments that fit the schema's properties: prompt words for strings, 1 for numbers...
fn arguments_for(schema: &Value, prompt: &str) -> Map<String, Value> {
    let words: String = prompt.split_whitespace().take(5).collect::<Vec<_>>().join(" ");
    let mut arguments = Map::new();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return arguments;
    };
    for (key, property) in properties {
        let value = match property.get("type").and_then(Value::as_str) {
            Some("integer" | "number") => json!(1),
            Some("boolean") => json!(true),
            Some("array") => json!([]),
            Some("object") => json!({}),
            _ => match property.get("enum").and_then(Value::as_array).and_then(|e| e.first()) {
                Some(first) => first.clone(),
                None => json!(words),
            },
        };
        arguments.insert(key.clone(), value);
    }
    arguments
}

fn text_answer(
    tool_result: Option<&str>,
    seed: u64,
    max_tokens: u64,
) -> (AssistantMessage, String, u64) {
    let mut words: Vec<String> = Vec::new();
    if let Some(result) = tool_result {
        words.push("Thanks,".to_owned());
        words.push("the".to_owned());
        words.push("tool".to_owned());
        words.push("said:".to_owned());
        words.extend(result.split_whitespace().take(12).map(str::to_owned));
    }
    let mut state = seed | 1;
    let count = 12 + (seed % 37) as usize;
    let mut capitalise = true;
    for position in 0..count {
        let word = VOCABULARY[(next(&mut state) % VOCABULARY.len() as u64) as usize];
        let mut word = if capitalise { capitalised(word) } else { word.to_owned() };
        capitalise = false;
        if position + 1 == count || next(&mut state).is_multiple_of(9) {
            word.push('.');
            capitalise = true;
        }
        words.push(word);
    }
    let finish = if (words.len() as u64) > max_tokens {
        words.truncate(usize::try_from(max_tokens).unwrap_or(usize::MAX));
        "length"
    } else {
        "stop"
    };
    let tokens = words.len() as u64;
    let message = AssistantMessage {
        role: "assistant".to_owned(),
        content: Some(words.join(" ")),
        refusal: None,
        tool_calls: Vec::new(),
    };
    (message, finish.to_owned(), tokens)
}

/// The text of a message: its string content, or its text parts joined.
fn text_of(message: &Value) -> &str {
    match message.get("content") {
        Some(Value::String(text)) => text,
        Some(Value::Array(parts)) => {
            parts.iter().find_map(|p| p.get("text")?.as_str()).unwrap_or("")
        }
        _ => "",
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

/// xorshift64*: a tiny deterministic generator, seeded from the prompt.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// FNV-1a, a hash that is the same on every platform and Rust version.
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value) -> ChatRequest {
        ChatRequest::from_slice(body.to_string().as_bytes()).unwrap()
    }

    fn user(text: &str) -> Value {
        json!({"model": "m", "messages": [{"role": "user", "content": text}]})
    }

    fn content(completion: &ChatCompletion) -> &str {
        completion.choices[0].message.content.as_deref().unwrap()
    }

    #[test]
    fn equal_prompts_get_equal_answers_and_different_prompts_differ() {
        let a = compose(&request(user("hello")), "m", 1).unwrap();
        let b = compose(&request(user("hello")), "m", 2).unwrap();
        let c = compose(&request(user("something else")), "m", 1).unwrap();
        assert_eq!(content(&a), content(&b));
        assert_ne!(content(&a), content(&c));
        assert_eq!(a.usage.completion_tokens, content(&a).split(' ').count() as u64);
        assert!(a.usage.prompt_tokens > 3);
        assert_eq!(a.usage.total_tokens, a.usage.prompt_tokens + a.usage.completion_tokens);
    }

    #[test]
    fn max_tokens_truncates_with_finish_reason_length() {
        let mut body = user("hello");
        body["max_tokens"] = json!(3);
        let answer = compose(&request(body), "m", 1).unwrap();
        assert_eq!(answer.choices[0].finish_reason, "length");
        assert_eq!(answer.usage.completion_tokens, 3);
    }

    #[test]
    fn n_gives_that_many_distinct_choices_and_out_of_range_is_refused() {
        let mut body = user("hello");
        body["n"] = json!(3);
        let answer = compose(&request(body.clone()), "m", 1).unwrap();
        assert_eq!(answer.choices.len(), 3);
        assert_ne!(answer.choices[0].message.content, answer.choices[1].message.content);
        // The gateway refuses such a request before any provider; the mock refuses it too, as
        // an upstream would (changed after parsing, which would refuse it first).
        let mut refused = request(body);
        refused.body_mut().insert("n".to_owned(), json!(0));
        assert!(compose(&refused, "m", 1).is_err());
    }

    #[test]
    fn tools_are_called_then_their_result_is_answered() {
        let tools = json!([{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}}]);
        let mut body = user("weather in Paris");
        body["tools"] = tools.clone();
        let answer = compose(&request(body), "m", 1).unwrap();
        let call = &answer.choices[0].message.tool_calls[0];
        assert_eq!(answer.choices[0].finish_reason, "tool_calls");
        assert_eq!(call.function.name, "get_weather");
        let args: Value = serde_json::from_str(&call.function.arguments).unwrap();
        assert_eq!(args, json!({"city": "weather in Paris", "days": 1}));

        let follow_up = json!({"model": "m", "tools": tools, "messages": [
            {"role": "user", "content": "weather in Paris"},
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"}]});
        let answer = compose(&request(follow_up), "m", 1).unwrap();
        assert!(
            content(&answer).starts_with("Thanks, the tool said: sunny, 21C"),
            "{}",
            content(&answer)
        );
    }

    #[test]
    fn chunks_carry_exactly_the_complete_answer() {
        let answer = compose(&request(user("hello")), "m", 1).unwrap();
        let chunks = chunks_of(&answer, true);
        let text: String =
            chunks.iter().filter_map(|c| c.choices.first()?.delta.content.clone()).collect();
        assert_eq!(text, content(&answer));
        let usage = chunks.last().unwrap();
        assert!(usage.choices.is_empty());
        assert_eq!(usage.usage, Some(answer.usage));
        assert!(chunks[..chunks.len() - 1].iter().all(|c| c.usage.is_none()));
        assert_eq!(chunks_of(&answer, false).len(), chunks.len() - 1);
    }

    #[tokio::test(start_paused = true)]
    async fn waits_the_configured_latency_and_fails_at_the_configured_rate() {
        let settings = MockSettings {
            latency: Duration::from_millis(400),
            chunk_interval: Duration::ZERO,
            failure_rate: 1.0,
            failure_status: http::StatusCode::TOO_MANY_REQUESTS,
            bad_answer: None,
            context_limit: None,
        };
        let mock = Mock::new(Arc::from("m"), &settings);
        let start = tokio::time::Instant::now();
        let Err(failure) = mock.send(&request(user("hi")), "m").await else { panic!("must fail") };
        assert_eq!(start.elapsed(), Duration::from_millis(400));
        assert_eq!(failure.class, crate::failure::FailureClass::RateLimit);
    }

    fn settings(
        bad_answer: Option<(MockBadAnswer, f64)>,
        context_limit: Option<u64>,
    ) -> MockSettings {
        MockSettings {
            latency: Duration::ZERO,
            chunk_interval: Duration::ZERO,
            failure_rate: 0.0,
            failure_status: http::StatusCode::SERVICE_UNAVAILABLE,
            bad_answer,
            context_limit,
        }
    }

    async fn answer_of(mock: &Mock) -> Value {
        let Ok(Reply::Complete(body)) = mock.send(&request(user("hi")), "m").await else {
            panic!("a whole answer")
        };
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test]
    async fn answers_badly_on_purpose_when_told_to() {
        let empty = Mock::new(Arc::from("m"), &settings(Some((MockBadAnswer::Empty, 1.0)), None));
        assert_eq!(answer_of(&empty).await["choices"][0]["message"]["content"], "");
        let json =
            Mock::new(Arc::from("m"), &settings(Some((MockBadAnswer::InvalidJson, 1.0)), None));
        let text = answer_of(&json).await["choices"][0]["message"]["content"].clone();
        assert!(serde_json::from_str::<Value>(text.as_str().unwrap()).is_err(), "{text}");
        let refusal =
            Mock::new(Arc::from("m"), &settings(Some((MockBadAnswer::Refusal, 1.0)), None));
        let message = answer_of(&refusal).await["choices"][0]["message"].clone();
        assert!(message["content"].is_null() && message["refusal"].is_string(), "{message}");
        let never = Mock::new(Arc::from("m"), &settings(Some((MockBadAnswer::Empty, 0.0)), None));
        assert_ne!(answer_of(&never).await["choices"][0]["message"]["content"], "");
    }

    #[tokio::test]
    async fn a_prompt_over_its_context_limit_gets_openais_context_error() {
        let small = Mock::new(Arc::from("m"), &settings(None, Some(10)));
        let long = user(&"word ".repeat(100));
        let Err(failure) = small.send(&request(long), "m").await else { panic!("must fail") };
        assert_eq!(failure.class, crate::failure::FailureClass::ContextOverflow);
        let rejection = failure.upstream.unwrap();
        assert_eq!(rejection.error.error.code.as_deref(), Some("context_length_exceeded"));
        let roomy = Mock::new(Arc::from("m"), &settings(None, Some(10_000)));
        assert!(roomy.send(&request(user("hi")), "m").await.is_ok());
    }
}
