//! Properties of the SSE parser: any chunking, any line endings, comments, bounded events.

use ballast::providers::sse::{EventTooLarge, MAX_EVENT_BYTES, SseEvent, SseParser};
use proptest::prelude::*;
use proptest::sample::Index;

use super::{CASES, Rng, config};

/// One line of an SSE stream, before serialisation.
#[derive(Clone, Debug)]
enum Line {
    /// `data: value` (or `data:value`); the parser strips one space after the colon.
    Data {
        value: String,
        space: bool,
    },
    /// `data` alone: an empty data line.
    BareData,
    Event {
        value: String,
        space: bool,
    },
    /// `:text`.
    Comment(String),
    /// A field the parser ignores (`id`, `retry`, unknown or differently cased names).
    Other {
        field: String,
        value: String,
    },
    /// Dispatches the event being built, if it has data.
    Blank,
}

impl Line {
    fn text(&self) -> String {
        fn field(name: &str, value: &str, space: bool) -> String {
            // A value that starts with a space needs the separating space, or it would be lost.
            let sep = if space || value.starts_with(' ') { ": " } else { ":" };
            format!("{name}{sep}{value}")
        }
        match self {
            Self::Data { value, space } => field("data", value, *space),
            Self::BareData => "data".to_owned(),
            Self::Event { value, space } => field("event", value, *space),
            Self::Comment(text) => format!(":{text}"),
            Self::Other { field: name, value } => field(name, value, true),
            Self::Blank => String::new(),
        }
    }
}

/// Text that may appear on one line: any characters but CR and LF.
fn line_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9 {}\":,\\[\\]]{0,16}",
        1 => "[^\r\n]{0,12}",
        1 => Just(String::new()),
    ]
}

fn ignored_field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("id".to_owned()),
        Just("retry".to_owned()),
        Just("Data".to_owned()),
        Just("EVENT".to_owned()),
        Just("data ".to_owned()),
        "[a-z]{1,6}".prop_filter("not a known field", |name| name != "data" && name != "event"),
    ]
}

/// A line inside an event (never blank).
fn event_line() -> impl Strategy<Value = Line> {
    prop_oneof![
        6 => (line_text(), any::<bool>()).prop_map(|(value, space)| Line::Data { value, space }),
        1 => Just(Line::BareData),
        2 => (line_text(), any::<bool>()).prop_map(|(value, space)| Line::Event { value, space }),
        2 => line_text().prop_map(Line::Comment),
        1 => (ignored_field(), line_text()).prop_map(|(field, value)| Line::Other { field, value }),
    ]
}

/// A stream: events (each followed by a blank line, sometimes more than one), then maybe an
/// unfinished event that must never be dispatched.
fn sse_lines(with_comments: bool) -> impl Strategy<Value = Vec<Line>> {
    let line = event_line()
        .prop_filter("comments allowed", move |line| {
            with_comments || !matches!(line, Line::Comment(_))
        })
        .boxed();
    let event = (prop::collection::vec(line.clone(), 0..6), 1..3usize);
    (prop::collection::vec(event, 0..8), prop::collection::vec(line, 0..3)).prop_map(
        |(events, unfinished)| {
            let mut lines = Vec::new();
            for (body, blanks) in events {
                lines.extend(body);
                lines.extend(std::iter::repeat_n(Line::Blank, blanks));
            }
            lines.extend(unfinished);
            lines
        },
    )
}

/// What a correct parser dispatches for `lines`.
fn expected_events(lines: &[Line]) -> Vec<SseEvent> {
    let mut events = Vec::new();
    let mut name = String::new();
    let mut data: Option<String> = None;
    for line in lines {
        match line {
            Line::Data { value, .. } => match &mut data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => data = Some(value.clone()),
            },
            Line::BareData => match &mut data {
                Some(data) => data.push('\n'),
                None => data = Some(String::new()),
            },
            Line::Event { value, .. } => value.clone_into(&mut name),
            Line::Comment(_) | Line::Other { .. } => {}
            Line::Blank => {
                let event = std::mem::take(&mut name);
                if let Some(data) = data.take() {
                    events.push(SseEvent { event, data });
                }
            }
        }
    }
    events
}

