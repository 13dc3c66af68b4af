//! A small open-loop load client that judges every answer, for the phases of
//! `benches/outage-drill.sh` where a 2xx is not enough: an upstream that answers 200 with nothing
//! in it, or that opens a stream and then fails in-band, is a failure a gateway may pass through
//! as a 200. oha counts those as successes; this client reads each answer and says whether it is
//! a good one.
//!
//! ```text
//! cargo run --release --example drill_client -- --url http://127.0.0.1:PORT/v1/chat/completions \
//!     --rate 200 --seconds 12 --body '{"model":"drill","messages":[...]}' --out answers.jsonl \
//!     [--timeout 15s] [--threads 1]
//! ```
//!
//! - Open loop: request `i` is scheduled at `i / rate` seconds after the start, for
//!   `round(rate x seconds)` requests, whatever the answers take; a send made late (the client
//!   itself behind) is still measured from its scheduled time.
//! - Each request is a `POST` of `--body` (`content-type: application/json`), abandoned after
//!   `--timeout` (default 15 s) from its send, headers and body together. Connections are kept
//!   alive and opened as needed (no cap on requests in flight). No proxy, whatever the
//!   environment says.
//! - Bounded in time too: it stops waiting after the last send + `--timeout` + 1 s; a request
//!   still unanswered then is recorded as `abandoned`.
//! - A **good** answer is a 200 and, for a non-streamed body, JSON whose `choices[0].message`
//!   has a non-empty `content` or a non-empty `tool_calls`; for a body with `"stream": true`, a
//!   `text/event-stream` with at least one chunk whose `choices[].delta` has a non-empty
//!   `content` (or a tool-call delta), no `data: {"error": ...}` event, no chunk that is not
//!   JSON, and `data: [DONE]` as its last event.
//! - `--out` gets one JSON line per request, in scheduled order:
//!   `{"scheduled":unix_s,"start":unix_s,"end":unix_s|null,"latency_s":s|null,"status":N|null,
//!   "good":bool,"why":"..."}`, where `latency_s` runs from the scheduled time to the end of the
//!   body (or to the failure), `status` is null when no HTTP answer came (connection error,
//!   timeout before the headers), and `why` is `ok` or the reason the answer is not good.
//! - At the end it prints one JSON line on stdout: `{"requests":N,"good":G,"good_pct":P,
//!   "statuses":{"200":...,"none":...},"failures":{why:count},"p50_ms":...,"p99_ms":...,
//!   "late":L,"seconds":S}` (percentiles nearest-rank over the requests that ended; `late`: sends
//!   made more than 50 ms after their scheduled time).
//!
//! Exit status 0 once it has measured (whatever the share of good answers), 1 when it could not
//! (no client, the output file), 2 for bad arguments.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Parser;
use serde_json::Value;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// At most this many requests in one run (rate x seconds), so a typo cannot run for hours.
const MAX_REQUESTS: u64 = 1_000_000;

#[derive(Parser, Debug)]
#[command(
    name = "drill_client",
    about = "An open-loop load client that checks every answer is a good one"
)]
struct Args {
    /// Where to POST, e.g. http://127.0.0.1:8080/v1/chat/completions.
    #[arg(long)]
    url: String,
    /// Requests per second (open loop).
    #[arg(long, value_parser = parse_positive)]
    rate: f64,
    /// How long to send for, in seconds.
    #[arg(long, value_parser = parse_positive)]
    seconds: f64,
    /// The JSON request body; `"stream": true` in it makes the answers judged as streams.
    #[arg(long)]
    body: String,
    /// Per-request timeout from its send, e.g. `15s`, `500ms`.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    timeout: Duration,
    /// Where to write one JSON line per request.
    #[arg(long)]
    out: PathBuf,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    threads: u16,
}

