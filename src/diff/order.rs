//! Key order exactly as SQLite sorts: NULL, then numbers (integers and reals
//! compared by value), then text under the key column's collation, then blobs
//! (bytewise). BINARY compares the text as the database encodes it (UTF-16 bytes
//! in a UTF-16 database); NOCASE folds ASCII letters only; RTRIM ignores trailing
//! spaces. Collations this crate does not know are replaced by BINARY, in the
//! SQL `ORDER BY` and here alike, so both sides always agree.
//!
//! Values are the diff's JSON renderings: numbers, strings, `["blob", hex]`, and
//! `["real", "inf" | "-inf"]` for infinities.

use std::cmp::Ordering;

use serde_json::Value;

/// A key column's collation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Collation {
    /// Bytes of the encoded text.
    #[default]
    Binary,
    /// ASCII letters folded to lower case.
    NoCase,
    /// Trailing spaces ignored.
    RTrim,
}

impl Collation {
    /// The collation of that name (as SQLite spells it, any case); `None` for an
    /// application-defined one.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "BINARY" => Some(Collation::Binary),
            "NOCASE" => Some(Collation::NoCase),
            "RTRIM" => Some(Collation::RTrim),
            _ => None,
        }
    }

    /// The name for a `COLLATE` clause.
    pub fn sql_name(self) -> &'static str {
        match self {
            Collation::Binary => "BINARY",
            Collation::NoCase => "NOCASE",
            Collation::RTrim => "RTRIM",
        }
    }
}

/// The database's text encoding (`PRAGMA encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// UTF-8.
    #[default]
    Utf8,
    /// UTF-16, little-endian.
    Utf16le,
    /// UTF-16, big-endian.
    Utf16be,
}

impl Encoding {
    /// From `PRAGMA encoding`'s answer.
    pub fn from_pragma(s: &str) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "utf-16le" => Encoding::Utf16le,
            "utf-16be" => Encoding::Utf16be,
            _ => Encoding::Utf8,
        }
    }
}

/// How keys of one table are ordered: a collation per key column (missing ones
/// are BINARY) and the text encoding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyOrder {
    /// Collation of each key column.
    pub collations: Vec<Collation>,
    /// Text encoding of the database.
    pub encoding: Encoding,
}

impl KeyOrder {
    /// BINARY for every column, UTF-8.
    pub fn binary() -> Self {
        KeyOrder::default()
    }

    /// Orders two keys column by column.
    pub fn cmp_key(&self, a: &[Value], b: &[Value]) -> Ordering {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            let coll = self.collations.get(i).copied().unwrap_or_default();
            match self.cmp_value(coll, x, y) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        a.len().cmp(&b.len())
    }

    /// Orders two values of a column with collation `coll`.
    pub fn cmp_value(&self, coll: Collation, a: &Value, b: &Value) -> Ordering {
        let (ca, cb) = (class(a), class(b));
        match (ca, cb) {
            (Class::Num(x), Class::Num(y)) => cmp_num(x, y),
            (Class::Text(x), Class::Text(y)) => self.cmp_text(coll, x, y),
            // Lowercase hex of fixed width orders as the bytes do.
            (Class::Blob(x), Class::Blob(y)) => x.cmp(y),
            (Class::Other, Class::Other) => a.to_string().cmp(&b.to_string()),
            _ => ca.rank().cmp(&cb.rank()),
        }
    }

