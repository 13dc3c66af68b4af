//! Where an HTTP/1.1 answer's body ends (RFC 9112 §6.3): after `content-length` bytes, after
//! the last chunk of a `chunked` body, or when the upstream closes the connection.
//!
//! [`Framing::next`] takes what it can from the connection's read buffer: the body's bytes as
//! they lie there (split off, never copied), the chunked coding's size lines, extensions and
//! trailers passed over. Strict where laxness has let one message be read as two (a size line
//! ends in CRLF, a chunk's data is followed by CRLF, sizes are hex without a sign or spaces);
//! extensions and trailers are skipped, within [`MAX_SKIPPED`] bytes per body.

use bytes::{Buf, Bytes, BytesMut};

/// The most bytes of chunk extensions and trailers one body may carry (an LLM API sends none).
pub const MAX_SKIPPED: usize = 16 << 10;
/// A chunk size has at most this many hex digits (`u64`).
const MAX_SIZE_DIGITS: u8 = 16;

/// How an answer's body is framed, and how far it has been read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// So many bytes still to come.
    Length(u64),
    /// A chunked body, at `state`; `skipped` counts extension and trailer bytes so far.
    Chunked { state: Chunked, skipped: usize },
    /// Everything until the upstream closes the connection.
    UntilClose,
    /// Read to its end.
    Done,
}

/// Where a chunked body's reading is: in a chunk's data, or in the lines around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunked {
    /// So many bytes of a chunk's data still to come.
    Data(u64),
    Line(Line),
}

/// Where in the coding's lines (sizes, the CRLF after data, trailers) the reading is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// Reading a chunk's size: `size` so far, from `digits` hex digits.
    Size { size: u64, digits: u8 },
    /// In a chunk extension (`;name=value`), up to the size line's CR.
    Extension { size: u64 },
    /// The size line's CR was read: its LF is next.
    SizeLf { size: u64 },
    /// The CR after a chunk's data is next.
    DataCr,
    /// The LF after a chunk's data is next.
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// Inside a trailer line, up to its CR.
    Trailer,
    /// A trailer line's CR was read: its LF is next.
    TrailerLf,
    /// The final empty line's CR was read: its LF ends the body.
    EndLf,
}

/// What [`Framing::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Body bytes.
    Data(Bytes),
    /// The body's end.
    End,
    /// Nothing more in the buffer: read from the connection (an end of the connection now is
    /// the body's end only for [`Framing::UntilClose`], see [`Framing::at_close`]).
    More,
}

/// The chunked coding is broken (or carries more extensions or trailers than allowed).
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl Framing {
    /// A chunked body, before its first size line.
    pub const fn chunked() -> Self {
        Self::Chunked { state: Chunked::Line(Line::Size { size: 0, digits: 0 }), skipped: 0 }
    }

    /// The next piece of the body out of `buf` (whose bytes it consumes).
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Step, Malformed> {
        match self {
            Self::Done => Ok(Step::End),
            Self::Length(0) => {
                *self = Self::Done;
                Ok(Step::End)
            }
            Self::Length(left) => Ok(match take(buf, left) {
                Some(data) => Step::Data(data),
                None => Step::More,
            }),
            Self::UntilClose if buf.is_empty() => Ok(Step::More),
            Self::UntilClose => Ok(Step::Data(buf.split().freeze())),
            Self::Chunked { state, skipped } => {
                let step = chunked(state, skipped, buf)?;
                if step == Step::End {
                    *self = Self::Done;
                }
                Ok(step)
            }
        }
    }

    /// The connection ended: the body's end if it runs until then, else a broken body.
    pub fn at_close(&mut self) -> Result<(), Malformed> {
        match self {
            Self::UntilClose | Self::Done => {
                *self = Self::Done;
                Ok(())
            }
            _ => Err(Malformed("the connection closed before the answer's end")),
        }
    }

    pub fn is_done(&self) -> bool {
        *self == Self::Done
    }
}

/// Up to `left` bytes from the front of `buf`, `left` counted down; `None` when `buf` is empty.
fn take(buf: &mut BytesMut, left: &mut u64) -> Option<Bytes> {
    if buf.is_empty() {
        return None;
    }
    let n = usize::try_from(*left).map_or(buf.len(), |left| left.min(buf.len()));
    *left -= n as u64;
    Some(buf.split_to(n).freeze())
}