fn parse_positive(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        _ => Err(format!("`{text}` is not a positive number")),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        (text, 1.0) // a bare number: seconds
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 15s or 500ms"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("`{text}` is not a positive duration"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

/// What is known of one request.
struct Record {
    scheduled: f64,
    start: f64,
    end: Option<f64>,
    latency_s: Option<f64>,
    status: Option<u16>,
    good: bool,
    why: String,
}

impl Record {
    fn to_json(&self) -> Value {
        serde_json::json!({
            "scheduled": self.scheduled,
            "start": self.start,
            "end": self.end,
            "latency_s": self.latency_s,
            "status": self.status,
            "good": self.good,
            "why": self.why,
        })
    }
}

/// One request's outcome: the HTTP status when an answer came, whether it is good, and why not.
struct Outcome {
    status: Option<u16>,
    good: bool,
    why: String,
}

impl Outcome {
    fn failed(status: Option<u16>, why: String) -> Self {
        Self { status, good: false, why }
    }
}

/// What every request shares.
struct Plan {
    client: reqwest::Client,
    url: String,
    body: Bytes,
    stream: bool,
    timeout: Duration,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let stream = match serde_json::from_str::<Value>(&args.body) {
        Ok(body) => body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        Err(err) => return fail(2, &format!("--body is not JSON: {err}")),
    };
    if let Err(err) = reqwest::Url::parse(&args.url) {
        return fail(2, &format!("bad --url `{}`: {err}", args.url));
    }
    let count = (args.rate * args.seconds).round();
    if !(1.0..=MAX_REQUESTS as f64).contains(&count) {
        return fail(
            2,
            &format!("rate x seconds = {count} requests: expected 1 to {MAX_REQUESTS}"),
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(args.threads))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return fail(1, &format!("cannot start tokio: {err}")),
    };
    match runtime.block_on(run(&args, stream, count as u64)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(1, &message),
    }
}

fn fail(code: u8, message: &str) -> ExitCode {
    drop(writeln!(std::io::stderr(), "drill_client: {message}"));
    ExitCode::from(code)
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

async fn run(args: &Args, stream: bool, count: u64) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .build()
        .map_err(|err| format!("cannot build the HTTP client: {}", chain(&err)))?;
    // Created before the load, so that an unwritable path fails at once, not after the run.
    let out =
        std::fs::File::create(&args.out).map_err(|err| format!("{}: {err}", args.out.display()))?;
    let plan = Arc::new(Plan {
        client,
        url: args.url.clone(),
        body: Bytes::from(args.body.clone()),
        stream,
        timeout: args.timeout,
    });
    let began = Instant::now();
    // The same moment on the wall clock, for the records (the schedule itself is monotonic).
    let began_unix = unix_now();
    let interval = 1.0 / args.rate;
    let mut tasks = JoinSet::new();
    // scheduled and start (unix) of every request, by index; the records of those that end.
    let mut sent: Vec<(f64, f64)> = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut records: Vec<Option<Record>> = Vec::new();
    let mut late = 0_u64;
    for i in 0..count {
        let offset = Duration::from_secs_f64(i as f64 * interval);
        let at = began + offset;
        tokio::time::sleep_until(at).await;
        let start = unix_now();
        let scheduled = began_unix + offset.as_secs_f64();
        if Instant::now().saturating_duration_since(at) > Duration::from_millis(50) {
            late += 1;
        }
        sent.push((scheduled, start));
        records.push(None);
        let plan = Arc::clone(&plan);
        let index = usize::try_from(i).unwrap_or(usize::MAX);
        tasks.spawn(async move {
            let outcome = request(&plan).await;
            let end = unix_now();
            let latency = Instant::now().saturating_duration_since(at).as_secs_f64();
            (index, end, latency, outcome)
        });
        // Collect what has ended, so the set does not grow with the run.
        while let Some(joined) = tasks.try_join_next() {
            store(&mut records, &sent, joined);
        }
    }
    // Stragglers: each has its own timeout from its send; this bounds the wait whatever happens.
    let deadline = Instant::now() + args.timeout + Duration::from_secs(1);
    while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, tasks.join_next()).await {
        store(&mut records, &sent, joined);
    }
    tasks.abort_all();
    let finished = began.elapsed().as_secs_f64();
    let records: Vec<Record> = records
        .into_iter()
        .zip(&sent)
        .map(|(record, &(scheduled, start))| {
            record.unwrap_or_else(|| Record {
                scheduled,
                start,
                end: None,
                latency_s: None,
                status: None,
                good: false,
                why: "abandoned: no answer by the last send + timeout".to_owned(),
            })
        })
        .collect();
    write_records(out, &args.out, &records)?;
    let summary = summary(&records, late, finished);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{summary}").map_err(|err| format!("stdout: {err}"))?;
    Ok(())
}

type Joined = Result<(usize, f64, f64, Outcome), tokio::task::JoinError>;

