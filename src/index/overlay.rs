//! A redb storage backend that reads the index file and never writes it: writes
//! land in memory, block by block (copy on write). It lets a read-only open of a
//! repository use the index as it is on disk (redb needs to write even to open:
//! the version check, a repair after an unclean close, bringing a stale index up
//! to date), or build one in memory when there is no index file at all, without
//! changing a byte of the repository.
//!
//! Memory: only the blocks written, so an index that is up to date costs
//! (almost) nothing; one built from scratch costs its size.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::sync::RwLock;

const BLOCK: u64 = 4096;

#[derive(Debug, Default)]
struct State {
    /// Logical length.
    len: u64,
    /// Bytes of the file still visible below the blocks (shrinks with `set_len`).
    base_len: u64,
    /// Written blocks by block number.
    blocks: HashMap<u64, Box<[u8]>>,
}

/// A copy-on-write view of a file (or of nothing).
#[derive(Debug)]
pub struct Overlay {
    base: Option<File>,
    state: RwLock<State>,
}

fn poisoned() -> io::Error {
    io::Error::other("index overlay lock poisoned")
}

impl Overlay {
    /// A view of `base` (opened read-only), or an empty store.
    pub fn new(base: Option<File>) -> io::Result<Self> {
        let len = match &base {
            Some(f) => f.metadata()?.len(),
            None => 0,
        };
        Ok(Overlay {
            base,
            state: RwLock::new(State {
                len,
                base_len: len,
                blocks: HashMap::new(),
            }),
        })
    }

    /// Block `n` as the base shows it (zeros past its end).
    fn base_block(&self, st: &State, n: u64) -> io::Result<Box<[u8]>> {
        let mut buf = vec![0u8; BLOCK as usize].into_boxed_slice();
        let start = n * BLOCK;
        if let Some(f) = &self.base {
            if start < st.base_len {
                let avail = (st.base_len - start).min(BLOCK) as usize;
                crate::platform::read_exact_at(f, &mut buf[..avail], start)?;
            }
        }
        Ok(buf)
    }
}

impl redb::StorageBackend for Overlay {
    fn len(&self) -> io::Result<u64> {
        Ok(self.state.read().map_err(|_| poisoned())?.len)
    }

    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let st = self.state.read().map_err(|_| poisoned())?;
        let end = offset
            .checked_add(len as u64)
            .filter(|e| *e <= st.len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        let mut out = Vec::with_capacity(len);
        let mut pos = offset;
        while pos < end {
            let n = pos / BLOCK;
            let within = (pos % BLOCK) as usize;
            let take = ((BLOCK - pos % BLOCK).min(end - pos)) as usize;
            match st.blocks.get(&n) {
                Some(b) => out.extend_from_slice(&b[within..within + take]),
                None => {
                    let b = self.base_block(&st, n)?;
                    out.extend_from_slice(&b[within..within + take]);
                }
            }
            pos += take as u64;
        }
        Ok(out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.state.write().map_err(|_| poisoned())?;
        if len < st.len {
            // What lies past the new end must read as zeros if it grows again.
            st.blocks.retain(|n, _| *n * BLOCK < len);
            let last = len / BLOCK;
            if !len.is_multiple_of(BLOCK) {
                let mut b = match st.blocks.remove(&last) {
                    Some(b) => b,
                    None => self.base_block(&st, last)?,
                };
                b[(len % BLOCK) as usize..].fill(0);
                st.blocks.insert(last, b);
            }
            st.base_len = st.base_len.min(len);
        }
        st.len = len;
        Ok(())
    }

    fn sync_data(&self, _eventual: bool) -> io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut st = self.state.write().map_err(|_| poisoned())?;
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|e| *e <= st.len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write past the end"))?;
        let mut pos = offset;
        while pos < end {
            let n = pos / BLOCK;
            let within = (pos % BLOCK) as usize;
            let take = ((BLOCK - pos % BLOCK).min(end - pos)) as usize;
            if !st.blocks.contains_key(&n) {
                let b = self.base_block(&st, n)?;
                st.blocks.insert(n, b);
            }
            let from = (pos - offset) as usize;
            let b = st.blocks.get_mut(&n).expect("inserted above");
            b[within..within + take].copy_from_slice(&data[from..from + take]);
            pos += take as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::StorageBackend;

    #[test]
    fn writes_stay_in_memory_and_reads_see_them_over_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).expect("write");
        let o = Overlay::new(Some(File::open(&p).expect("open"))).expect("overlay");
        assert_eq!(o.read(4000, 200).expect("read"), &data[4000..4200]);
        o.write(4090, &[7u8; 20]).expect("write");
        let mut want = data.clone();
        want[4090..4110].fill(7);
        assert_eq!(o.read(0, 10_000).expect("read"), want);
        o.set_len(4095).expect("shrink");
        o.set_len(9000).expect("grow");
        let got = o.read(0, 9000).expect("read");
        assert_eq!(&got[..4090], &want[..4090]);
        assert_eq!(&got[4090..4095], &[7u8; 5]);
        assert!(got[4095..].iter().all(|b| *b == 0));
        assert!(o.read(8999, 2).is_err());
        assert_eq!(std::fs::read(&p).expect("file"), data, "the file changed");
    }
}