/// Steps a chunked body's reading through `buf` until it has data, its end, or needs more.
fn chunked(
    state: &mut Chunked,
    skipped: &mut usize,
    buf: &mut BytesMut,
) -> Result<Step, Malformed> {
    loop {
        let line = match state {
            Chunked::Data(left) => {
                let Some(data) = take(buf, left) else { return Ok(Step::More) };
                if *left == 0 {
                    *state = Chunked::Line(Line::DataCr);
                }
                return Ok(Step::Data(data));
            }
            Chunked::Line(line) => *line,
        };
        let Some(&byte) = buf.first() else { return Ok(Step::More) };
        buf.advance(1);
        *state = match (line, byte) {
            (Line::Size { size, digits }, _) if byte.is_ascii_hexdigit() => {
                if digits == MAX_SIZE_DIGITS {
                    return Err(Malformed("a chunk size is too large"));
                }
                let size = size << 4 | u64::from(hex(byte));
                Chunked::Line(Line::Size { size, digits: digits + 1 })
            }
            (Line::Size { digits: 0, .. }, _) => {
                return Err(Malformed("a chunk size line has no size"));
            }
            (Line::Size { size, .. } | Line::Extension { size }, b'\r') => {
                Chunked::Line(Line::SizeLf { size })
            }
            // Whitespace before an extension, or no extension after it (seen from some servers).
            (Line::Size { size, .. }, b';' | b' ' | b'\t')
            | (Line::Extension { size }, b'\t' | b' '..=b'~' | 0x80..) => {
                skip(skipped)?;
                Chunked::Line(Line::Extension { size })
            }
            (Line::Size { .. }, _) => return Err(Malformed("a chunk size is not hex")),
            (Line::Extension { .. }, _) => {
                return Err(Malformed("a chunk extension holds a control character"));
            }
            (Line::SizeLf { size: 0 }, b'\n') => Chunked::Line(Line::TrailerStart),
            (Line::SizeLf { size }, b'\n') => Chunked::Data(size),
            (Line::SizeLf { .. }, _) => return Err(Malformed("a chunk size line lacks its LF")),
            (Line::DataCr, b'\r') => Chunked::Line(Line::DataLf),
            (Line::DataLf, b'\n') => Chunked::Line(Line::Size { size: 0, digits: 0 }),
            (Line::DataCr | Line::DataLf, _) => {
                return Err(Malformed("a chunk's data is not followed by CRLF"));
            }
            (Line::TrailerStart, b'\r') => Chunked::Line(Line::EndLf),
            (Line::EndLf, b'\n') => return Ok(Step::End),
            (Line::EndLf, _) => return Err(Malformed("a chunked body's last line lacks its LF")),
            (Line::Trailer, b'\r') => Chunked::Line(Line::TrailerLf),
            (Line::TrailerLf, b'\n') => Chunked::Line(Line::TrailerStart),
            (Line::TrailerLf, _) | (Line::TrailerStart | Line::Trailer, b'\n') => {
                return Err(Malformed("a trailer line does not end in CRLF"));
            }
            (Line::TrailerStart | Line::Trailer, _) => {
                skip(skipped)?;
                Chunked::Line(Line::Trailer)
            }
        };
    }
}

/// Counts one extension or trailer byte against [`MAX_SKIPPED`].
fn skip(skipped: &mut usize) -> Result<(), Malformed> {
    *skipped += 1;
    if *skipped > MAX_SKIPPED {
        return Err(Malformed("too many chunk extension or trailer bytes"));
    }
    Ok(())
}