#[derive(Clone, Copy, Debug)]
enum Endings {
    Lf,
    CrLf,
    Cr,
    /// Each line's ending chosen at random from the seed.
    Mixed(u64),
}

/// Writes `lines` with `endings`; the last line is left without an ending when `open_end`.
fn serialise(lines: &[Line], endings: Endings, open_end: bool) -> Vec<u8> {
    let mut rng = Rng(match endings {
        Endings::Mixed(seed) => seed,
        _ => 0,
    });
    let mut out = Vec::new();
    let mut previous = "";
    for (index, line) in lines.iter().enumerate() {
        let text = line.text();
        out.extend_from_slice(text.as_bytes());
        if open_end && index + 1 == lines.len() {
            break;
        }
        let mut ending = match endings {
            Endings::Lf => "\n",
            Endings::CrLf => "\r\n",
            Endings::Cr => "\r",
            Endings::Mixed(_) => ["\n", "\r\n", "\r"][rng.below(3)],
        };
        // `\r` then an empty line ended by `\n` reads as one `\r\n`: a stream can't say that.
        if previous == "\r" && text.is_empty() && ending == "\n" {
            ending = "\r\n";
        }
        out.extend_from_slice(ending.as_bytes());
        previous = ending;
    }
    out
}

/// Feeds `chunks` in order, draining events after each; stops at the first refused push.
fn parse_chunks<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<SseEvent>, Result<(), EventTooLarge>) {
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    for chunk in chunks {
        if let Err(err) = parser.push(chunk) {
            return (events, Err(err));
        }
        while let Some(event) = parser.next_event() {
            events.push(event);
        }
    }
    (events, Ok(()))
}

/// `bytes` cut at the given points (taken modulo its length, in any order, repeats allowed).
fn split_at<'a>(bytes: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|cut| cut.index(bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for point in points {
        chunks.push(&bytes[start..point]);
        start = point;
    }
    chunks.push(&bytes[start..]);
    chunks
}

/// Bytes that look like SSE often enough to reach every branch of the parser.
fn sse_ish_bytes(max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => prop::sample::select(b"data:event: \r\n\n\n\r:idx".to_vec()),
        1 => any::<u8>(),
        1 => prop::sample::select(vec![0x80u8, 0xC3, 0xE2, 0xF0, 0xFF]),
    ];
    prop::collection::vec(byte, 0..max_len)
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn splitting_a_valid_stream_into_any_chunks_yields_exactly_the_events_of_feeding_it_whole(
        lines in sse_lines(true),
        seed in any::<u64>(),
        open_end in any::<bool>(),
        cuts in prop::collection::vec(any::<Index>(), 0..12),
    ) {
        let stream = serialise(&lines, Endings::Mixed(seed), open_end);
        let (whole, status) = parse_chunks([stream.as_slice()]);
        prop_assert_eq!(status, Ok(()));
        // A last line without its ending is not a line yet.
        let complete = if open_end { &lines[..lines.len().saturating_sub(1)] } else { &lines[..] };
        prop_assert_eq!(&whole, &expected_events(complete));
        let (chunked, status) = parse_chunks(split_at(&stream, &cuts));
        prop_assert_eq!(status, Ok(()));
        prop_assert_eq!(chunked, whole);
    }

    #[test]
    fn feeding_a_valid_stream_one_byte_at_a_time_yields_the_same_events(
        lines in sse_lines(true),
        seed in any::<u64>(),
    ) {
        let stream = serialise(&lines, Endings::Mixed(seed), false);
        let (bytewise, status) = parse_chunks(stream.chunks(1));
        prop_assert_eq!(status, Ok(()));
        prop_assert_eq!(bytewise, expected_events(&lines));
    }

    #[test]
    fn lf_crlf_cr_and_mixed_line_endings_give_the_same_events(
        lines in sse_lines(true),
        seed in any::<u64>(),
        cuts in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let expected = expected_events(&lines);
        for endings in [Endings::Lf, Endings::CrLf, Endings::Cr, Endings::Mixed(seed)] {
            let stream = serialise(&lines, endings, false);
            let (events, status) = parse_chunks(split_at(&stream, &cuts));
            prop_assert_eq!(status, Ok(()));
            prop_assert_eq!(&events, &expected, "endings {:?}", endings);
        }
    }

    #[test]
    fn a_stream_of_comments_and_blank_lines_never_produces_an_event(
        lines in prop::collection::vec(
            prop_oneof![3 => line_text().prop_map(Line::Comment), 1 => Just(Line::Blank)],
            0..20,
        ),
        seed in any::<u64>(),
        cuts in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let stream = serialise(&lines, Endings::Mixed(seed), false);
        let (events, status) = parse_chunks(split_at(&stream, &cuts));
        prop_assert_eq!(status, Ok(()));
        prop_assert_eq!(events, Vec::<SseEvent>::new());
    }

    #[test]
    fn inserting_comment_lines_anywhere_never_changes_the_events(
        lines in sse_lines(false),
        comments in prop::collection::vec((any::<Index>(), line_text()), 0..10),
        seed in any::<u64>(),
    ) {
        let mut commented = lines.clone();
        for (at, text) in comments {
            commented.insert(at.index(commented.len() + 1), Line::Comment(text));
        }
        let (plain, _) = parse_chunks([serialise(&lines, Endings::Mixed(seed), false).as_slice()]);
        let stream = serialise(&commented, Endings::Mixed(seed), false);
        let (events, status) = parse_chunks([stream.as_slice()]);
        prop_assert_eq!(status, Ok(()));
        prop_assert_eq!(&events, &plain);
        prop_assert_eq!(events, expected_events(&lines));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_split_anywhere_give_the_same_bounded_events(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512),
            sse_ish_bytes(512),
        ],
        cuts in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let (whole, status) = parse_chunks([bytes.as_slice()]);
        prop_assert_eq!(status, Ok(()));
        let (chunked, status) = parse_chunks(split_at(&bytes, &cuts));
        prop_assert_eq!(status, Ok(()));
        for event in &whole {
            prop_assert!(event.data.len() <= MAX_EVENT_BYTES);
        }
        prop_assert_eq!(chunked, whole);
    }
}

