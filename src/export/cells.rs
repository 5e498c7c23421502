//! One cell of an export file → one SQLite value, from the cell's raw JSON text
//! (so numbers are read from their digits, not through `f64`).
//!
//! Plain columns: `null` → NULL; `true`/`false` → 1/0; a number written with a
//! fraction or exponent → REAL (`1e999`/`-1e999`, how exports write infinities,
//! → ±infinity); a number without → INTEGER, and one outside SQLite's 64-bit
//! INTEGER range is refused (never silently turned into a REAL); a string → TEXT;
//! arrays and objects are errors.
//!
//! JSON columns ([`super::Table::json_columns`]): a string → its text (how
//! exports write text that is not an embeddable JSON value); `null` → NULL; any
//! other value → its exact JSON text as the file spells it (spacing, digits,
//! `-0`, key order). A value spread over several lines (pretty-printed by another
//! program; lumina-backup writes each row on one line) is stored with the
//! whitespace between its tokens removed.

use rusqlite::types::Value;

/// Converts the raw JSON text of one cell; `Err` is the reason, for a message.
pub(super) fn cell_value(raw: &str, json_column: bool) -> Result<Value, String> {
    let raw = raw.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    match raw.as_bytes().first() {
        None => Err("an empty value".into()),
        Some(b'n') => Ok(Value::Null),
        Some(b'"') => serde_json::from_str::<String>(raw)
            .map(Value::Text)
            .map_err(|e| e.to_string()),
        Some(_) if json_column => Ok(Value::Text(if raw.contains(['\n', '\r']) {
            compact(raw)
        } else {
            raw.to_string()
        })),
        Some(b't') => Ok(Value::Integer(1)),
        Some(b'f') => Ok(Value::Integer(0)),
        Some(b'[') => Err("an array, which only JSON columns hold".into()),
        Some(b'{') => Err("an object, which only JSON columns hold".into()),
        Some(_) => number(raw),
    }
}

/// A JSON number token (already validated by the parser).
fn number(tok: &str) -> Result<Value, String> {
    if tok.contains(['.', 'e', 'E']) {
        // Rust parses to the nearest f64; beyond the range that is ±infinity.
        return tok
            .parse::<f64>()
            .map(Value::Real)
            .map_err(|e| format!("number {tok}: {e}"));
    }
    tok.parse::<i64>().map(Value::Integer).map_err(|_| {
        format!(
            "integer {tok} does not fit in SQLite's INTEGER (64-bit signed); write it as \
             {tok}.0 to store it as a REAL, or as a string to keep its digits"
        )
    })
}

/// JSON text without whitespace outside strings.
fn compact(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let (mut in_str, mut escaped) = (false, false);
    for c in raw.chars() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values() {
        assert_eq!(cell_value("null", false), Ok(Value::Null));
        assert_eq!(cell_value("true", false), Ok(Value::Integer(1)));
        assert_eq!(cell_value("-0", false), Ok(Value::Integer(0)));
        assert_eq!(
            cell_value("-9223372036854775808", false),
            Ok(Value::Integer(i64::MIN))
        );
        assert_eq!(cell_value("1e30", false), Ok(Value::Real(1e30)));
        assert_eq!(cell_value("1e999", false), Ok(Value::Real(f64::INFINITY)));
        assert_eq!(
            cell_value("-1e999", false),
            Ok(Value::Real(f64::NEG_INFINITY))
        );
        assert!(
            matches!(cell_value("-0.0", false), Ok(Value::Real(x)) if x == 0.0 && x.is_sign_negative())
        );
        for big in [
            "9223372036854775808",
            "-9223372036854775809",
            "1000000000000000000000000000000",
        ] {
            let e = cell_value(big, false).expect_err("out of range");
            assert!(e.contains(big) && e.contains("INTEGER"), "{e}");
        }
        assert_eq!(
            cell_value("\"a\\nb\"", false),
            Ok(Value::Text("a\nb".into()))
        );
        assert!(cell_value("[1]", false).is_err());
    }

    #[test]
    fn json_column_text_is_kept() {
        for raw in [
            r#"[ "a" , "b" ]"#,
            "[12345678901234567890123, 0.1, -0]",
            r#"{"b": 1, "a": 2.50}"#,
            "[1e400]",
            "true",
            "-0",
        ] {
            assert_eq!(cell_value(raw, true), Ok(Value::Text(raw.into())));
        }
        assert_eq!(
            cell_value("[\n  \"a b\",\n  1.50\n]", true),
            Ok(Value::Text("[\"a b\",1.50]".into()))
        );
        assert_eq!(
            cell_value("\"not json [\"", true),
            Ok(Value::Text("not json [".into()))
        );
        assert_eq!(cell_value("null", true), Ok(Value::Null));
    }
}
