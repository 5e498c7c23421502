//! The worked examples of `store-format.md`: reading its marked blocks, the
//! hex dump format, and a decoder of every example file written from the
//! document alone (no `lumina_backup` item is used here), which renders what it
//! decodes as the document's "decoded" blocks.
//!
//! Shared by `tests/format_golden.rs` (the document's bytes decode as the
//! document says) and the unit test `src/format/golden.rs` (the library writes
//! exactly the document's bytes; `LUMINA_BACKUP_BLESS=1` rewrites the blocks).
//! Only depends on crates the library itself depends on.
#![allow(dead_code)]

use std::fmt::Write as _;

/// The example master key: 32 bytes of encryption key (`00 01 … 1f`), then 32
/// bytes of id key (`20 21 … 3f`). An example only: never a real key.
pub fn example_master_key() -> [u8; 64] {
    let mut k = [0u8; 64];
    for (i, b) in k.iter_mut().enumerate() {
        *b = i as u8;
    }
    k
}

/// Passphrase of the example key file.
pub const EXAMPLE_PASSPHRASE: &str = "example";

/// Marker that opens a block: `<!-- golden: NAME hex -->` or `... decoded -->`,
/// followed by a fenced block.
const MARK: &str = "<!-- golden: ";

/// One marked fenced block of the document.
#[derive(Debug, Clone)]
pub struct Block {
    /// Example name (`config`, `pack`, ...).
    pub name: String,
    /// `hex` or `decoded`.
    pub what: String,
    /// The block's text (between the fences, with its final newline).
    pub text: String,
    /// Byte range of `text` in the document.
    pub range: std::ops::Range<usize>,
}

/// Every marked block of `doc`, in order.
pub fn blocks(doc: &str) -> Result<Vec<Block>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(found) = doc[at..].find(MARK) {
        let start = at + found;
        let end_mark = doc[start..]
            .find("-->")
            .ok_or("unterminated golden marker")?
            + start;
        let label = doc[start + MARK.len()..end_mark].trim();
        let (name, what) = label
            .split_once(' ')
            .ok_or_else(|| format!("golden marker {label:?} lacks `hex` or `decoded`"))?;
        let fence = doc[end_mark..]
            .find("\n```")
            .ok_or_else(|| format!("no fenced block after marker {label:?}"))?
            + end_mark
            + 1;
        let body_start = doc[fence..].find('\n').ok_or("unterminated fence")? + fence + 1;
        let body_end = doc[body_start..]
            .find("```")
            .ok_or_else(|| format!("unterminated block {label:?}"))?
            + body_start;
        out.push(Block {
            name: name.to_string(),
            what: what.to_string(),
            text: doc[body_start..body_end].to_string(),
            range: body_start..body_end,
        });
        at = body_end;
    }
    Ok(out)
}

/// The block `name`/`what` of `doc`.
pub fn block<'a>(all: &'a [Block], name: &str, what: &str) -> Result<&'a Block, String> {
    all.iter()
        .find(|b| b.name == name && b.what == what)
        .ok_or_else(|| format!("store-format.md has no `{name} {what}` block"))
}

/// `hexdump -C` style: offset, 16 bytes in two groups of 8, printable ASCII.
pub fn hexdump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (row, chunk) in bytes.chunks(16).enumerate() {
        let _ = write!(out, "{:08x} ", row * 16);
        for i in 0..16 {
            if i == 8 {
                out.push(' ');
            }
            match chunk.get(i) {
                Some(b) => {
                    let _ = write!(out, " {b:02x}");
                }
                None => out.push_str("   "),
            }
        }
        out.push_str("  |");
        for b in chunk {
            out.push(if b.is_ascii_graphic() || *b == b' ' {
                *b as char
            } else {
                '.'
            });
        }
        out.push_str("|\n");
    }
    out
}