/// Puts an ended request's record in its place (a task that panicked or was cancelled leaves
/// its place empty: it is reported as abandoned).
fn store(records: &mut [Option<Record>], sent: &[(f64, f64)], joined: Joined) {
    let Ok((index, end, latency, outcome)) = joined else { return };
    let (Some(place), Some(&(scheduled, start))) = (records.get_mut(index), sent.get(index)) else {
        return;
    };
    *place = Some(Record {
        scheduled,
        start,
        end: Some(end),
        latency_s: Some(latency),
        status: outcome.status,
        good: outcome.good,
        why: outcome.why,
    });
}

/// Sends one request and judges its answer, within the plan's timeout from now.
async fn request(plan: &Plan) -> Outcome {
    let deadline = Instant::now() + plan.timeout;
    let timeout = format!("timeout after {:.1} s", plan.timeout.as_secs_f64());
    let send = plan
        .client
        .post(&plan.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(plan.body.clone())
        .send();
    let response = match tokio::time::timeout_at(deadline, send).await {
        Err(_) => return Outcome::failed(None, format!("{timeout} (no headers)")),
        Ok(Err(err)) => return Outcome::failed(None, format!("send: {}", chain(&err))),
        Ok(Ok(response)) => response,
    };
    let status = response.status().as_u16();
    let event_stream = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("text/event-stream"));
    let body = match tokio::time::timeout_at(deadline, response.bytes()).await {
        Err(_) => return Outcome::failed(Some(status), format!("{timeout} (in the body)")),
        Ok(Err(err)) => return Outcome::failed(Some(status), format!("body: {}", chain(&err))),
        Ok(Ok(body)) => body,
    };
    let verdict = if status != 200 {
        Err(format!("status {status}"))
    } else if plan.stream {
        if event_stream { judge_stream(&body) } else { Err("not an event stream".to_owned()) }
    } else {
        judge_completion(&body)
    };
    match verdict {
        Ok(()) => Outcome { status: Some(status), good: true, why: "ok".to_owned() },
        Err(why) => Outcome::failed(Some(status), why),
    }
}

/// An error with its sources, `a: b: c` (reqwest's own message alone rarely says what failed).
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Whether a non-empty text or a non-empty array is at `key` of `value`.
fn has(value: &Value, key: &str) -> bool {
    match value.get(key) {
        Some(Value::String(text)) => !text.is_empty(),
        Some(Value::Array(items)) => !items.is_empty(),
        _ => false,
    }
}

/// A `chat.completion` whose first choice has text or a tool call.
fn judge_completion(body: &[u8]) -> Result<(), String> {
    let answer: Value =
        serde_json::from_slice(body).map_err(|err| format!("the answer is not JSON: {err}"))?;
    if answer.get("error").is_some() {
        return Err("an error body".to_owned());
    }
    let message = answer
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|choices| choices.first())
        .and_then(|choice| choice.get("message"))
        .ok_or_else(|| "no choices[0].message".to_owned())?;
    if has(message, "content") || has(message, "tool_calls") {
        Ok(())
    } else {
        Err("empty answer (no content, no tool call)".to_owned())
    }
}

/// A chat-completion event stream with content, no error event and `[DONE]` last.
fn judge_stream(body: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
    let mut payloads = Vec::new();
    for event in text.split("\n\n") {
        let data: Vec<&str> = event
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(|data| data.strip_prefix(' ').unwrap_or(data))
            .collect();
        if !data.is_empty() {
            payloads.push(data.join("\n"));
        }
    }
    let mut content = false;
    let mut done_at = None;
    for (n, payload) in payloads.iter().enumerate() {
        if payload.trim() == "[DONE]" {
            done_at.get_or_insert(n);
            continue;
        }
        let chunk: Value =
            serde_json::from_str(payload).map_err(|_| format!("event {} is not JSON", n + 1))?;
        if let Some(error) = chunk.get("error") {
            let message = error.get("message").and_then(Value::as_str).unwrap_or("");
            return Err(format!("an error event in the stream ({message})"));
        }
        let choices = chunk.get("choices").and_then(Value::as_array);
        content |= choices.into_iter().flatten().any(|choice| {
            choice
                .get("delta")
                .is_some_and(|delta| has(delta, "content") || has(delta, "tool_calls"))
        });
    }
    if !content {
        return Err("no content in the stream".to_owned());
    }
    match done_at {
        None => Err("the stream did not end with [DONE]".to_owned()),
        Some(n) if n + 1 != payloads.len() => Err("events after [DONE]".to_owned()),
        Some(_) => Ok(()),
    }
}

