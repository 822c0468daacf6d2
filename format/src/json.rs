//! Reading a versioned JSON file: parse, check `format_version` before the fields (a file of
//! another version may not deserialise at all), deserialise, validate.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// A JSON document with a `format_version` field and its own checks.
pub trait Versioned: DeserializeOwned {
    /// The version this code reads and writes.
    const FORMAT_VERSION: u32;
    /// What the document is, for messages: "an odelt manifest".
    const WHAT: &'static str;

    /// Checks beyond the types (e.g. the model config's constraints).
    fn validate(&self) -> Result<()> {
        Ok(())
    }
}

/// Reads `path` as a `T`, naming the file in every error.
pub fn read_versioned<T: Versioned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(Error::read(path))?;
    parse_versioned(&text, path)
}

/// [`read_versioned`] on text already read from `path`.
pub fn parse_versioned<T: Versioned>(text: &str, path: &Path) -> Result<T> {
    let shown = || path.display().to_string();
    let json = |source| Error::Json {
        path: shown(),
        what: T::WHAT,
        source,
    };
    let value: serde_json::Value = serde_json::from_str(text).map_err(json)?;
    // Another version may not deserialise at all: say which version it is first. Without a
    // version field, deserialising names what is missing.
    if let Some(found) = value.get("format_version").and_then(serde_json::Value::as_u64) {
        if found != u64::from(T::FORMAT_VERSION) {
            return Err(Error::Version {
                path: shown(),
                what: T::WHAT,
                found,
                expected: T::FORMAT_VERSION,
            });
        }
    }
    let doc: T = serde_json::from_value(value).map_err(json)?;
    doc.validate()?;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Doc {
        #[allow(dead_code)]
        format_version: u32,
        size: u32,
    }

    impl Versioned for Doc {
        const FORMAT_VERSION: u32 = 2;
        const WHAT: &'static str = "a test document";
        fn validate(&self) -> Result<()> {
            if self.size == 0 {
                return Err(Error::InvalidArgument("size must be positive".into()));
            }
            Ok(())
        }
    }

    fn parse(text: &str) -> Result<Doc> {
        parse_versioned(text, Path::new("doc.json"))
    }

    #[test]
    fn checks_version_before_fields_then_validates() {
        assert_eq!(
            parse(r#"{"format_version": 2, "size": 3}"#).expect("valid").size,
            3
        );
        let other = parse(r#"{"format_version": 3, "other": true}"#).expect_err("version");
        assert!(matches!(other, Error::Version { found: 3, .. }), "{other}");
        assert!(other.to_string().contains("doc.json"), "{other}");
        let missing = parse(r#"{"size": 3}"#).expect_err("no version");
        assert!(missing.to_string().contains("format_version"), "{missing}");
        let array = parse("[]").expect_err("not an object");
        assert!(
            array.to_string().contains("not valid JSON for a test document"),
            "{array}"
        );
        let invalid = parse(r#"{"format_version": 2, "size": 0}"#).expect_err("validate");
        assert!(invalid.to_string().contains("positive"), "{invalid}");
        let broken = parse("{").expect_err("json");
        assert!(
            matches!(broken, Error::Json { .. }) && broken.is_input(),
            "{broken}"
        );
    }
}
