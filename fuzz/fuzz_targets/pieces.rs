//! How the targets that read a byte stream cut their input: the first byte says where (low 7
//! bits: the first cut; bit 7: cut the rest again, at its middle), as reads from a socket would.

/// The input after its first byte, in two or three pieces; `None` for an empty input.
pub fn pieces(data: &[u8]) -> Option<Vec<&[u8]>> {
    let (&selector, body) = data.split_first()?;
    let first = usize::from(selector & 0x7f).min(body.len());
    let (head, tail) = body.split_at(first);
    Some(if selector & 0x80 != 0 {
        let (middle, rest) = tail.split_at(tail.len() / 2);
        vec![head, middle, rest]
    } else {
        vec![head, tail]
    })
}
