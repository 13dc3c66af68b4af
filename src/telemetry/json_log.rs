//! The JSON log format (`--log-format json`, the default off a terminal): a tracing-subscriber
//! `Layer` that formats each event as one line and hands it to a writer thread, so that the
//! per-request line costs the request path neither an allocation nor a syscall.
//!
//! A line has the shape tracing-subscriber's own JSON format gives (`timestamp`, `level`,
//! `fields` with `message`, `target`, and, inside a span, `span` with the innermost span's fields
//! and name and `spans` from the root), so log pipelines see the same thing. What differs is
//! the cost:
//!
//! - a span's fields are written as JSON once, when recorded (`"name":value`, the name escaped
//!   then too), into buffers that are reused from span to span (a thread-local pool), instead of
//!   being re-parsed and re-serialized on every `record` as tracing-subscriber's `JsonFields`
//!   does; a line copies them, and writes the innermost span's object once for both `span` and
//!   `spans`;
//! - a line is formatted into a thread-local buffer and appended to a shared one; a writer
//!   thread writes that to stderr in batches, looking every `TICK` while lines come, and
//!   sleeping until woken after `IDLE_TICKS` without one. So a request never makes a syscall
//!   for its line (no wake-up either, unless the writer was asleep), and an idle gateway has
//!   no wake-ups;
//! - when stderr does not keep up and `MAX_PENDING` bytes wait, new lines are dropped and
//!   counted in `ballast_log_lines_dropped_total` rather than blocking a request.
//!
//! `flush` writes out what is pending; `cli::run` calls it before the process exits.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Bytes of lines waiting for the writer beyond which new lines are dropped (and counted).
const MAX_PENDING: usize = 4 << 20;
/// How often the writer looks for lines while they come (so a line waits at most this long).
const TICK: Duration = Duration::from_millis(10);
/// Ticks without a line after which the writer sleeps until a line wakes it (1 s).
const IDLE_TICKS: u32 = 100;
/// Span field buffers kept per thread for reuse.
const POOL: usize = 256;

/// The layer. Add it with a filter (`with_filter`); spans the filter rejects never reach it.
pub struct JsonLog {
    out: &'static Output,
}

impl JsonLog {
    /// The layer, starting the writer thread the first time.
    pub fn new() -> Self {
        Self { out: output() }
    }
}