fn write_records(file: std::fs::File, path: &Path, records: &[Record]) -> Result<(), String> {
    let error = |err: std::io::Error| format!("{}: {err}", path.display());
    let mut out = std::io::BufWriter::new(file);
    for record in records {
        writeln!(out, "{}", record.to_json()).map_err(error)?;
    }
    out.flush().map_err(error)
}

/// Nearest-rank percentile (`q` in 0..=100) of sorted values, in milliseconds.
fn percentile_ms(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((sorted.len() as f64) * q / 100.0).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).map(|v| v * 1e3)
}

fn summary(records: &[Record], late: u64, seconds: f64) -> Value {
    let good = records.iter().filter(|r| r.good).count();
    let mut statuses = BTreeMap::<String, u64>::new();
    let mut failures = BTreeMap::<&str, u64>::new();
    for record in records {
        let status = record.status.map_or_else(|| "none".to_owned(), |s| s.to_string());
        *statuses.entry(status).or_default() += 1;
        if !record.good {
            *failures.entry(record.why.as_str()).or_default() += 1;
        }
    }
    let mut latencies: Vec<f64> = records.iter().filter_map(|r| r.latency_s).collect();
    latencies.sort_by(f64::total_cmp);
    let good_pct =
        if records.is_empty() { 0.0 } else { 100.0 * good as f64 / records.len() as f64 };
    serde_json::json!({
        "requests": records.len(),
        "good": good,
        "good_pct": good_pct,
        "statuses": statuses,
        "failures": failures,
        "p50_ms": percentile_ms(&latencies, 50.0),
        "p99_ms": percentile_ms(&latencies, 99.0),
        "late": late,
        "seconds": seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::{judge_completion, judge_stream};

    const ROLE: &str = r#"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#;
    const TEXT: &str =
        r#"data: {"choices":[{"index":0,"delta":{"content":"drill"},"finish_reason":null}]}"#;
    const FINISH: &str = r#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
    const ERROR: &str =
        r#"data: {"error":{"message":"upstream broke","type":"server_error","code":null}}"#;
    const DONE: &str = "data: [DONE]";

    fn sse(events: &[&str], separator: &str) -> Vec<u8> {
        events.iter().map(|e| format!("{e}{separator}{separator}")).collect::<String>().into_bytes()
    }

    #[test]
    fn a_stream_with_content_and_done_is_good() {
        assert_eq!(judge_stream(&sse(&[ROLE, TEXT, FINISH, DONE], "\n")), Ok(()));
        assert_eq!(judge_stream(&sse(&[": keep-alive", ROLE, TEXT, FINISH, DONE], "\r\n")), Ok(()));
    }

    #[test]
    fn a_stream_without_content_an_error_or_done_is_not() {
        assert!(judge_stream(&sse(&[ROLE, FINISH, DONE], "\n")).is_err());
        assert!(judge_stream(&sse(&[ROLE, ERROR], "\n")).is_err());
        assert!(judge_stream(&sse(&[ROLE, TEXT, ERROR, DONE], "\n")).is_err());
        assert!(judge_stream(&sse(&[ROLE, TEXT, FINISH], "\n")).is_err());
        assert!(judge_stream(&sse(&[ROLE, TEXT, DONE, TEXT], "\n")).is_err());
        assert!(judge_stream(&sse(&[ROLE, "data: {not json", TEXT, DONE], "\n")).is_err());
        assert!(judge_stream(b"").is_err());
    }

    #[test]
    fn a_completion_needs_content_or_a_tool_call() {
        let answer =
            |message: &str| format!(r#"{{"choices":[{{"index":0,"message":{message}}}]}}"#);
        assert_eq!(judge_completion(answer(r#"{"content":"hi"}"#).as_bytes()), Ok(()));
        let tool = r#"{"content":null,"tool_calls":[{"id":"c","type":"function"}]}"#;
        assert_eq!(judge_completion(answer(tool).as_bytes()), Ok(()));
        assert!(judge_completion(answer(r#"{"content":""}"#).as_bytes()).is_err());
        assert!(
            judge_completion(answer(r#"{"content":null,"tool_calls":[]}"#).as_bytes()).is_err()
        );
        assert!(judge_completion(br#"{"choices":[]}"#).is_err());
        assert!(judge_completion(br#"{"error":{"message":"x"}}"#).is_err());
        assert!(judge_completion(b"not json").is_err());
    }
}