/// Reads a [`hexdump`] back (offsets are checked; the ASCII column is ignored).
pub fn parse_hexdump(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (offset, rest) = line
            .split_once(' ')
            .ok_or_else(|| format!("hex line {n}: no offset"))?;
        let offset = usize::from_str_radix(offset, 16)
            .map_err(|e| format!("hex line {n}: offset {offset:?}: {e}"))?;
        if offset != out.len() {
            return Err(format!(
                "hex line {n}: offset {offset:#x}, expected {:#x}",
                out.len()
            ));
        }
        let hex_part = rest.split('|').next().unwrap_or("");
        for tok in hex_part.split_whitespace() {
            let b =
                u8::from_str_radix(tok, 16).map_err(|e| format!("hex line {n}: {tok:?}: {e}"))?;
            out.push(b);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// MessagePack, decoded by hand (the subset rmp-serde writes, and the rest of the
// core types), rendered in a diagnostic notation: maps `{ "k": v }`, arrays
// `[a, b]`, strings in JSON quotes, bin as `h'…'`, `nil`, integers in decimal.

/// A decoded MessagePack value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// nil
    Nil,
    /// true / false
    Bool(bool),
    /// any integer
    Int(i128),
    /// float 32/64
    Float(f64),
    /// str
    Str(String),
    /// bin
    Bin(Vec<u8>),
    /// array
    Array(Vec<Value>),
    /// map, in file order
    Map(Vec<(Value, Value)>),
}

impl Value {
    /// The value under string key `k` of a map.
    pub fn get(&self, k: &str) -> Option<&Value> {
        match self {
            Value::Map(m) => m
                .iter()
                .find(|(key, _)| matches!(key, Value::Str(s) if s == k))
                .map(|(_, v)| v),
            _ => None,
        }
    }
    /// An integer value.
    pub fn int(&self) -> Option<i128> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    /// A bin value.
    pub fn bin(&self) -> Option<&[u8]> {
        match self {
            Value::Bin(b) => Some(b),
            _ => None,
        }
    }
    /// A str value.
    pub fn str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// An array's items.
    pub fn items(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// Decodes exactly one MessagePack value filling `bytes`.
pub fn msgpack(bytes: &[u8]) -> Result<Value, String> {
    let mut at = 0;
    let v = read_value(bytes, &mut at, 0)?;
    if at != bytes.len() {
        return Err(format!("{} bytes after the value", bytes.len() - at));
    }
    Ok(v)
}

fn take<'a>(b: &'a [u8], at: &mut usize, n: usize) -> Result<&'a [u8], String> {
    let end = at.checked_add(n).ok_or("length overflow")?;
    let s = b.get(*at..end).ok_or("truncated MessagePack")?;
    *at = end;
    Ok(s)
}

fn be(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
}

fn read_value(b: &[u8], at: &mut usize, depth: u32) -> Result<Value, String> {
    if depth > 32 {
        return Err("nested too deep".into());
    }
    let tag = take(b, at, 1)?[0];
    let len =
        |at: &mut usize, n: usize| -> Result<usize, String> { Ok(be(take(b, at, n)?) as usize) };
    Ok(match tag {
        0x00..=0x7f => Value::Int(tag.into()),
        0x80..=0x8f => read_map(b, at, (tag & 0x0f).into(), depth)?,
        0x90..=0x9f => read_array(b, at, (tag & 0x0f).into(), depth)?,
        0xa0..=0xbf => read_str(b, at, (tag & 0x1f).into())?,
        0xc0 => Value::Nil,
        0xc2 => Value::Bool(false),
        0xc3 => Value::Bool(true),
        0xc4 => {
            let n = len(at, 1)?;
            Value::Bin(take(b, at, n)?.to_vec())
        }
        0xc5 => {
            let n = len(at, 2)?;
            Value::Bin(take(b, at, n)?.to_vec())
        }
        0xc6 => {
            let n = len(at, 4)?;
            Value::Bin(take(b, at, n)?.to_vec())
        }
        0xca => Value::Float(f32::from_bits(be(take(b, at, 4)?) as u32).into()),
        0xcb => Value::Float(f64::from_bits(be(take(b, at, 8)?))),
        0xcc => Value::Int(be(take(b, at, 1)?).into()),
        0xcd => Value::Int(be(take(b, at, 2)?).into()),
        0xce => Value::Int(be(take(b, at, 4)?).into()),
        0xcf => Value::Int(be(take(b, at, 8)?).into()),
        0xd0 => Value::Int((be(take(b, at, 1)?) as u8 as i8).into()),
        0xd1 => Value::Int((be(take(b, at, 2)?) as u16 as i16).into()),
        0xd2 => Value::Int((be(take(b, at, 4)?) as u32 as i32).into()),
        0xd3 => Value::Int((be(take(b, at, 8)?) as i64).into()),
        0xd9 => {
            let n = len(at, 1)?;
            read_str(b, at, n)?
        }
        0xda => {
            let n = len(at, 2)?;
            read_str(b, at, n)?
        }
        0xdb => {
            let n = len(at, 4)?;
            read_str(b, at, n)?
        }
        0xdc => {
            let n = len(at, 2)?;
            read_array(b, at, n, depth)?
        }
        0xdd => {
            let n = len(at, 4)?;
            read_array(b, at, n, depth)?
        }
        0xde => {
            let n = len(at, 2)?;
            read_map(b, at, n, depth)?
        }
        0xdf => {
            let n = len(at, 4)?;
            read_map(b, at, n, depth)?
        }
        0xe0..=0xff => Value::Int((tag as i8).into()),
        other => return Err(format!("MessagePack type {other:#04x} is not used here")),
    })
}

fn read_str(b: &[u8], at: &mut usize, n: usize) -> Result<Value, String> {
    let s = take(b, at, n)?;
    Ok(Value::Str(
        String::from_utf8(s.to_vec()).map_err(|e| format!("str is not UTF-8: {e}"))?,
    ))
}

fn read_array(b: &[u8], at: &mut usize, n: usize, depth: u32) -> Result<Value, String> {
    let mut v = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        v.push(read_value(b, at, depth + 1)?);
    }
    Ok(Value::Array(v))
}

