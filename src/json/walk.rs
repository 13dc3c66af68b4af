//! Reading a few members of a JSON text in one forward pass, skipping the rest.
//!
//! Every chunk of a stream is read for its usage, finish reasons and text, and a full parse of a
//! chunk costs several times what reading those few members does. A [`Walker`] reads strings,
//! integers and nulls where it is asked to, exactly: a read says `None`, "not sure", for whatever
//! a parse into the expected type might take differently (an escaped key, an escape it does not
//! decode, a control character, a number that is not a plain unsigned integer). Every other value
//! is skipped by its strings and brackets alone, without checking its grammar (nor keys for
//! control characters). Callers fall back to a full parse when it is not sure; on valid JSON a
//! sure reading agrees with the parse (the chunk reader's property test and fuzz target hold it
//! to serde_json's).

/// A position in a JSON text.
pub struct Walker<'a> {
    text: &'a [u8],
    at: usize,
}

/// A string value as it was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Text<'a> {
    /// The text between the quotes, escapes as sent.
    pub raw: &'a [u8],
    /// The bytes of the decoded string.
    pub decoded_len: usize,
    /// Whether it holds escapes (`raw` is then not the string itself).
    pub escaped: bool,
}

impl<'a> Walker<'a> {
    pub fn new(text: &'a str) -> Self {
        Self { text: text.as_bytes(), at: 0 }
    }

