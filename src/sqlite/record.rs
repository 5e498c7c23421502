//! SQLite's record format (file-format doc §2.1): a header of serial types, then
//! the values. Decoding never panics: every length is checked against the bytes
//! at hand, and a malformed record is an `Err` naming what is wrong.

/// One value of a record, as SQLite stores it.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// Serial type 0.
    Null,
    /// Serial types 1-6, 8 and 9.
    Int(i64),
    /// Serial type 7.
    Real(f64),
    /// Odd serial types ≥ 13 (bytes in the database's encoding).
    Text(Vec<u8>),
    /// Even serial types ≥ 12.
    Blob(Vec<u8>),
}

impl Val {
    /// As rusqlite's borrowed value.
    pub fn as_ref(&self) -> rusqlite::types::ValueRef<'_> {
        use rusqlite::types::ValueRef;
        match self {
            Val::Null => ValueRef::Null,
            Val::Int(i) => ValueRef::Integer(*i),
            Val::Real(f) => ValueRef::Real(*f),
            Val::Text(t) => ValueRef::Text(t),
            Val::Blob(b) => ValueRef::Blob(b),
        }
    }
}

/// A SQLite varint at the start of `b`: its value and length (1-9 bytes,
/// big-endian, 7 bits per byte except the ninth which gives 8).
pub fn varint(b: &[u8]) -> Result<(u64, usize), String> {
    let mut v: u64 = 0;
    for i in 0..9 {
        let byte = *b.get(i).ok_or("a varint runs past the end")?;
        if i == 8 {
            return Ok(((v << 8) | u64::from(byte), 9));
        }
        v = (v << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    Err("a varint runs past the end".into())
}

/// Bytes a value of serial type `t` occupies in the body.
fn body_len(t: u64) -> Result<usize, String> {
    Ok(match t {
        0 | 8 | 9 => 0,
        1 => 1,
        2 => 2,
        3 => 3,
        4 => 4,
        5 => 6,
        6 | 7 => 8,
        10 | 11 => return Err(format!("reserved serial type {t}")),
        n => usize::try_from((n - 12) / 2).map_err(|_| format!("serial type {n} too large"))?,
    })
}

/// The record's header length and the length of the varint giving it,
/// checked against the record.
fn header(rec: &[u8]) -> Result<(usize, usize), String> {
    let (hlen, n) = varint(rec)?;
    let hlen = usize::try_from(hlen).map_err(|_| "header length too large")?;
    if hlen < n || hlen > rec.len() {
        return Err(format!(
            "record header length {hlen} outside the record of {} bytes",
            rec.len()
        ));
    }
    Ok((hlen, n))
}

/// Decodes a whole record.
pub fn decode(rec: &[u8]) -> Result<Vec<Val>, String> {
    let (hlen, n) = header(rec)?;
    let mut types = Vec::new();
    let mut at = n;
    while at < hlen {
        let (t, k) = varint(&rec[at..hlen])?;
        types.push(t);
        at += k;
    }
    let mut body = hlen;
    let mut out = Vec::with_capacity(types.len());
    for t in types {
        let len = body_len(t)?;
        let end = body
            .checked_add(len)
            .filter(|&e| e <= rec.len())
            .ok_or_else(|| format!("a value of serial type {t} runs past the record"))?;
        let b = &rec[body..end];
        let int = |b: &[u8]| -> i64 {
            // Big-endian two's complement of 1-8 bytes, sign-extended.
            let mut v: i64 = if b.first().is_some_and(|&x| x & 0x80 != 0) {
                -1
            } else {
                0
            };
            for &x in b {
                v = (v << 8) | i64::from(x);
            }
            v
        };
        out.push(match t {
            0 => Val::Null,
            1..=6 => Val::Int(int(b)),
            7 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Val::Real(f64::from_be_bytes(a))
            }
            8 => Val::Int(0),
            9 => Val::Int(1),
            t if t % 2 == 0 => Val::Blob(b.to_vec()),
            _ => Val::Text(b.to_vec()),
        });
        body = end;
    }
    Ok(out)
}

/// An index entry's rowid (its record's last value, an integer) and whether
/// any of its other values is NULL, without decoding those values.
pub fn index_entry(rec: &[u8]) -> Result<(i64, bool), String> {
    let (hlen, n) = header(rec)?;
    let mut at = n;
    let mut body = hlen;
    let mut null = false;
    let mut last = None;
    while at < hlen {
        let (t, k) = varint(&rec[at..hlen])?;
        at += k;
        if let Some((lt, _)) = last {
            null |= lt == 0;
        }
        let len = body_len(t)?;
        let end = body
            .checked_add(len)
            .filter(|&e| e <= rec.len())
            .ok_or_else(|| format!("a value of serial type {t} runs past the record"))?;
        last = Some((t, body..end));
        body = end;
    }
    let rowid = match last {
        Some((1..=6, range)) => {
            let b = &rec[range];
            let mut v: i64 = if b.first().is_some_and(|&x| x & 0x80 != 0) {
                -1
            } else {
                0
            };
            for &x in b {
                v = (v << 8) | i64::from(x);
            }
            v
        }
        Some((8, _)) => 0,
        Some((9, _)) => 1,
        _ => return Err("an index entry does not end with a rowid".into()),
    };
    Ok((rowid, null))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn index_entry_agrees_with_decode(rec in proptest::collection::vec(any::<u8>(), 0..64)) {
            let full = decode(&rec);
            match index_entry(&rec) {
                Ok((rowid, null)) => {
                    let vals = full.expect("index_entry accepted what decode refuses");
                    let (last, rest) = vals.split_last().expect("a value");
                    prop_assert_eq!(last, &Val::Int(rowid));
                    prop_assert_eq!(null, rest.contains(&Val::Null));
                }
                Err(_) => {
                    if let Ok(vals) = full {
                        prop_assert!(!matches!(vals.last(), Some(Val::Int(_))));
                    }
                }
            }
        }
    }

    #[test]
    fn varints() {
        assert_eq!(varint(&[0x7f]).unwrap(), (0x7f, 1));
        assert_eq!(varint(&[0x81, 0x00]).unwrap(), (0x80, 2));
        assert_eq!(varint(&[0xff; 9]).unwrap(), (u64::MAX, 9));
        assert!(varint(&[0x81]).is_err());
    }

    #[test]
    fn hand_made_record() {
        // Real databases are checked in `btree`'s tests.
        let rec = [
            4u8, 0, 1, 7, // header: NULL, int8 = 5, real
            5, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(
            decode(&rec).unwrap(),
            vec![Val::Null, Val::Int(5), Val::Real(1.5)]
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&b);
        }
    }
}