proptest! {
    // Each case pushes up to a mebibyte: a few cases are enough to cover the sizes that matter.
    #![proptest_config(config(12))]

    /// The size limit holds for what the parser accepted, including lines near the limit.
    #[test]
    fn an_accepted_stream_never_yields_an_event_larger_than_max_event_bytes_when_it_is_ascii(
        len in (MAX_EVENT_BYTES - 64)..=MAX_EVENT_BYTES,
        lines in 1..4usize,
        cuts in prop::collection::vec(any::<Index>(), 0..4),
    ) {
        let mut stream = Vec::with_capacity(len + 16);
        for line in 0..lines {
            stream.extend_from_slice(b"data:");
            stream.resize(stream.len() + len / lines, b'x');
            stream.push(if line % 2 == 0 { b'\n' } else { b'\r' });
        }
        stream.extend_from_slice(b"\n");
        let (events, _) = parse_chunks(split_at(&stream, &cuts));
        for event in &events {
            prop_assert!(event.data.len() <= MAX_EVENT_BYTES, "{} bytes", event.data.len());
        }
    }
}

proptest! {
    #![proptest_config(config(12))]

    /// Found by this property: `push` bounds the raw bytes, but each line is decoded with
    /// `String::from_utf8_lossy`, which turns every invalid byte into U+FFFD (3 bytes), so an
    /// upstream could make one event's `data` almost 3 × MAX_EVENT_BYTES (minimal input: `data:`
    /// then 349_526 bytes 0xFF then a blank line). The parser now bounds the decoded size.
    #[test]
    fn invalid_utf8_never_inflates_an_event_past_max_event_bytes(
        len in (MAX_EVENT_BYTES / 3 - 16)..(MAX_EVENT_BYTES - 8),
        byte in prop::sample::select(vec![0x80u8, 0xBF, 0xC0, 0xF5, 0xFF]),
        cuts in prop::collection::vec(any::<Index>(), 0..4),
    ) {
        let mut stream = b"data:".to_vec();
        stream.resize(stream.len() + len, byte);
        stream.extend_from_slice(b"\n\n");
        let (events, _) = parse_chunks(split_at(&stream, &cuts));
        for event in &events {
            prop_assert!(
                event.data.len() <= MAX_EVENT_BYTES,
                "{} input bytes gave an event of {} bytes", stream.len(), event.data.len()
            );
        }
    }
}
