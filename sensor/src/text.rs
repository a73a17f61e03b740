//! Lossless text for bytes that need not be UTF-8 (paths, argv, comm).
//!
//! Valid UTF-8 serialises as a plain JSON string (serde_json escapes
//! newlines and control characters, so a line is always one event). Anything
//! else serialises as `{"lossy": "<U+FFFD-replaced>", "base64": "<exact bytes>"}`:
//! readable for a person, exact for a program.
use std::{borrow::Cow, fmt};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de, ser::SerializeStruct as _};

/// Bytes from the kernel, shown as text.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Text(pub Vec<u8>);

impl Text {
    /// Text for display and matching (invalid sequences become U+FFFD).
    pub fn lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }

    /// The exact bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<&[u8]> for Text {
    fn from(b: &[u8]) -> Self {
        Self(b.to_vec())
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Self(s.as_bytes().to_vec())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.lossy())
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lossy())
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(v) => s.serialize_str(v),
            Err(_) => {
                let mut st = s.serialize_struct("Text", 2)?;
                st.serialize_field("lossy", &self.lossy())?;
                st.serialize_field("base64", &STANDARD.encode(&self.0))?;
                st.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Plain(String),
            Binary { base64: String },
        }
        match Repr::deserialize(d)? {
            Repr::Plain(s) => Ok(Self(s.into_bytes())),
            Repr::Binary { base64 } => STANDARD.decode(base64).map(Self).map_err(de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(bytes: &[u8]) -> String {
        let json = serde_json::to_string(&Text(bytes.to_vec())).unwrap();
        let back: Text = serde_json::from_str(&json).unwrap();
        assert_eq!(back.0, bytes, "round trip of {json}");
        json
    }

    #[test]
    fn utf8_is_a_plain_string() {
        assert_eq!(roundtrip(b"/tmp/a b"), r#""/tmp/a b""#);
    }

    #[test]
    fn newlines_and_controls_stay_on_one_line() {
        let json = roundtrip(b"evil\n{\"kind\":\"exec\"}\r\x1b[2J\0");
        assert!(!json.contains('\n') && !json.contains('\r'), "{json}");
    }

    #[test]
    fn invalid_utf8_is_exact_and_readable() {
        let json = roundtrip(b"caf\xe9\xff/\x80");
        assert!(json.contains(r#""lossy":"caf"#), "{json}");
        assert!(json.contains(r#""base64":"#), "{json}");
    }

    #[test]
    fn huge_values_round_trip() {
        let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        roundtrip(&big);
    }
}
