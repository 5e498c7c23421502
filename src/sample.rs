//! A generator of sample Lumina Portfolio databases (the app's four tables with
//! realistic rows), for `demo`, tests and benchmarks. Deterministic per seed.

use std::path::Path;

use rusqlite::{params, Connection};

use crate::error::{Error, Result};

/// The Lumina schema, as the app creates it.
pub const LUMINA_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS collections(id TEXT PRIMARY KEY, name TEXT NOT NULL, createdAt INTEGER, lastOpenedAt INTEGER, isActive INTEGER);
CREATE TABLE IF NOT EXISTS metadata(id TEXT PRIMARY KEY, collectionId TEXT, virtualFolderId TEXT, aiDescription TEXT,
  aiTags TEXT, aiTagsDetailed TEXT, colorTag TEXT, manualTags TEXT, isHidden INTEGER DEFAULT 0,
  lastModified INTEGER, createdAt INTEGER);
CREATE INDEX IF NOT EXISTS idx_metadata_collection ON metadata(collectionId);
CREATE INDEX IF NOT EXISTS idx_metadata_lastModified ON metadata(lastModified);
CREATE TABLE IF NOT EXISTS tags(id TEXT PRIMARY KEY, name TEXT NOT NULL, normalizedName TEXT UNIQUE, type TEXT,
  confidence REAL, parentId TEXT, createdAt INTEGER);
CREATE TABLE IF NOT EXISTS item_tags(itemId TEXT, tagId TEXT, addedAt INTEGER, PRIMARY KEY(itemId, tagId));
";

const WORDS: &[&str] = &[
    "sunset", "beach", "mountain", "portrait", "street", "city", "night", "forest", "river",
    "lake", "snow", "winter", "summer", "autumn", "family", "wedding", "travel", "market",
    "bridge", "tower", "light", "shadow", "cloud", "ocean", "wave", "flower", "garden", "bird",
    "dog", "cat", "concert", "museum",
];

/// A small deterministic random generator (xorshift), so samples need no crate.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Value below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    fn word(&mut self) -> &'static str {
        WORDS[self.below(WORDS.len() as u64) as usize]
    }
}

/// Creates (or extends) a Lumina database at `path` with `items` photos in WAL mode.
pub fn create_lumina_db(path: &Path, items: u64, seed: u64) -> Result<()> {
    let sq = |e| Error::sqlite(path, e);
    let mut conn = Connection::open(path).map_err(sq)?;
    conn.execute_batch("PRAGMA page_size=4096; PRAGMA journal_mode=WAL;")
        .map_err(sq)?;
    conn.execute_batch(LUMINA_SCHEMA).map_err(sq)?;
    let mut rng = Rng::new(seed);
    let tx = conn.transaction().map_err(sq)?;
    let ncol = 8;
    for c in 0..ncol {
        tx.execute(
            "INSERT OR REPLACE INTO collections VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                format!("col-{c:02}"),
                format!("Collection {c}"),
                1_700_000_000 + c,
                1_790_000_000 + c,
                (c == 0) as i64
            ],
        )
        .map_err(sq)?;
    }
    let ntags = 60;
    for t in 0..ntags {
        let name = format!("{} {}", rng.word(), t);
        tx.execute(
            "INSERT OR REPLACE INTO tags VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6)",
            params![
                format!("tag-{t:03}"),
                name,
                name.replace(' ', "-"),
                if t % 3 == 0 { "manual" } else { "ai" },
                0.5 + (t as f64) / 200.0,
                1_700_000_000 + t
            ],
        )
        .map_err(sq)?;
    }
    for i in 0..items {
        let id = format!(
            "/photos/{}/{:02}/IMG_{i:07}.jpg",
            2015 + rng.below(11),
            1 + rng.below(12)
        );
        let desc: Vec<&str> = (0..(12 + rng.below(30))).map(|_| rng.word()).collect();
        let tags: Vec<u64> = (0..(2 + rng.below(5))).map(|_| rng.below(ntags)).collect();
        let ai: Vec<String> = tags.iter().map(|t| format!("tag-{t:03}")).collect();
        let detailed: Vec<serde_json::Value> = ai
            .iter()
            .map(|t| serde_json::json!({"name": t, "confidence": 0.9}))
            .collect();
        tx.execute(
            "INSERT OR REPLACE INTO metadata VALUES (?1, ?2, NULL, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?9)",
            params![
                id,
                format!("col-{:02}", rng.below(ncol)),
                desc.join(" "),
                serde_json::to_string(&ai).map_err(|e| Error::internal(e.to_string()))?,
                serde_json::to_string(&detailed).map_err(|e| Error::internal(e.to_string()))?,
                ["red", "green", "blue"][rng.below(3) as usize],
                "[]",
                1_790_000_000 + i as i64,
                1_700_000_000 + i as i64,
            ],
        )
        .map_err(sq)?;
        for t in ai {
            tx.execute(
                "INSERT OR IGNORE INTO item_tags VALUES (?1, ?2, ?3)",
                params![id, t, 1_790_000_000i64],
            )
            .map_err(sq)?;
        }
    }
    tx.commit().map_err(sq)?;
    Ok(())
}