fn read_map(b: &[u8], at: &mut usize, n: usize, depth: u32) -> Result<Value, String> {
    let mut v = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let k = read_value(b, at, depth + 1)?;
        let val = read_value(b, at, depth + 1)?;
        v.push((k, val));
    }
    Ok(Value::Map(v))
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Array(a) if !a.is_empty()) && !matches!(v, Value::Map(m) if !m.is_empty())
}

/// The diagnostic notation of `v`, indented by `indent` spaces after newlines.
pub fn render(v: &Value, indent: usize) -> String {
    let pad = " ".repeat(indent + 2);
    match v {
        Value::Nil => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format!("{f:?}"),
        Value::Str(s) => serde_json::to_string(s).unwrap_or_default(),
        Value::Bin(b) => format!("h'{}'", hex::encode(b)),
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Map(m) if m.is_empty() => "{}".into(),
        Value::Array(a) => {
            let inline: Vec<String> = a.iter().map(|x| render(x, indent)).collect();
            let one_line = format!("[{}]", inline.join(", "));
            if a.iter().all(is_scalar) && one_line.len() + indent <= 100 {
                return one_line;
            }
            let items: Vec<String> = a
                .iter()
                .map(|x| format!("{pad}{}", render(x, indent + 2)))
                .collect();
            format!("[\n{}\n{}]", items.join(",\n"), " ".repeat(indent))
        }
        Value::Map(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, x)| format!("{pad}{}: {}", render(k, indent + 2), render(x, indent + 2)))
                .collect();
            format!("{{\n{}\n{}}}", items.join(",\n"), " ".repeat(indent))
        }
    }
}

// ---------------------------------------------------------------------------
// The envelope and the example files, decoded as store-format.md describes them.

const MAGIC: [u8; 8] = [0x8B, b'L', b'U', b'M', b'B', b'K', b'\r', b'\n'];
const TRAILER_MAGIC: [u8; 8] = [0x8B, b'P', b'K', b'E', b'N', b'D', b'\r', b'\n'];

fn kind_name(kind: u8) -> &'static str {
    match kind {
        1 => "config",
        2 => "snapshot record",
        3 => "pack",
        4 => "key file",
        5 => "retention settings",
        6 => "status",
        7 => "change summary",
        9 => "chain event",
        _ => "unknown",
    }
}

/// Expected kind of each small-file example.
fn example_kind(name: &str) -> Option<u8> {
    Some(match name {
        "config" | "config-sealed" => 1,
        "snapshot" => 2,
        "pack" => 3,
        "key" => 4,
        "retention" => 5,
        "status" => 6,
        "changes" => 7,
        "chain-annotation" | "chain-deletion" => 9,
        _ => return None,
    })
}

struct Header {
    version: u16,
    kind: u8,
    flags: u8,
    body_len: u32,
}