fn hex(byte: u8) -> u8 {
    match byte {
        b'0'..=b'9' => byte - b'0',
        b'a'..=b'f' => byte - b'a' + 10,
        _ => byte - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body `framing` reads from `wire` given `pieces` bytes at a time, and how it ended.
    fn read(
        mut framing: Framing,
        wire: &[u8],
        pieces: usize,
    ) -> (Vec<u8>, Result<bool, Malformed>) {
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut rest = wire;
        loop {
            match framing.next(&mut buf) {
                Ok(Step::Data(data)) => body.extend_from_slice(&data),
                Ok(Step::End) => return (body, Ok(buf.is_empty())),
                Ok(Step::More) if rest.is_empty() => {
                    return (body, framing.at_close().map(|()| buf.is_empty()));
                }
                Ok(Step::More) => {
                    let (now, later) = rest.split_at(pieces.min(rest.len()));
                    buf.extend_from_slice(now);
                    rest = later;
                }
                Err(malformed) => return (body, Err(malformed)),
            }
        }
    }

    /// Read in every piece size from one byte to all at once, the same each time.
    fn read_every_way(framing: &Framing, wire: &[u8]) -> (Vec<u8>, Result<bool, Malformed>) {
        let whole = read(framing.clone(), wire, wire.len().max(1));
        for pieces in 1..wire.len() {
            assert_eq!(read(framing.clone(), wire, pieces), whole, "{pieces} bytes at a time");
        }
        whole
    }

    #[test]
    fn a_chunked_body_is_its_chunks_data_however_it_is_split() {
        let wire = b"5\r\nhello\r\n1;name=value\r\n \r\n0B\r\n world, the\r\n0\r\n\r\n";
        let (body, end) = read_every_way(&Framing::chunked(), wire);
        assert_eq!((body.as_slice(), end), (&b"hello  world, the"[..], Ok(true)));
    }

    #[test]
    fn a_chunked_bodys_trailers_and_extensions_are_passed_over() {
        let wire = b"3 ; a=\"b c\"\r\nabc\r\n0;last\r\nx-trailer: yes\r\nother: 1\r\n\r\n";
        let (body, end) = read_every_way(&Framing::chunked(), wire);
        assert_eq!((body.as_slice(), end), (&b"abc"[..], Ok(true)));
    }

    #[test]
    fn what_follows_a_chunked_body_stays_in_the_buffer() {
        let (body, end) = read(Framing::chunked(), b"1\r\na\r\n0\r\n\r\nHTTP/1.1", 64);
        assert_eq!((body.as_slice(), end), (&b"a"[..], Ok(false)));
    }

    #[test]
    fn a_length_framed_body_ends_after_its_length() {
        let (body, end) = read_every_way(&Framing::Length(11), b"hello world");
        assert_eq!((body.as_slice(), end), (&b"hello world"[..], Ok(true)));
        let (body, end) = read(Framing::Length(5), b"helloHTTP/1.1", 64);
        assert_eq!((body.as_slice(), end), (&b"hello"[..], Ok(false)), "the rest is left");
        assert_eq!(read(Framing::Length(0), b"", 1), (Vec::new(), Ok(true)));
    }

    #[test]
    fn a_body_until_close_is_everything_until_the_connection_ends() {
        let (body, end) = read_every_way(&Framing::UntilClose, b"all of it");
        assert_eq!((body.as_slice(), end), (&b"all of it"[..], Ok(true)));
    }

    #[test]
    fn a_body_cut_short_by_the_connections_end_is_malformed() {
        for (framing, wire) in [
            (Framing::Length(10), &b"short"[..]),
            (Framing::chunked(), b"5\r\nhel"),
            (Framing::chunked(), b"5\r\nhello\r\n"),
            (Framing::chunked(), b"0\r\n"),
        ] {
            let (_, end) = read(framing.clone(), wire, 64);
            assert_eq!(
                end,
                Err(Malformed("the connection closed before the answer's end")),
                "{framing:?}"
            );
        }
    }

    #[test]
    fn a_broken_chunked_coding_is_malformed() {
        for (wire, why) in [
            (&b"\r\n"[..], "a chunk size line has no size"),
            (b";x\r\n", "a chunk size line has no size"),
            (b"-5\r\n", "a chunk size line has no size"),
            (b"5x\r\n", "a chunk size is not hex"),
            (b"5\nhello", "a chunk size is not hex"),
            (b"5;a\nhello", "a chunk extension holds a control character"),
            (b"5\r\rhello", "a chunk size line lacks its LF"),
            (b"5\r\nhelloX\r\n", "a chunk's data is not followed by CRLF"),
            (b"5\r\nhello\r\r", "a chunk's data is not followed by CRLF"),
            (b"10000000000000000\r\n", "a chunk size is too large"),
            (b"0\r\nx: y\n", "a trailer line does not end in CRLF"),
            (b"0\r\n\rX", "a chunked body's last line lacks its LF"),
        ] {
            assert_eq!(read(Framing::chunked(), wire, 64).1, Err(Malformed(why)), "{wire:?}");
        }
        // The largest size that fits: read as a size, then cut short.
        let (_, end) = read(Framing::chunked(), b"ffffffffffffffff\r\nabc", 64);
        assert_eq!(end, Err(Malformed("the connection closed before the answer's end")));
    }

    #[test]
    fn extensions_and_trailers_beyond_the_limit_are_malformed() {
        let mut wire = b"1;".to_vec();
        wire.extend(std::iter::repeat_n(b'x', MAX_SKIPPED));
        wire.extend_from_slice(b"\r\na\r\n0\r\n\r\n");
        let why = Malformed("too many chunk extension or trailer bytes");
        assert_eq!(read(Framing::chunked(), &wire, 4096).1, Err(why));
        let mut wire = b"0\r\n".to_vec();
        // Four counted bytes a line (line ends are not counted).
        wire.extend(std::iter::repeat_n(b"x: y\r\n", MAX_SKIPPED / 4 + 1).flatten());
        wire.extend_from_slice(b"\r\n");
        let why = Malformed("too many chunk extension or trailer bytes");
        assert_eq!(read(Framing::chunked(), &wire, 4096).1, Err(why));
    }
}
