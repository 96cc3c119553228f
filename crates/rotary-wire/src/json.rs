//! JSON written by hand for the documents every read writes: the GetSecretValue answer
//! (here) and the audit line (`rotary_core::audit`). serde_json escapes strings byte by byte
//! through a table, which made these two documents the largest share of a hot read's
//! instructions; here a string is scanned once without branches and copied whole when it
//! needs no escaping, as nearly every ARN, id and value does.
//!
//! # Invariants
//! - The bytes are exactly serde_json's compact output for the same values (same escapes,
//!   lower-case `\u00XX`, no escaped `/` or non-ASCII): tests compare the two.
//! - Object keys are the callers' constants and are written as given, unescaped.

/// Whether serde_json escapes `b` inside a string.
#[inline]
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Appends `s` as a JSON string (quoted, escaped).
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // A fold without early exit compiles to a vector loop.
    if bytes.iter().fold(false, |any, &b| any | needs_escape(b)) {
        push_escaped(out, bytes);
    } else {
        out.extend_from_slice(bytes);
    }
    out.push(b'"');
}

fn push_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !needs_escape(b) {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0x0f)],
            ]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// A JSON object being appended to a buffer: `{` on creation, `}` on [`finish`](Self::finish).
pub struct Object<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Object<'a> {
    /// Opens an object at the end of `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    /// Writes `"key":` (with the comma before it if needed) and returns the buffer for the
    /// value, which the caller must then write as one JSON value.
    pub fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    /// A string member.
    pub fn str(&mut self, key: &str, value: &str) {
        push_str(self.key(key), value);
    }

    /// A string member, left out when `None`.
    pub fn opt_str(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.str(key, v);
        }
    }

    /// An unsigned integer member.
    pub fn u64(&mut self, key: &str, value: u64) {
        let out = self.key(key);
        // At most 20 digits.
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = value;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        out.extend_from_slice(&digits[at..]);
    }

    /// An array of strings.
    pub fn str_array<'s>(&mut self, key: &str, values: impl IntoIterator<Item = &'s str>) {
        let out = self.key(key);
        out.push(b'[');
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_str(out, v);
        }
        out.push(b']');
    }

    /// Any member serde can write (for the rare and small ones: numbers, nested shapes).
    pub fn serde<T: serde::Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        serde_json::to_writer(self.key(key), value)
    }

    /// Closes the object.
    pub fn finish(self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte value that can stand alone in a string, plus multi-byte characters.
    fn awkward() -> Vec<String> {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("é€𝄞\u{2028}/");
        vec![
            String::new(),
            "plain-ARN:aws:secretsmanager:us-east-1:000000000000:secret:x-AbCdEf".into(),
            all,
            "\"\\\"".into(),
            "tail\u{1f}".into(),
            "\u{0}head".into(),
        ]
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for s in awkward() {
            let mut out = Vec::new();
            push_str(&mut out, &s);
            assert_eq!(out, serde_json::to_vec(&s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn objects_are_written_as_serde_json_writes_them() {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Shape<'a> {
            a: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            absent: Option<&'a str>,
            b: Option<&'a str>,
            n: u64,
            max: u64,
            l: [&'a str; 2],
            empty: [&'a str; 0],
            f: f64,
        }
        for s in awkward() {
            let mut out = b"prefix ".to_vec();
            let mut o = Object::new(&mut out);
            o.str("A", &s);
            o.opt_str("Absent", None);
            o.opt_str("B", Some("b"));
            o.u64("N", 0);
            o.u64("Max", u64::MAX);
            o.str_array("L", ["x", s.as_str()]);
            o.str_array("Empty", []);
            o.serde("F", &1.5f64).unwrap();
            o.finish();
            let shape = Shape {
                a: &s,
                absent: None,
                b: Some("b"),
                n: 0,
                max: u64::MAX,
                l: ["x", &s],
                empty: [],
                f: 1.5,
            };
            let mut expected = b"prefix ".to_vec();
            serde_json::to_writer(&mut expected, &shape).unwrap();
            assert_eq!(out, expected, "{s:?}");
        }
        let mut empty = Vec::new();
        Object::new(&mut empty).finish();
        assert_eq!(empty, b"{}");
    }
}