impl Default for JsonLog {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes out every pending line now (before the process exits).
pub fn flush() {
    if let Some(out) = OUTPUT.get() {
        out.write_pending();
    }
}

impl<S> tracing_subscriber::Layer<S> for JsonLog
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::pooled();
        attrs.record(&mut fields);
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(fields) = span.extensions_mut().get_mut::<SpanFields>() {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        LINE.with(|line| {
            let Ok(mut line) = line.try_borrow_mut() else { return };
            let Line { text, current } = &mut *line;
            text.clear();
            let meta = event.metadata();
            text.push_str("{\"timestamp\":\"");
            timestamp(text, SystemTime::now());
            text.push_str("\",\"level\":\"");
            text.push_str(meta.level().as_str());
            text.push_str("\",\"fields\":{");
            let mut fields = EventFields { line: text, first: true };
            event.record(&mut fields);
            text.push_str("},\"target\":");
            string(text, meta.target());
            // (`from_root` gathers the scope on the stack for up to 16 spans: no allocation.)
            if let (Some(span), Some(scope)) = (ctx.event_span(event), ctx.event_scope(event)) {
                current.clear();
                span_object(current, &span);
                text.push_str(",\"span\":");
                text.push_str(current);
                text.push_str(",\"spans\":[");
                for (i, outer) in scope.from_root().enumerate() {
                    if i > 0 {
                        text.push(',');
                    }
                    if outer.id() == span.id() {
                        text.push_str(current);
                    } else {
                        span_object(text, &outer);
                    }
                }
                text.push(']');
            }
            text.push_str("}\n");
            self.out.push(text.as_bytes());
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        if let Some(fields) = span.extensions_mut().remove::<SpanFields>() {
            fields.recycle();
        }
    }
}

/// The line being formatted (each thread formats one at a time), and its innermost span's
/// object, written once for both `span` and `spans`.
struct Line {
    text: String,
    current: String,
}

thread_local! {
    static LINE: RefCell<Line> = RefCell::new(Line {
        text: String::with_capacity(1024),
        current: String::with_capacity(512),
    });
    /// Span field buffers of closed spans, for the next ones.
    static SPARE: RefCell<Vec<SpanFields>> = const { RefCell::new(Vec::new()) };
}

fn span_object<S>(line: &mut String, span: &tracing_subscriber::registry::SpanRef<'_, S>)
where
    S: for<'a> LookupSpan<'a>,
{
    line.push('{');
    if let Some(fields) = span.extensions().get::<SpanFields>() {
        for &(_, start, end) in &fields.index {
            if let Some(field) = fields.values.get(start as usize..end as usize) {
                line.push_str(field);
                line.push(',');
            }
        }
    }
    line.push_str("\"name\":");
    string(line, span.name());
    line.push('}');
}

/// A span's fields, each already written as a JSON member (`"name":value`) into `values`.
struct SpanFields {
    values: String,
    /// Field name and the byte range of its member in `values`; a field recorded again points
    /// at its new member.
    index: Vec<(&'static str, u32, u32)>,
}

impl SpanFields {
    fn pooled() -> Self {
        SPARE
            .with(|spare| spare.try_borrow_mut().ok().and_then(|mut spare| spare.pop()))
            .unwrap_or_else(|| Self { values: String::with_capacity(256), index: Vec::new() })
    }

    fn recycle(mut self) {
        self.values.clear();
        self.index.clear();
        SPARE.with(|spare| {
            if let Ok(mut spare) = spare.try_borrow_mut()
                && spare.len() < POOL
            {
                spare.push(self);
            }
        });
    }

    fn put(&mut self, field: &Field, write: impl FnOnce(&mut String)) {
        let name = field.name();
        let start = self.values.len();
        string(&mut self.values, name);
        self.values.push(':');
        write(&mut self.values);
        let (Ok(start), Ok(end)) = (u32::try_from(start), u32::try_from(self.values.len())) else {
            return;
        };
        match self.index.iter_mut().find(|(n, ..)| *n == name) {
            Some(entry) => *entry = (name, start, end),
            None => self.index.push((name, start, end)),
        }
    }
}

impl Visit for SpanFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, |out| string(out, value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, |out| out.push_str(if value { "true" } else { "false" }));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, |out| _ = write!(out, "{value}"));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, |out| _ = write!(out, "{value}"));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, |out| float(out, value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, |out| debug(out, value));
    }
}

/// Writes an event's fields as `"name":value` pairs into the line.
struct EventFields<'a> {
    line: &'a mut String,
    first: bool,
}

impl EventFields<'_> {
    fn key(&mut self, field: &Field) -> &mut String {
        if !self.first {
            self.line.push(',');
        }
        self.first = false;
        string(self.line, field.name());
        self.line.push(':');
        self.line
    }
}

impl Visit for EventFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        string(self.key(field), value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field).push_str(if value { "true" } else { "false" });
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        _ = write!(self.key(field), "{value}");
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        _ = write!(self.key(field), "{value}");
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        float(self.key(field), value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        debug(self.key(field), value);
    }
}

/// A JSON string of `value`'s `Debug` (which for `%` fields and messages is their `Display`).
fn debug(out: &mut String, value: &dyn fmt::Debug) {
    out.push('"');
    _ = write!(Escaped(out), "{value:?}");
    out.push('"');
}

fn string(out: &mut String, value: &str) {
    out.push('"');
    _ = Escaped(out).write_str(value);
    out.push('"');
}

/// A finite float as a JSON number; NaN and infinities (not JSON numbers) as strings.
fn float(out: &mut String, value: f64) {
    if value.is_finite() {
        _ = write!(out, "{value}");
    } else {
        _ = write!(out, "\"{value}\"");
    }
}

