//! What the publisher's OpenAPI document says about free text and URLs, checked exactly so:
//! the document and the handlers must agree (`make test-api` runs schemathesis on both).
//!
//! The patterns spell their characters out instead of `\s`/`\S`, which ECMA-262 (the
//! document's dialect), Python (schemathesis) and Rust each read differently.

use std::borrow::Cow;

use utoipa::{
    openapi::{
        schema::{ObjectBuilder, SchemaFormat, Type},
        RefOr, Schema,
    },
    PartialSchema, ToSchema,
};

/// The `pattern` of a text that must say something: no NUL anywhere (Postgres text cannot hold
/// one) and a character other than a space, a tab or a line break. The attributes repeat it (a
/// utoipa `pattern` is a literal); `crate::tests` checks every one against this, and the tests
/// below check [`check_words`] against it.
#[cfg(test)]
pub(crate) const TEXT_PATTERN: &str = r"^[^\x00]*[^\x00 \t\n\r][^\x00]*$";
/// The `pattern` of an idempotency key of a post: anything but NUL.
#[cfg(test)]
pub(crate) const KEY_PATTERN: &str = r"^[^\x00]*$";

/// Only spaces, tabs and line breaks (or nothing).
pub(crate) fn blank(s: &str) -> bool {
    s.chars().all(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
}

/// A text field of [`TEXT_PATTERN`] with `minLength: 1`, `maxLength: max`; the error says
/// what is wrong with `name`.
pub(crate) fn check_words(name: &str, s: &str, max: usize) -> Result<(), String> {
    if s.contains('\0') {
        return Err(format!("{name} must not contain NUL characters (\\u0000)"));
    }
    if blank(s) {
        return Err(format!(
            "{name} must not be empty (it needs a character other than spaces, tabs and line breaks)"
        ));
    }
    if s.chars().count() > max {
        return Err(format!("{name} is longer than {max} characters"));
    }
    Ok(())
}

/// Only the characters RFC 3986 allows in a URI, and `%` only before two hex digits: what the
/// document's `format: uri` admits. `Url::parse` is more lenient (it encodes a space or an `é`
/// in a path), so it alone would take URLs the document calls invalid.
pub(crate) fn uri_characters(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().all(|(i, &c)| match c {
        b'%' => b.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)),
        _ => c.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&c),
    })
}

/// The schema of a media URL: `format: uri` (utoipa's `Uri` format needs a feature this
/// workspace does not enable, so it is spelled here).
pub(crate) struct MediaUrl;

impl PartialSchema for MediaUrl {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::Custom("uri".into())))
            .description(Some(
                "An absolute URI (RFC 3986: ASCII, no spaces): `https` unless the operator allows \
                 `http` (`LIFELINE_MEDIA_ALLOW_HTTP`), a public host, no credentials.",
            ))
            .examples([serde_json::json!("https://cdn.example/launch.jpg")])
            .into()
    }
}

impl ToSchema for MediaUrl {
    fn name() -> Cow<'static, str> {
        "MediaUrl".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_words_is_the_text_pattern_with_its_lengths() {
        let pattern = regex::Regex::new(TEXT_PATTERN).unwrap();
        let cases = [
            "a", " a ", "\u{a0}", "\u{3000}", "\u{85}", "\u{1c}", "\u{feff}", "é", "a\nb", "", " ",
            "\t\r\n ", "\0", "a\0", "\0 ", "xxxxx", "xxxxxx",
        ];
        for case in cases {
            let documented = pattern.is_match(case) && (1..=5).contains(&case.chars().count());
            assert_eq!(check_words("t", case, 5).is_ok(), documented, "{case:?}");
        }
        assert!(check_words("note", "a\0", 5).unwrap_err().contains("NUL"));
        assert!(check_words("note", " ", 5).unwrap_err().contains("must not be empty"));
        assert!(check_words("note", "xxxxxx", 5).unwrap_err().contains("longer than 5"));
        let key = regex::Regex::new(KEY_PATTERN).unwrap();
        assert!(key.is_match(" k ") && !key.is_match("k\0"));
    }

    #[test]
    fn uri_characters_are_rfc_3986_s() {
        for ok in ["https://cdn.example/a%20b.jpg?x=1&y=(2)#top", "https://[::1]:8443/~a"] {
            assert!(uri_characters(ok), "{ok}");
        }
        for bad in ["https://a/b c", "https://a/é", "https://a/%2", "https://a/%zz", "a\"b", "a{b}"]
        {
            assert!(!uri_characters(bad), "{bad}");
        }
    }
}
