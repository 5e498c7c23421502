//! Raw capture: a database file's bytes exactly as they are on disk, without
//! SQLite. Used only to keep the evidence of a damaged database that SQLite
//! cannot read (the `pre-restore` save before a restore replaces it); it is a
//! file copy, not a consistent point-in-time capture, so the caller must make
//! sure nobody writes the file meanwhile.
//!
//! The bytes go to the same [`Sink`](super::capture::Sink) as a live capture, cut
//! at the page size the header states (or 4096 when the header is unreadable), so
//! pages still shared with earlier snapshots deduplicate.

use std::path::Path;

use super::capture::{ImageInfo, Piece, Sink};
use crate::error::{Error, Result};

/// Pages sent per [`Piece::Data`].
const PAGES_PER_PIECE: usize = 256;

/// Sends the bytes of the file at `path` to `sink` as the image `image_name`.
pub fn capture_raw(path: &Path, image_name: &str, sink: &mut Sink<'_>) -> Result<ImageInfo> {
    let mut f = super::held::open(path).map_err(|e| Error::io("opening", path, e))?;
    let len = f
        .file()
        .metadata()
        .map_err(|e| Error::io("reading", path, e))?
        .len();
    let mut head = [0u8; 100];
    let n =
        crate::platform::read_full(&mut f, &mut head).map_err(|e| Error::io("reading", path, e))?;
    let page_size = super::header_page_size(&head[..n]).unwrap_or(4096);
    let user_version = head
        .get(60..64)
        .filter(|_| n >= 64)
        .map(|b| i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])))
        .unwrap_or(0);
    sink(Piece::Begin {
        name: image_name.to_string(),
        page_size: Some(page_size),
        size_hint: Some(len),
    })?;
    let piece = page_size as usize * PAGES_PER_PIECE;
    let mut buf = vec![0u8; piece];
    buf[..n].copy_from_slice(&head[..n]);
    let mut filled = n;
    loop {
        let k = crate::platform::read_full(&mut f, &mut buf[filled..])
            .map_err(|e| Error::io("reading", path, e))?;
        filled += k;
        if filled == 0 {
            break;
        }
        sink(Piece::Data(buf[..filled].to_vec()))?;
        if filled < piece {
            break;
        }
        filled = 0;
    }
    sink(Piece::End)?;
    Ok(ImageInfo {
        page_size,
        page_count: len.div_ceil(u64::from(page_size)),
        user_version,
        journal_mode: "unknown".into(),
        sqlite_version: rusqlite::version().to_string(),
        capture_route: Some("raw"),
        staged_written: 0,
        staging_note: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_capture_sends_every_byte_in_page_aligned_pieces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.db");
        let mut bytes: Vec<u8> = (0..(1024 * 300 + 77)).map(|i| (i % 251) as u8).collect();
        bytes[16..18].copy_from_slice(&1024u16.to_be_bytes());
        std::fs::write(&p, &bytes).expect("write");
        let mut got = Vec::new();
        let mut sink = |piece: Piece| {
            if let Piece::Data(d) = piece {
                assert!(d.len() % 1024 == 0 || got.len() + d.len() == bytes.len());
                got.extend(d);
            }
            Ok(())
        };
        let info = capture_raw(&p, "x.db", &mut sink).expect("capture");
        assert_eq!(got, bytes);
        assert_eq!(info.page_size, 1024);
        assert_eq!(info.page_count, 301);
        assert_eq!(crate::sqlite::header_page_size(&[0u8; 10]), None);
    }
}