/// Escapes what it is given for the inside of a JSON string.
struct Escaped<'a>(&'a mut String);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Byte by byte: what needs escaping is ASCII, so every stop is a char boundary, and the
        // runs between stops (nearly always the whole string) are copied at once.
        let mut rest = s;
        while let Some(at) = rest.bytes().position(|b| b == b'"' || b == b'\\' || b < b' ') {
            self.0.push_str(&rest[..at]);
            match rest.as_bytes()[at] {
                b'"' => self.0.push_str("\\\""),
                b'\\' => self.0.push_str("\\\\"),
                b'\n' => self.0.push_str("\\n"),
                b'\r' => self.0.push_str("\\r"),
                b'\t' => self.0.push_str("\\t"),
                other => write!(self.0, "\\u{other:04x}")?,
            }
            rest = &rest[at + 1..];
        }
        self.0.push_str(rest);
        Ok(())
    }
}

/// RFC 3339 in UTC with microseconds, as tracing-subscriber writes it:
/// `2026-12-02T21:13:44.214273Z`.
fn timestamp(out: &mut String, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    // Digits by hand: this runs for every line, and `write!` with widths costs several times
    // as much.
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut value: u64| {
        for slot in text[at..at + width].iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, rem / 3600);
    put(14, 2, rem / 60 % 60);
    put(17, 2, rem % 60);
    put(20, 6, u64::from(since.subsec_micros()));
    out.push_str(std::str::from_utf8(&text).unwrap_or("1970-01-01T00:00:00.000000Z"));
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Lines waiting for the writer thread, and whether it sleeps until woken.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    writer_asleep: bool,
}

/// Lines waiting for the writer thread.
struct Output {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// Held while writing to stderr, so `flush` and the thread keep lines in order.
    writing: Mutex<Vec<u8>>,
}

static OUTPUT: OnceLock<Output> = OnceLock::new();

fn output() -> &'static Output {
    let mut started = false;
    let out = OUTPUT.get_or_init(|| {
        started = true;
        Output::new()
    });
    if started {
        let spawned = std::thread::Builder::new().name("ballast-log".into()).spawn(|| out.run());
        if spawned.is_err() {
            // No thread: lines pile up to MAX_PENDING and are counted as dropped beyond; `flush`
            // still writes them at exit.
        }
    }
    out
}

impl Output {
    fn new() -> Self {
        Output {
            pending: Mutex::new(Pending {
                bytes: Vec::with_capacity(64 << 10),
                writer_asleep: false,
            }),
            wake: Condvar::new(),
            writing: Mutex::new(Vec::with_capacity(64 << 10)),
        }
    }

    fn push(&self, line: &[u8]) {
        let Ok(mut pending) = self.pending.lock() else { return };
        if pending.bytes.len() + line.len() > MAX_PENDING {
            drop(pending);
            crate::metrics::record_log_line_dropped();
            return;
        }
        pending.bytes.extend_from_slice(line);
        let wake = std::mem::take(&mut pending.writer_asleep);
        drop(pending);
        if wake {
            self.wake.notify_one();
        }
    }

    /// The writer thread: every `TICK`, write out what gathered; after `IDLE_TICKS` ticks with
    /// nothing, sleep until a line wakes it.
    fn run(&self) {
        let mut quiet = 0;
        loop {
            let Ok(mut pending) = self.pending.lock() else { return };
            if pending.bytes.is_empty() {
                if quiet < IDLE_TICKS {
                    quiet += 1;
                    // Nobody notifies an awake writer: this waits the whole tick.
                    if self.wake.wait_timeout(pending, TICK).is_err() {
                        return;
                    }
                } else {
                    pending.writer_asleep = true;
                    if self.wake.wait_while(pending, |p| p.writer_asleep).is_err() {
                        return;
                    }
                    quiet = 0;
                }
                continue;
            }
            drop(pending);
            quiet = 0;
            self.write_pending();
            let Ok(pending) = self.pending.lock() else { return };
            if self.wake.wait_timeout(pending, TICK).is_err() {
                return;
            }
        }
    }