    /// The next byte that is not whitespace, without taking it.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        let byte = *self.text.get(self.at)?;
        if is_space(byte) { self.peek_past_space() } else { Some(byte) }
    }

    #[cold]
    fn peek_past_space(&mut self) -> Option<u8> {
        while let Some(&byte) = self.text.get(self.at) {
            if !is_space(byte) {
                return Some(byte);
            }
            self.at += 1;
        }
        None
    }

    /// Takes `byte` if it is next.
    #[inline]
    fn eat(&mut self, byte: u8) -> bool {
        let next = self.peek() == Some(byte);
        self.at += usize::from(next);
        next
    }

    /// Takes the `,` between items (true) or the `close` that ends them (false); none for
    /// anything else.
    #[inline]
    fn next_item(&mut self, close: u8) -> Option<bool> {
        let byte = self.peek()?;
        self.at += 1;
        match byte {
            b',' => Some(true),
            _ if byte == close => Some(false),
            _ => None,
        }
    }

    /// Whether only whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// Takes a `null` if one is next.
    #[inline]
    pub fn null(&mut self) -> bool {
        let next = self.peek() == Some(b'n') && self.text[self.at..].starts_with(b"null");
        if next {
            self.at += 4;
        }
        next
    }

    /// An object's members: `each` is given each key (which it must take the value of, by a read
    /// or [`skip`](Self::skip)). None when the next value is not an object, a key holds an escape,
    /// or `each` is not sure.
    pub fn members(
        &mut self,
        mut each: impl FnMut(&mut Self, &'a [u8]) -> Option<()>,
    ) -> Option<()> {
        if !self.eat(b'{') {
            return None;
        }
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            let key = self.key()?;
            if !self.eat(b':') {
                return None;
            }
            each(self, key)?;
            if !self.next_item(b'}')? {
                return Some(());
            }
        }
    }

    /// A key without escapes, as it is between its quotes.
    #[inline]
    fn key(&mut self) -> Option<&'a [u8]> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.at;
        // Not checked for control characters: a key with one matches none the caller asks for,
        // and its member is skipped.
        let end = start + memchr::memchr2(b'"', b'\\', &self.text[start..])?;
        if self.text[end] != b'"' {
            return None;
        }
        self.at = end + 1;
        Some(&self.text[start..end])
    }

    /// An array's elements: `each` takes each one. How many there were; none when the next value
    /// is not an array or `each` is not sure.
    pub fn elements(&mut self, mut each: impl FnMut(&mut Self) -> Option<()>) -> Option<usize> {
        if !self.eat(b'[') {
            return None;
        }
        if self.eat(b']') {
            return Some(0);
        }
        let mut count = 0;
        loop {
            each(self)?;
            count += 1;
            if !self.next_item(b']')? {
                return Some(count);
            }
        }
    }

    /// A string. None when the next value is not one, or it holds a control character, an
    /// unknown escape or a `\u` escape of a lone surrogate (which a parse refuses).
    pub fn string(&mut self) -> Option<Text<'a>> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.at;
        let mut decoded_len = 0;
        let mut escaped = false;
        loop {
            let plain = string_stop(&self.text[self.at..])?;
            decoded_len += plain;
            self.at += plain;
            match self.text[self.at] {
                b'"' => {
                    let raw = &self.text[start..self.at];
                    self.at += 1;
                    return Some(Text { raw, decoded_len, escaped });
                }
                b'\\' => {
                    escaped = true;
                    decoded_len += self.escape()?;
                }
                _ => return None,
            }
        }
    }

    /// Takes the escape at the position (its backslash); the bytes it decodes to.
    fn escape(&mut self) -> Option<usize> {
        let kind = *self.text.get(self.at + 1)?;
        self.at += 2;
        match kind {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(1),
            b'u' => match self.hex()? {
                0..=0x7f => Some(1),
                0x80..=0x7ff => Some(2),
                0xd800..=0xdbff => {
                    // A high surrogate: only with its low one is it a character (of four bytes).
                    if self.text.get(self.at..self.at + 2) != Some(b"\\u") {
                        return None;
                    }
                    self.at += 2;
                    matches!(self.hex()?, 0xdc00..=0xdfff).then_some(4)
                }
                0xdc00..=0xdfff => None,
                _ => Some(3),
            },
            _ => None,
        }
    }

    /// The four hex digits at the position.
    fn hex(&mut self) -> Option<u16> {
        let digits = self.text.get(self.at..self.at + 4)?;
        let digits = std::str::from_utf8(digits).ok()?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.at += 4;
        u16::from_str_radix(digits, 16).ok()
    }

    /// An unsigned integer written plainly (no sign, fraction, exponent or leading zero), within
    /// `u64`.
    pub fn u64(&mut self) -> Option<u64> {
        self.peek()?;
        let digits = self.text[self.at..].iter().take_while(|b| b.is_ascii_digit()).count();
        let number = &self.text[self.at..self.at + digits];
        let next = self.text.get(self.at + digits).copied();
        if digits == 0
            || (number[0] == b'0' && digits > 1)
            || matches!(next, Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        let value = std::str::from_utf8(number).ok()?.parse().ok()?;
        self.at += digits;
        Some(value)
    }

    /// Skips the next value by its strings and brackets, without checking what is inside.
    pub fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' | b'[' => self.skip_nested(),
            b'}' | b']' | b',' | b':' => None,
            _ => {
                let scalar = self.text[self.at..]
                    .iter()
                    .take_while(|&&b| !matches!(b, b',' | b'}' | b']') && !is_space(b))
                    .count();
                self.at += scalar;
                Some(())
            }
        }
    }

    /// Skips the object or array at the position.
    fn skip_nested(&mut self) -> Option<()> {
        let mut depth = 0_usize;
        loop {
            match *self.text.get(self.at)? {
                b'"' => {
                    self.skip_string()?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        self.at += 1;
                        return Some(());
                    }
                }
                _ => {}
            }
            self.at += 1;
        }
    }

    /// Skips the string at the position (its opening quote).
    #[inline]
    fn skip_string(&mut self) -> Option<()> {
        self.at += 1;
        loop {
            // `get`: a backslash may have been the last byte.
            let stop = self.at + memchr::memchr2(b'"', b'\\', self.text.get(self.at..)?)?;
            self.at = stop + 1;
            if self.text[stop] == b'"' {
                return Some(());
            }
            // The escaped byte, whatever it is.
            self.at += 1;
        }
    }
}

fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

