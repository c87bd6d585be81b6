//! Byte strings in JSON: argv, env, paths and socket addresses are bytes on
//! Linux and need not be UTF-8.
//!
//! The convention is the fs diff's (`runtime/src/fsdiff/model.rs`): a field
//! holds a readable string, UTF-8 as is and every byte of an invalid sequence
//! as `\xNN`; a companion field `<name>_bytes` holds the exact bytes in
//! standard base64, and is present only when the bytes are not UTF-8. A reader
//! takes the companion when it is there and valid base64, else the readable
//! string's own bytes.

use std::fmt::Write as _;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

/// The readable form of `bytes`, and their base64 only when they are not UTF-8.
pub fn encode_bytes(bytes: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_owned(), None),
        Err(_) => (escape_lossy(bytes), Some(BASE64.encode(bytes))),
    }
}

/// The exact bytes from a field and its companion. A companion that is not
/// valid base64 falls back to the readable form.
pub fn decode_bytes(text: &str, exact: Option<&str>) -> Vec<u8> {
    exact
        .and_then(|b| BASE64.decode(b).ok())
        .unwrap_or_else(|| text.as_bytes().to_vec())
}

/// UTF-8 as is, every byte of an invalid sequence as `\xNN`.
pub fn escape_lossy(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    loop {
        match std::str::from_utf8(bytes) {
            Ok(text) => {
                out.push_str(text);
                return out;
            }
            Err(err) => {
                let (good, rest) = bytes.split_at(err.valid_up_to());
                // `valid_up_to` guarantees `good` is UTF-8.
                out.push_str(std::str::from_utf8(good).unwrap_or_default());
                let bad = err.error_len().unwrap_or(rest.len());
                for b in &rest[..bad] {
                    let _ = write!(out, "\\x{b:02x}");
                }
                bytes = &rest[bad..];
            }
        }
    }
}

/// A list of byte strings: the readable forms, and — only when at least one
/// element is not UTF-8 — a list of the same length with the base64 of each
/// such element and `null` for the others.
pub fn encode_list<T: AsRef<[u8]>>(items: &[T]) -> (Vec<String>, Option<Vec<Option<String>>>) {
    let mut texts = Vec::with_capacity(items.len());
    let mut exact: Option<Vec<Option<String>>> = None;
    for (i, item) in items.iter().enumerate() {
        let (text, bytes) = encode_bytes(item.as_ref());
        texts.push(text);
        if let Some(bytes) = bytes {
            exact.get_or_insert_with(|| vec![None; items.len()])[i] = Some(bytes);
        }
    }
    (texts, exact)
}

/// The exact elements of a list from its two fields. A companion list of
/// another length, or an element that is `null` or not base64, falls back to
/// the readable form element by element.
pub fn decode_list(texts: &[String], exact: Option<&[Option<String>]>) -> Vec<Vec<u8>> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let companion = exact
                .filter(|e| e.len() == texts.len())
                .and_then(|e| e[i].as_deref());
            decode_bytes(text, companion)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_has_no_companion() {
        assert_eq!(encode_bytes(b"/etc/motd"), ("/etc/motd".to_owned(), None));
        assert_eq!(decode_bytes("/etc/motd", None), b"/etc/motd");
    }

    #[test]
    fn non_utf8_round_trips_exactly() {
        let raw = b"/tmp/caf\xe9-\xff\xfe.txt";
        let (text, exact) = encode_bytes(raw);
        assert_eq!(text, "/tmp/caf\\xe9-\\xff\\xfe.txt");
        assert_eq!(decode_bytes(&text, exact.as_deref()), raw);
    }

    #[test]
    fn bad_companion_falls_back_to_text() {
        assert_eq!(decode_bytes("a", Some("!!not base64")), b"a");
    }

    #[test]
    fn lists_carry_a_companion_only_when_needed() {
        let (texts, exact) = encode_list(&[b"ls".as_slice(), b"-l"]);
        assert_eq!(texts, ["ls", "-l"]);
        assert!(exact.is_none());

        let items = [b"cat".to_vec(), b"\xffname".to_vec(), b"x".to_vec()];
        let (texts, exact) = encode_list(&items);
        assert_eq!(texts, ["cat", "\\xffname", "x"]);
        let exact = exact.expect("a companion for a non-UTF-8 element");
        assert_eq!(exact.len(), 3);
        assert!(exact[0].is_none() && exact[1].is_some() && exact[2].is_none());
        assert_eq!(decode_list(&texts, Some(&exact)), items);
    }

    #[test]
    fn companion_of_wrong_length_is_ignored() {
        let texts = vec!["a".to_owned(), "b".to_owned()];
        let exact = vec![Some(BASE64.encode(b"zz"))];
        assert_eq!(
            decode_list(&texts, Some(&exact)),
            [b"a".to_vec(), b"b".to_vec()]
        );
    }
}