    fn write_pending(&self) {
        let Ok(mut batch) = self.writing.lock() else { return };
        {
            let Ok(mut pending) = self.pending.lock() else { return };
            std::mem::swap(&mut pending.bytes, &mut *batch);
        }
        if !batch.is_empty() {
            let mut stderr = std::io::stderr().lock();
            drop(stderr.write_all(&batch));
            drop(stderr.flush());
            batch.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let mut out = String::new();
        timestamp(&mut out, UNIX_EPOCH + Duration::from_micros(1_796_246_024_214_273));
        assert_eq!(out, "2026-12-02T21:13:44.214273Z");
        out.clear();
        timestamp(&mut out, UNIX_EPOCH + Duration::from_secs(951_782_400)); // a leap day
        assert_eq!(out, "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn strings_are_escaped_for_json() {
        let mut out = String::new();
        string(&mut out, "a \"quote\", a \\ and\na newline\u{1}é");
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, "a \"quote\", a \\ and\na newline\u{1}é");
    }

    #[test]
    fn a_line_carries_its_fields_its_innermost_span_and_every_span_from_the_root() {
        use tracing_subscriber::layer::SubscriberExt;
        let out: &'static Output = Box::leak(Box::new(Output::new()));
        let subscriber = tracing_subscriber::registry().with(JsonLog { out });
        tracing::subscriber::with_default(subscriber, || {
            let request = tracing::info_span!(
                "request",
                request_id = "r1",
                model = tracing::field::Empty,
                route = tracing::field::Empty
            );
            request.record("model", "m \"1\"");
            request.record("route", "primary");
            request.record("route", "error");
            request.in_scope(|| {
                tracing::info!(status = 200u64, "in the request");
                tracing::info_span!("attempt", provider = "p", n = 2).in_scope(|| {
                    tracing::warn!(ok = false, "in the attempt");
                });
            });
            tracing::info!("outside");
        });
        let bytes = std::mem::take(&mut out.pending.lock().unwrap().bytes);
        let lines: Vec<serde_json::Value> = String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let request = serde_json::json!({
            "request_id": "r1", "model": "m \"1\"", "route": "error", "name": "request"
        });
        let attempt = serde_json::json!({ "provider": "p", "n": 2, "name": "attempt" });
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0]["fields"],
            serde_json::json!({ "message": "in the request", "status": 200 })
        );
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["span"], request);
        assert_eq!(lines[0]["spans"], serde_json::json!([request]));
        assert_eq!(
            lines[1]["fields"],
            serde_json::json!({ "message": "in the attempt", "ok": false })
        );
        assert_eq!(lines[1]["level"], "WARN");
        assert_eq!(lines[1]["span"], attempt);
        assert_eq!(lines[1]["spans"], serde_json::json!([request, attempt]));
        assert_eq!(lines[2]["fields"], serde_json::json!({ "message": "outside" }));
        assert!(lines[2].get("span").is_none() && lines[2].get("spans").is_none());
        assert!(lines.iter().all(|line| line["target"] == module_path!()));
    }

    #[test]
    fn a_field_recorded_again_shows_its_last_value() {
        let mut fields = SpanFields { values: String::new(), index: Vec::new() };
        struct Probe;
        impl tracing::Callsite for Probe {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &tracing::Metadata<'_> {
                &META
            }
        }
        static CALLSITE: Probe = Probe;
        static META: tracing::Metadata<'static> = tracing::Metadata::new(
            "probe",
            "test",
            tracing::Level::INFO,
            None,
            None,
            None,
            tracing::field::FieldSet::new(&["route"], tracing::callsite::Identifier(&CALLSITE)),
            tracing::metadata::Kind::SPAN,
        );
        let field = META.fields().field("route").unwrap();
        fields.record_str(&field, "primary");
        fields.record_str(&field, "error");
        let (name, start, end) = fields.index[0];
        assert_eq!(fields.index.len(), 1);
        assert_eq!(
            (name, &fields.values[start as usize..end as usize]),
            ("route", "\"route\":\"error\"")
        );
    }
}