/// Where the string text at the start of `bytes` stops: its first quote, backslash or control
/// character. Eight bytes at a time (keys and skipped strings, which need no check for control
/// characters, are searched by `memchr2`).
#[inline]
fn string_stop(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte below `limit` (the lowest one flagged is exact).
    let below = |word: u64, limit: u64| word.wrapping_sub(ONES * limit) & !word & HIGH;
    let mut at = 0;
    while let Some(word) = bytes.get(at..at + 8) {
        let mut eight = [0; 8];
        eight.copy_from_slice(word);
        let word = u64::from_le_bytes(eight);
        let stops = below(word ^ (ONES * u64::from(b'"')), 1)
            | below(word ^ (ONES * u64::from(b'\\')), 1)
            | below(word, 0x20);
        if stops != 0 {
            return Some(at + stops.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let tail = bytes[at..].iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    Some(at + tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(json: &str) -> Option<(String, usize, bool)> {
        let text = Walker::new(json).string()?;
        Some((String::from_utf8(text.raw.to_vec()).ok()?, text.decoded_len, text.escaped))
    }

    #[test]
    fn strings_are_measured_as_decoded_and_odd_ones_are_not_sure() {
        assert_eq!(text(r#""héllo""#), Some(("héllo".into(), 6, false)));
        assert_eq!(text(r#""a\nb\u0041\u00e9\u20ac""#).map(|t| t.1), Some(3 + 1 + 2 + 3));
        assert_eq!(text(r#""\ud83d\ude00""#).map(|t| t.1), Some(4));
        for odd in
            [r#""\ud83d""#, r#""\ude00x""#, r#""\q""#, "\"a\u{1}\"", r#""\u12g4""#, r#""open"#]
        {
            assert_eq!(text(odd), None, "{odd}");
        }
    }

    #[test]
    fn integers_are_read_only_when_plain() {
        let read = |json: &str| Walker::new(json).u64();
        assert_eq!(read(" 42,"), Some(42));
        assert_eq!(read("0"), Some(0));
        for odd in ["-1", "1.0", "1e3", "01", "18446744073709551616", "x"] {
            assert_eq!(read(odd), None, "{odd}");
        }
    }

    #[test]
    fn skipped_values_end_where_their_brackets_and_strings_say() {
        let json = r#"{"a": {"b": ["]", "}\"", [1, {}]]}, "c": -1.5e3, "d": "x\\", "e": null}"#;
        let mut seen = Vec::new();
        let read = Walker::new(json).members(|walker, key| {
            seen.push(String::from_utf8_lossy(key).into_owned());
            if key == b"e" { walker.null().then_some(()) } else { walker.skip() }
        });
        assert_eq!(read, Some(()));
        assert_eq!(seen, ["a", "c", "d", "e"]);
    }

    #[test]
    fn every_prefix_of_a_text_is_walked_without_a_panic() {
        let json = r#"{"a":"x\"\\","b":[{"c":"\u00e9\ud83d\ude00"},12,null],"d":"\n"}"#;
        for end in 0..json.len() {
            let prefix = &json[..end];
            let read = Walker::new(prefix).members(|walker, key| match key {
                b"a" | b"d" => walker.string().map(drop),
                _ => walker.skip(),
            });
            assert_eq!(read, None, "{prefix}");
        }
    }

    #[test]
    fn an_escaped_key_or_an_unfinished_object_is_not_sure() {
        let skip_all = |json: &str| Walker::new(json).members(|walker, _| walker.skip());
        assert_eq!(skip_all(r#"{"a":1,"b":[2]}"#), Some(()));
        assert_eq!(skip_all("{}"), Some(()));
        for odd in [
            r#"{"\u0061":1}"#,
            r#"{"a":"\"#,
            r#"{"a":1"#,
            r#"{"a" 1}"#,
            r#"{"a":[1}"#,
            "[1]",
            r#"{"a":}"#,
        ] {
            assert_eq!(skip_all(odd), None, "{odd}");
        }
    }
}
