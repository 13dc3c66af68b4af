//! OpenAI → Anthropic for requests: a chat-completions body as a Messages API body (§8.5).
//!
//! `max_tokens` is always set, sampling fields are mapped (temperature clamped to Anthropic's
//! range), tools, `tool_choice` and a `json_schema` response format are translated, and fields
//! Anthropic has no use for are dropped. The conversation itself is `turns.rs`'s. What cannot be
//! carried is refused, naming the parameter.

use serde_json::{Map, Value, json};

use super::turns::translate_messages;
use crate::failure::Refusal;
use crate::openai::chat::ChatRequest;

/// The Messages API body for `request`, naming `model`.
pub(super) fn to_messages(
    request: &ChatRequest,
    model: &str,
    default_max_tokens: u32,
) -> Result<Map<String, Value>, Refusal> {
    let body = request.body();
    let given = |key: &str| body.get(key).filter(|value| !value.is_null());
    if given("n").is_some_and(|n| n.as_u64() != Some(1)) {
        return Err(Refusal::new(
            "n",
            "This model's provider (Anthropic) returns one choice per request: `n` must be 1.",
        ));
    }
    let mut out = Map::new();
    out.insert("model".to_owned(), json!(model));
    let max_tokens = given("max_completion_tokens")
        .or_else(|| given("max_tokens"))
        .cloned()
        .unwrap_or_else(|| json!(default_max_tokens));
    out.insert("max_tokens".to_owned(), max_tokens);
    let (system, messages) = translate_messages(request.messages())?;
    if !system.is_empty() {
        out.insert("system".to_owned(), json!(system));
    }
    out.insert("messages".to_owned(), Value::Array(messages));
    if let Some(temperature) = given("temperature") {
        // Anthropic's range is 0–1; its own OpenAI compatibility layer clamps the same way.
        let clamped = temperature.as_f64().filter(|t| *t > 1.0).map(|_| json!(1.0));
        out.insert("temperature".to_owned(), clamped.unwrap_or_else(|| temperature.clone()));
    }
    for key in ["top_p", "top_k"] {
        if let Some(value) = given(key) {
            out.insert(key.to_owned(), value.clone());
        }
    }
    if let Some(stops) = given("stop").map(stop_sequences).filter(|stops| !stops.is_empty()) {
        out.insert("stop_sequences".to_owned(), json!(stops));
    }
    if let Some(user) = given("user") {
        out.insert("metadata".to_owned(), json!({"user_id": user}));
    }
    if request.stream {
        out.insert("stream".to_owned(), json!(true));
    }
    let tools = match given("tools") {
        Some(tools) => translate_tools(tools)?,
        None => Vec::new(),
    };
    let mut tool_choice = given("tool_choice").map(translate_tool_choice).transpose()?;
    if given("parallel_tool_calls") == Some(&Value::Bool(false)) && !tools.is_empty() {
        let choice = tool_choice.get_or_insert_with(|| json!({"type": "auto"}));
        if choice["type"] != "none" {
            choice["disable_parallel_tool_use"] = json!(true);
        }
    }
    if !tools.is_empty() {
        out.insert("tools".to_owned(), Value::Array(tools));
    }
    if let Some(choice) = tool_choice {
        out.insert("tool_choice".to_owned(), choice);
    }
    if let Some(schema) = given("response_format").map(json_schema).transpose()?.flatten() {
        out.insert("output_config".to_owned(), json!({"format": schema}));
    }
    Ok(out)
}

fn translate_tools(tools: &Value) -> Result<Vec<Value>, Refusal> {
    let Some(tools) = tools.as_array() else {
        return Err(Refusal::new("tools", "`tools` must be an array."));
    };
    let mut out = Vec::with_capacity(tools.len());
    for (index, tool) in tools.iter().enumerate() {
        let param = format!("tools[{index}]");
        let function = tool.get("function").filter(|_| tool["type"] == "function");
        let Some(name) = function.and_then(|f| f.get("name")).and_then(Value::as_str) else {
            return Err(Refusal::new(
                param,
                "Only `function` tools with a name can be sent to this model's provider (Anthropic).",
            ));
        };
        let mut schema = match function.and_then(|f| f.get("parameters")) {
            Some(Value::Object(schema)) => schema.clone(),
            _ => Map::new(),
        };
        schema.entry("type").or_insert_with(|| json!("object"));
        let mut translated = json!({"name": name, "input_schema": schema});
        if let Some(description) =
            function.and_then(|f| f.get("description")).filter(|d| d.is_string())
        {
            translated["description"] = description.clone();
        }
        out.push(translated);
    }
    Ok(out)
}

fn translate_tool_choice(choice: &Value) -> Result<Value, Refusal> {
    match choice {
        Value::String(mode) => match mode.as_str() {
            "auto" => Ok(json!({"type": "auto"})),
            "none" => Ok(json!({"type": "none"})),
            "required" => Ok(json!({"type": "any"})),
            _ => Err(Refusal::new("tool_choice", format!("Unknown tool_choice `{mode}`."))),
        },
        Value::Object(_) if choice["type"] == "function" => {
            match choice.pointer("/function/name").and_then(Value::as_str) {
                Some(name) => Ok(json!({"type": "tool", "name": name})),
                None => Err(Refusal::new("tool_choice", "`tool_choice.function.name` is missing.")),
            }
        }
        _ => Err(Refusal::new(
            "tool_choice",
            "This tool_choice cannot be sent to this model's provider (Anthropic); use auto, none, required or a function.",
        )),
    }
}