    fn cmp_text(&self, coll: Collation, a: &str, b: &str) -> Ordering {
        match coll {
            Collation::NoCase => a
                .bytes()
                .map(|c| c.to_ascii_lowercase())
                .cmp(b.bytes().map(|c| c.to_ascii_lowercase())),
            Collation::RTrim => a.trim_end_matches(' ').cmp(b.trim_end_matches(' ')),
            Collation::Binary => match self.encoding {
                Encoding::Utf8 => a.as_bytes().cmp(b.as_bytes()),
                Encoding::Utf16le => a
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes)
                    .cmp(b.encode_utf16().flat_map(u16::to_le_bytes)),
                Encoding::Utf16be => a
                    .encode_utf16()
                    .flat_map(u16::to_be_bytes)
                    .cmp(b.encode_utf16().flat_map(u16::to_be_bytes)),
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i64),
    Real(f64),
}

#[derive(Debug, Clone, Copy)]
enum Class<'v> {
    Null,
    Num(Num),
    Text(&'v str),
    Blob(&'v str),
    Other,
}

impl Class<'_> {
    fn rank(&self) -> u8 {
        match self {
            Class::Null => 0,
            Class::Num(_) => 1,
            Class::Text(_) => 2,
            Class::Blob(_) => 3,
            Class::Other => 4,
        }
    }
}

fn class(v: &Value) -> Class<'_> {
    match v {
        Value::Null => Class::Null,
        Value::Bool(b) => Class::Num(Num::Int(i64::from(*b))),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Class::Num(Num::Int(i)),
            None => Class::Num(Num::Real(n.as_f64().unwrap_or(0.0))),
        },
        Value::String(s) => Class::Text(s),
        Value::Array(a) => match (a.first().and_then(Value::as_str), a.get(1)) {
            (Some("blob"), Some(Value::String(h))) if a.len() == 2 => Class::Blob(h),
            (Some("real"), Some(Value::String(s))) if a.len() == 2 => match s.as_str() {
                "inf" => Class::Num(Num::Real(f64::INFINITY)),
                "-inf" => Class::Num(Num::Real(f64::NEG_INFINITY)),
                _ => Class::Other,
            },
            _ => Class::Other,
        },
        Value::Object(_) => Class::Other,
    }
}

fn cmp_num(a: Num, b: Num) -> Ordering {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => x.cmp(&y),
        (Num::Real(x), Num::Real(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        (Num::Int(x), Num::Real(y)) => cmp_int_real(x, y),
        (Num::Real(x), Num::Int(y)) => cmp_int_real(y, x).reverse(),
    }
}

/// An integer against a real, exactly (as SQLite's `sqlite3IntFloatCompare`).
fn cmp_int_real(i: i64, r: f64) -> Ordering {
    if r.is_nan() {
        return Ordering::Greater;
    }
    // 2^63 and beyond, -2^63 and below: outside every i64.
    if r >= 9_223_372_036_854_775_808.0 {
        return Ordering::Less;
    }
    if r < -9_223_372_036_854_775_808.0 {
        return Ordering::Greater;
    }
    let t = r.trunc();
    // In range, so the truncation converts exactly.
    match i.cmp(&(t as i64)) {
        Ordering::Equal => 0.0f64.partial_cmp(&(r - t)).unwrap_or(Ordering::Equal),
        o => o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn binary_order_matches_sqlite() {
        let o = KeyOrder::binary();
        let mut v = vec![
            json!(["blob", "00ff"]),
            json!("b"),
            json!(null),
            json!(10),
            json!("B"),
            json!(2),
            json!(1.5),
            json!("é"),
            json!(["real", "inf"]),
            json!(["real", "-inf"]),
            json!(9_223_372_036_854_775_807_i64),
            json!(9.223372036854776e18),
        ];
        v.sort_by(|a, b| o.cmp_value(Collation::Binary, a, b));
        assert_eq!(
            v,
            vec![
                json!(null),
                json!(["real", "-inf"]),
                json!(1.5),
                json!(2),
                json!(10),
                json!(9_223_372_036_854_775_807_i64),
                json!(9.223372036854776e18),
                json!(["real", "inf"]),
                json!("B"),
                json!("b"),
                json!("é"),
                json!(["blob", "00ff"]),
            ]
        );
    }

    #[test]
    fn collations_and_utf16() {
        let o = KeyOrder::binary();
        assert_eq!(
            o.cmp_value(Collation::NoCase, &json!("Banana"), &json!("apple")),
            Ordering::Greater
        );
        assert_eq!(
            o.cmp_value(Collation::NoCase, &json!("ABC"), &json!("abc")),
            Ordering::Equal
        );
        assert_eq!(
            o.cmp_value(Collation::RTrim, &json!("a  "), &json!("a")),
            Ordering::Equal
        );
        // U+FF01 against U+10000: UTF-8 puts U+FF01 first, UTF-16 (surrogates
        // D800..) puts U+10000 first.
        let (a, b) = (json!("\u{ff01}"), json!("\u{10000}"));
        assert_eq!(o.cmp_value(Collation::Binary, &a, &b), Ordering::Less);
        let be = KeyOrder {
            encoding: Encoding::Utf16be,
            ..KeyOrder::default()
        };
        assert_eq!(be.cmp_value(Collation::Binary, &a, &b), Ordering::Greater);
    }
}
