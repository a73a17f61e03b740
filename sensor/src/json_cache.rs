//! JSON built once for values that many records share.
//!
//! Every event repeats its process's ancestry and its container, and
//! escaping the same strings for every event was most of the sensor's CPU
//! under a flood. The shared values are immutable once behind an `Arc`, so
//! their JSON is built on first use and then copied.
use std::sync::OnceLock;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// The JSON of the value that holds it, built on first use. A clone starts
/// empty (the clone may be changed before it is shared), and it takes no
/// part in equality.
#[derive(Default)]
pub struct JsonCache(OnceLock<Option<Box<RawValue>>>);

impl JsonCache {
    /// `value` (whose JSON this caches), to be written through the cache.
    /// Only for serde_json serializers, and only as a field's value, never
    /// flattened: a raw value is opaque to the rest of serde.
    pub fn of<'a, T: Serialize + ?Sized>(&'a self, value: &'a T) -> Cached<'a, T> {
        Cached(self, value)
    }
}

/// A value written through its [`JsonCache`].
pub struct Cached<'a, T: ?Sized>(&'a JsonCache, &'a T);

impl<T: Serialize + ?Sized> Serialize for Cached<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self
            .0
            .0
            .get_or_init(|| serde_json::value::to_raw_value(self.1).ok())
        {
            Some(raw) => raw.serialize(s),
            None => self.1.serialize(s),
        }
    }
}

impl Clone for JsonCache {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for JsonCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for JsonCache {}

impl std::fmt::Debug for JsonCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "JsonCache(built)"
        } else {
            "JsonCache(empty)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Holder<'a> {
        v: Cached<'a, [&'a str]>,
    }

    #[test]
    fn writes_the_same_json_as_the_value_and_escapes_once() {
        let cache = JsonCache::default();
        let args = vec!["a\"b", "line\nbreak", "\u{7}"];
        let direct = serde_json::to_string(&args).unwrap();
        let first = serde_json::to_string(&Holder {
            v: cache.of(&args[..]),
        })
        .unwrap();
        assert_eq!(first, format!("{{\"v\":{direct}}}"));
        // Built once: later writes copy it even if handed another value.
        let second = serde_json::to_string(&Holder {
            v: cache.of(&["other"][..]),
        })
        .unwrap();
        assert_eq!(first, second);
        assert_eq!(format!("{:?}", cache.clone()), "JsonCache(empty)");
        assert_eq!(format!("{cache:?}"), "JsonCache(built)");
    }
}