fn header(bytes: &[u8], expected_kind: u8) -> Result<Header, String> {
    if bytes.len() < 16 {
        return Err("shorter than the 16-byte header".into());
    }
    if bytes[..8] != MAGIC {
        return Err("bad magic".into());
    }
    let h = Header {
        version: u16::from_le_bytes([bytes[8], bytes[9]]),
        kind: bytes[10],
        flags: bytes[11],
        body_len: u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]),
    };
    if !(1..=2).contains(&h.version) {
        return Err(format!("format version {}", h.version));
    }
    if h.kind != expected_kind {
        return Err(format!(
            "kind {} where {expected_kind} was expected",
            h.kind
        ));
    }
    if h.flags & !1 != 0 {
        return Err(format!("unknown flags {:#04x}", h.flags));
    }
    Ok(h)
}

fn header_line(h: &Header) -> String {
    format!(
        "header: version {}, kind {} ({}), flags {:#04x}{}, body length {}\n",
        h.version,
        h.kind,
        kind_name(h.kind),
        h.flags,
        if h.flags & 1 != 0 { " (sealed)" } else { "" },
        h.body_len
    )
}

/// Opens `nonce | ciphertext | tag` with XChaCha20-Poly1305.
pub fn open_sealed(key: &[u8; 32], ad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, String> {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    if sealed.len() < 40 {
        return Err("sealed object shorter than nonce and tag".into());
    }
    let cipher = chacha20poly1305::XChaCha20Poly1305::new(key.into());
    let (nonce, ct) = sealed.split_at(24);
    cipher
        .decrypt(
            chacha20poly1305::XNonce::from_slice(nonce),
            Payload { msg: ct, aad: ad },
        )
        .map_err(|_| "authentication failed".to_string())
}

/// Seals `plaintext` with a given nonce: `nonce | ciphertext | tag`.
pub fn seal_with_nonce(key: &[u8; 32], nonce: &[u8; 24], ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    let cipher = chacha20poly1305::XChaCha20Poly1305::new(key.into());
    let ct = cipher
        .encrypt(
            chacha20poly1305::XNonce::from_slice(nonce),
            Payload {
                msg: plaintext,
                aad: ad,
            },
        )
        .expect("in-memory encryption");
    [&nonce[..], &ct].concat()
}

/// The associated data that wraps a master key in a key file.
pub fn key_wrap_ad(m_cost_kib: u32, t_cost: u32, p_cost: u32, salt: &[u8]) -> Vec<u8> {
    let mut ad = b"lumina-backup key v1".to_vec();
    for x in [m_cost_kib, t_cost, p_cost] {
        ad.extend_from_slice(&x.to_le_bytes());
    }
    ad.extend_from_slice(salt);
    ad
}

/// Argon2id (version 0x13), 32-byte output.
pub fn argon2id(
    passphrase: &[u8],
    salt: &[u8],
    m: u32,
    t: u32,
    p: u32,
) -> Result<[u8; 32], String> {
    let params = argon2::Params::new(m, t, p, Some(32)).map_err(|e| e.to_string())?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    a.hash_password_into(passphrase, salt, &mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Decodes example file `name` as store-format.md describes it and renders it
/// as the document's `decoded` block. Fails on any check the document asks a
/// reader to make (magic, version, kind, flags, lengths, checksums, tags).
pub fn describe(name: &str, bytes: &[u8]) -> Result<String, String> {
    match name {
        "pack" => describe_pack(bytes),
        "tree-node" => {
            let v = msgpack(bytes)?;
            Ok(format!(
                "chunk of kind 1 (tree node), id (BLAKE3 of these {} bytes): {}\n{}\n",
                bytes.len(),
                hex::encode(blake3::hash(bytes).as_bytes()),
                render(&v, 0)
            ))
        }
        "chunk-location" => describe_location(bytes),
        _ => describe_small(name, bytes),
    }
}

fn describe_small(name: &str, bytes: &[u8]) -> Result<String, String> {
    let kind = example_kind(name).ok_or_else(|| format!("no example named {name}"))?;
    let h = header(bytes, kind)?;
    let end = 16 + h.body_len as usize;
    if bytes.len() != end + 32 {
        return Err(format!(
            "{} bytes; header, body and checksum make {}",
            bytes.len(),
            end + 32
        ));
    }
    let sum = blake3::hash(&bytes[..end]);
    if sum.as_bytes()[..] != bytes[end..] {
        return Err("checksum does not match".into());
    }
    let mut out = header_line(&h);
    let _ = writeln!(
        out,
        "checksum: {} (BLAKE3 of header and body)",
        hex::encode(&bytes[end..])
    );
    let body = &bytes[16..end];
    let plain = if h.flags & 1 != 0 {
        let ad_name = match name {
            "config-sealed" => "config",
            other => return Err(format!("no key for the sealed example {other}")),
        };
        let key = example_master_key();
        let mut enc = [0u8; 32];
        enc.copy_from_slice(&key[..32]);
        let mut ad = bytes[..16].to_vec();
        ad.extend_from_slice(ad_name.as_bytes());
        let plain = open_sealed(&enc, &ad, body)?;
        let _ = writeln!(
            out,
            "body: sealed object: nonce {}, ciphertext {} bytes, tag {}",
            hex::encode(&body[..24]),
            body.len() - 40,
            hex::encode(&body[body.len() - 16..])
        );
        let _ = writeln!(
            out,
            "associated data: the 16-byte header, then {ad_name:?}; opened with the example master key"
        );
        plain
    } else {
        body.to_vec()
    };
    let v = msgpack(&plain)?;
    let _ = writeln!(
        out,
        "{} ({} bytes of MessagePack):",
        if h.flags & 1 != 0 {
            "plaintext"
        } else {
            "body"
        },
        plain.len()
    );
    out.push_str(&render(&v, 0));
    out.push('\n');
    match name {
        "snapshot" => {
            let _ = writeln!(
                out,
                "snapshot id (BLAKE3 of the body): {}",
                hex::encode(blake3::hash(body).as_bytes())
            );
        }
        "key" => describe_key_extra(&v, body, &mut out)?,
        "chain-annotation" | "chain-deletion" => {
            let _ = writeln!(
                out,
                "chain event id (BLAKE3 of the body), its file chain/<id>: {}",
                hex::encode(blake3::hash(body).as_bytes())
            );
        }
        _ => {}
    }
    Ok(out)
}

fn describe_key_extra(v: &Value, body: &[u8], out: &mut String) -> Result<(), String> {
    let _ = writeln!(
        out,
        "key file name: keys/{} (first 16 bytes of the BLAKE3 of the body)",
        hex::encode(&blake3::hash(body).as_bytes()[..16])
    );
    let params = v.get("params").ok_or("key file without params")?;
    let num = |k: &str| -> Result<u32, String> {
        params
            .get(k)
            .and_then(Value::int)
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| format!("params.{k} missing"))
    };
    let (m, t, p) = (num("m_cost_kib")?, num("t_cost")?, num("p_cost")?);
    let salt = v.get("salt").and_then(Value::bin).ok_or("no salt")?;
    let wrapped = v
        .get("wrapped")
        .and_then(Value::bin)
        .ok_or("no wrapped key")?;
    let kek = argon2id(EXAMPLE_PASSPHRASE.as_bytes(), salt, m, t, p)?;
    let master = open_sealed(&kek, &key_wrap_ad(m, t, p, salt), wrapped)?;
    if master.len() != 64 {
        return Err(format!("master key of {} bytes", master.len()));
    }
    let _ = writeln!(
        out,
        "key-encryption key: Argon2id({EXAMPLE_PASSPHRASE:?}, salt, m={m} KiB, t={t}, p={p}) = {}",
        hex::encode(kek)
    );
    let _ = writeln!(
        out,
        "wrapped, opened: encryption key {}",
        hex::encode(&master[..32])
    );
    let _ = writeln!(
        out,
        "                 id key         {}",
        hex::encode(&master[32..])
    );
    Ok(())
}

fn describe_pack(bytes: &[u8]) -> Result<String, String> {
    let h = header(bytes, 3)?;
    if h.body_len != 0 {
        return Err("a pack's body length must be 0".into());
    }
    if bytes.len() < 16 + 48 {
        return Err("shorter than header and trailer".into());
    }
    let t = &bytes[bytes.len() - 48..];
    if t[40..] != TRAILER_MAGIC {
        return Err("no trailer magic".into());
    }
    let desc_len = u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as usize;
    let reserved = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
    let desc_end = bytes.len() - 48;
    let desc_start = desc_end
        .checked_sub(desc_len)
        .filter(|s| *s >= 16)
        .ok_or("description longer than the pack")?;
    let desc = &bytes[desc_start..desc_end];
    if blake3::hash(desc).as_bytes()[..] != t[8..40] {
        return Err("description hash does not match".into());
    }
    if h.flags & 1 != 0 {
        return Err("the example pack is plain".into());
    }
    let v = msgpack(desc)?;
    let mut out = header_line(&h);
    let frames = v
        .items()
        .and_then(|a| a.first())
        .and_then(Value::items)
        .ok_or("description is not [[frame, ...]]")?;
    let mut at = 16u64;
    for (i, f) in frames.iter().enumerate() {
        let f = f
            .items()
            .filter(|f| f.len() == 5)
            .ok_or("frame is not a 5-array")?;
        let field = |j: usize| f[j].int().ok_or_else(|| format!("frame {i} field {j}"));
        let (offset, stored, raw, comp) = (field(0)?, field(1)?, field(2)?, field(3)?);
        if offset != i128::from(at) {
            return Err(format!("frame {i} at {offset}, expected {at}"));
        }
        let s = bytes
            .get(offset as usize..(offset + stored) as usize)
            .ok_or("frame outside the pack")?;
        at += stored as u64;
        let data = match comp {
            0 => s.to_vec(),
            1 => zstd::stream::decode_all(s).map_err(|e| format!("zstd: {e}"))?,
            c => return Err(format!("compression code {c}")),
        };
        if data.len() as i128 != raw {
            return Err(format!(
                "frame {i} is {} bytes raw, expected {raw}",
                data.len()
            ));
        }
        let _ = writeln!(
            out,
            "frame {i}: offset {offset}, stored {stored} bytes, raw {raw} bytes, compression {comp} ({})",
            if comp == 1 { "zstd" } else { "none" }
        );
        let mut pos = 0usize;
        for c in f[4].items().ok_or("chunks are not an array")? {
            let c = c
                .items()
                .filter(|c| c.len() == 3)
                .ok_or("chunk is not a 3-array")?;
            let id = c[0].bin().ok_or("chunk id")?;
            let kind = c[1].int().ok_or("chunk kind")?;
            let len = c[2].int().ok_or("chunk len")? as usize;
            let chunk = data.get(pos..pos + len).ok_or("chunk outside its frame")?;
            pos += len;
            let ok = blake3::hash(chunk).as_bytes()[..] == *id;
            let _ = writeln!(
                out,
                "  chunk {} kind {kind} ({}), {len} bytes at {} in the frame: {}",
                hex::encode(id),
                if kind == 1 { "tree node" } else { "data" },
                pos - len,
                if ok {
                    "BLAKE3 matches"
                } else {
                    "BLAKE3 DIFFERS"
                }
            );
            if !ok {
                return Err("a chunk does not match its id".into());
            }
        }
        if pos != data.len() {
            return Err(format!("frame {i}: chunks do not fill it"));
        }
    }
    if at as usize != desc_start {
        return Err(format!(
            "frames end at {at}, description starts at {desc_start}"
        ));
    }
    let _ = writeln!(
        out,
        "description: offset {desc_start}, {desc_len} bytes of MessagePack:\n{}",
        render(&v, 0)
    );
    let _ = writeln!(
        out,
        "trailer: desc_len {desc_len}, reserved {reserved}, desc_hash {}, magic {}",
        hex::encode(&t[8..40]),
        hex::encode(&t[40..])
    );
    let id = hex::encode(blake3::hash(bytes).as_bytes());
    let _ = writeln!(
        out,
        "pack id (BLAKE3 of the file): {id}\nfile name: packs/{}/{id}",
        &id[..2]
    );
    Ok(out)
}

fn describe_location(b: &[u8]) -> Result<String, String> {
    if b.len() != 28 {
        return Err(format!("a location is 28 bytes, not {}", b.len()));
    }
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let mut off = [0u8; 8];
    off[..6].copy_from_slice(&b[4..10]);
    Ok(format!(
        "pack number: {}\nframe offset: {}\nframe stored length: {}\nframe raw length: {}\n\
         compression: {}\noffset in frame: {}\nchunk length: {}\nchunk kind: {}\n",
        u32_at(0),
        u64::from_le_bytes(off),
        u32_at(10),
        u32_at(14),
        b[18],
        u32_at(19),
        u32_at(23),
        b[27]
    ))
}