/// `json_schema` becomes Anthropic's structured output format; `text` and `json_object` (which
/// Anthropic has no equivalent for) send nothing.
fn json_schema(format: &Value) -> Result<Option<Value>, Refusal> {
    if format["type"] != "json_schema" {
        return Ok(None);
    }
    match format.pointer("/json_schema/schema") {
        Some(schema @ Value::Object(_)) => {
            Ok(Some(json!({"type": "json_schema", "schema": schema})))
        }
        _ => Err(Refusal::new(
            "response_format",
            "`response_format.json_schema.schema` must be a JSON Schema object.",
        )),
    }
}

/// `stop` as a list, without the whitespace-only sequences Anthropic does not honour.
fn stop_sequences(stop: &Value) -> Vec<String> {
    let all = match stop {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    all.into_iter().filter(|s| !s.trim().is_empty()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value) -> ChatRequest {
        ChatRequest::from_slice(body.to_string().as_bytes()).unwrap()
    }

    fn translate(body: Value) -> Value {
        Value::Object(to_messages(&request(body), "claude-x", 4096).unwrap())
    }

    fn refused(body: Value) -> Refusal {
        to_messages(&request(body), "claude-x", 4096).unwrap_err()
    }

    #[test]
    fn a_plain_request_gets_the_model_max_tokens_and_its_turns() {
        let body =
            translate(json!({"model": "chat", "messages": [{"role": "user", "content": "Hi"}]}));
        assert_eq!(
            body,
            json!({"model": "claude-x", "max_tokens": 4096,
                   "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]})
        );
    }

    #[test]
    fn sampling_fields_are_mapped_and_openai_only_ones_dropped() {
        let body = translate(
            json!({"model": "chat", "messages": [{"role": "user", "content": "Hi"}],
            "temperature": 1.7, "top_p": 0.9, "top_k": 5, "stop": ["END", "  ", "\n\n##"], "user": "u-1",
            "max_tokens": 50, "max_completion_tokens": 70, "seed": 4, "presence_penalty": 1,
            "frequency_penalty": 1, "logit_bias": {"1": 2}, "logprobs": true, "stream": true,
            "stream_options": {"include_usage": true}, "store": true, "service_tier": "auto",
            "response_format": {"type": "json_object"}}),
        );
        assert_eq!(
            body,
            json!({"model": "claude-x", "max_tokens": 70, "temperature": 1.0, "top_p": 0.9, "top_k": 5,
                   "stop_sequences": ["END", "\n\n##"], "metadata": {"user_id": "u-1"}, "stream": true,
                   "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]})
        );
        let kept = translate(json!({"model": "c", "messages": [{"role": "user", "content": "x"}],
            "temperature": 0.3, "max_tokens": 9, "stop": "STOP"}));
        assert_eq!((&kept["temperature"], &kept["max_tokens"]), (&json!(0.3), &json!(9)));
        assert_eq!(kept["stop_sequences"], json!(["STOP"]));
    }

    #[test]
    fn tools_and_tool_choice_are_translated() {
        let tools = json!([
            {"type": "function", "function": {"name": "f", "description": "Does f.", "strict": true,
                "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}},
            {"type": "function", "function": {"name": "g"}},
        ]);
        let cases = [
            (json!("auto"), json!({"type": "auto"})),
            (json!("none"), json!({"type": "none"})),
            (json!("required"), json!({"type": "any"})),
            (
                json!({"type": "function", "function": {"name": "g"}}),
                json!({"type": "tool", "name": "g"}),
            ),
        ];
        for (choice, expected) in cases {
            let body =
                translate(json!({"model": "c", "messages": [{"role": "user", "content": "x"}],
                                        "tools": tools, "tool_choice": choice}));
            assert_eq!(body["tool_choice"], expected);
            assert_eq!(
                body["tools"],
                json!([
                    {"name": "f", "description": "Does f.",
                     "input_schema": {"type": "object", "properties": {"a": {"type": "integer"}}}},
                    {"name": "g", "input_schema": {"type": "object"}},
                ])
            );
        }
        let serial =
            translate(json!({"model": "c", "messages": [{"role": "user", "content": "x"}],
                                      "tools": tools, "parallel_tool_calls": false}));
        assert_eq!(
            serial["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        let forced =
            translate(json!({"model": "c", "messages": [{"role": "user", "content": "x"}],
            "tools": tools, "tool_choice": "required", "parallel_tool_calls": false}));
        assert_eq!(
            forced["tool_choice"],
            json!({"type": "any", "disable_parallel_tool_use": true})
        );
    }

    #[test]
    fn json_schema_response_format_becomes_output_config() {
        let schema =
            json!({"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]});
        let body = translate(json!({"model": "c", "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema, "strict": true}}}));
        assert_eq!(
            body["output_config"],
            json!({"format": {"type": "json_schema", "schema": schema}})
        );
    }

    #[test]
    fn what_anthropic_cannot_serve_is_refused_naming_the_parameter() {
        let user = |content: Value| json!({"model": "c", "messages": [{"role": "user", "content": content}]});
        let mut several = user(json!("x"));
        several["n"] = json!(2);
        assert_eq!(refused(several).param, "n");
        let audio =
            user(json!([{"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}]));
        assert_eq!(refused(audio).param, "messages[0].content[0]");
        let svg = user(
            json!([{"type": "image_url", "image_url": {"url": "data:image/svg+xml;base64,PHN2Zz4="}}]),
        );
        assert!(refused(svg).message.contains("image/png"));
        let tool = json!({"model": "c", "messages": [{"role": "tool", "content": "x"}]});
        assert_eq!(refused(tool).param, "messages[0].tool_call_id");
        let function =
            json!({"model": "c", "messages": [{"role": "function", "name": "f", "content": "x"}]});
        assert_eq!(refused(function).param, "messages[0].role");
        let mut one = user(json!("x"));
        one["n"] = json!(1);
        assert!(to_messages(&request(one), "c", 1).is_ok(), "n = 1 is fine");
    }
}
