//! Reading a request body strictly: serde reads a struct from a JSON array as well as from an
//! object (`["x", null]` is a `{url, kind}`), at any depth. No client means that and no API
//! document allows it, so [`from_value`] reads every struct only from an object, the top-level
//! one and every nested one (`{"filter": []}`, `{"media": ["https://…", "image"]}`).
//!
//! It wraps `serde_json::Value`'s own deserializer and changes nothing else: arrays are still
//! arrays where the type asks for a sequence, scalars and errors are serde_json's.

use serde::de::{
    self,
    value::{MapDeserializer, SeqDeserializer},
    DeserializeOwned, Deserializer, IntoDeserializer, Unexpected, Visitor,
};
use serde_json::{Map, Value};

/// `T` read from `value`, every struct in it from a JSON object only.
pub(crate) fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    T::deserialize(Strict(value))
}

/// A JSON value whose structs must be objects.
struct Strict(Value);

impl<'de> IntoDeserializer<'de, serde_json::Error> for Strict {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

fn unexpected(v: &Value) -> Unexpected<'_> {
    match v {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(_) => Unexpected::Other("number"),
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

fn visit_seq<'de, V: Visitor<'de>>(items: Vec<Value>, v: V) -> Result<V::Value, serde_json::Error> {
    let mut seq = SeqDeserializer::new(items.into_iter().map(Strict));
    let out = v.visit_seq(&mut seq)?;
    seq.end()?;
    Ok(out)
}

fn visit_map<'de, V: Visitor<'de>>(
    map: Map<String, Value>,
    v: V,
) -> Result<V::Value, serde_json::Error> {
    let mut entries = MapDeserializer::new(map.into_iter().map(|(k, val)| (k, Strict(val))));
    let out = v.visit_map(&mut entries)?;
    entries.end()?;
    Ok(out)
}

/// Scalars and the rest go to `serde_json::Value`'s deserializer unchanged.
macro_rules! forward {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
            self.0.$method(v)
        })*
    };
}

impl<'de> Deserializer<'de> for Strict {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Array(items) => visit_seq(items, v),
            Value::Object(map) => visit_map(map, v),
            other => other.deserialize_any(v),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(map) => visit_map(map, v),
            other => Err(de::Error::invalid_type(unexpected(&other), &v)),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(map) => visit_map(map, v),
            other => Err(de::Error::invalid_type(unexpected(&other), &v)),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Array(items) => visit_seq(items, v),
            other => Err(de::Error::invalid_type(unexpected(&other), &v)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        v: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        v: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_seq(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => v.visit_none(),
            other => v.visit_some(Strict(other)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Self::Error> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_unit_struct(name, v)
    }

    /// Externally tagged enums (none in the request bodies) are serde_json's own.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, v)
    }

    forward! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_str
        deserialize_string deserialize_bytes deserialize_byte_buf deserialize_unit
        deserialize_identifier deserialize_ignored_any
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::from_value;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        url: String,
        kind: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[serde(default)]
        inner: Option<Inner>,
        #[serde(default)]
        tags: Vec<String>,
        #[serde(default)]
        count: Option<u32>,
        #[serde(default)]
        at: Option<chrono::DateTime<chrono::Utc>>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
    enum Tagged {
        Email { address: String },
    }

    #[test]
    fn a_struct_is_read_only_from_an_object_at_every_depth() {
        for body in [json!([]), json!([null, [], null, null]), json!({"inner": ["u", "image"]})] {
            let e = from_value::<Outer>(body.clone()).expect_err(&body.to_string());
            assert!(e.to_string().contains("invalid type: sequence, expected struct"), "{e}");
        }
        let e = from_value::<Outer>(json!({"inner": "u"})).unwrap_err();
        assert!(e.to_string().contains("invalid type: string \"u\", expected struct Inner"), "{e}");
    }

    #[test]
    fn everything_else_reads_as_serde_json_reads_it() {
        let body = json!({
            "inner": {"url": "https://x", "kind": null},
            "tags": ["a", "b"],
            "count": 3,
            "at": "2026-01-02T03:04:05Z",
        });
        let read: Outer = from_value(body.clone()).unwrap();
        let expected = Outer {
            inner: Some(Inner { url: "https://x".into(), kind: None }),
            tags: vec!["a".into(), "b".into()],
            count: Some(3),
            at: Some("2026-01-02T03:04:05Z".parse().unwrap()),
        };
        assert_eq!(read, expected);
        assert_eq!(from_value::<Outer>(json!({"inner": null})).unwrap().inner, None);
        // serde_json's own errors, unchanged.
        for (body, says) in [
            (json!({"count": -1}), "invalid value: integer `-1`"),
            (json!({"tags": "a"}), "invalid type: string \"a\", expected a sequence"),
            (json!({"at": ""}), "premature end of input"),
            (json!({"other": 1}), "unknown field `other`"),
            (json!({"inner": {}}), "missing field `url`"),
        ] {
            let e = from_value::<Outer>(body.clone()).expect_err(&body.to_string());
            assert!(e.to_string().contains(says), "{body}: {e}");
        }
        let tagged: Tagged =
            from_value(json!({"kind": "email", "address": "a@b.example"})).unwrap();
        assert_eq!(tagged, Tagged::Email { address: "a@b.example".into() });
        let e = from_value::<Tagged>(json!({"kind": "email", "address": "a", "x": 1})).unwrap_err();
        assert!(e.to_string().contains("unknown field `x`"), "{e}");
    }
}
