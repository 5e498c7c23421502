//! Every on-disk decoder returns an error or a value for any bytes, never panics:
//! envelope files (plain and sealed), packs (header, trailer, description), chunk
//! locations, tree nodes, snapshot records, chain events, key files, the config and export maps. (The same property runs under proptest in
//! the unit tests on stable.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use lumina_backup::__internals::format::{
    self, ChainEvent, Cipher, Config, ExportMap, KeyFile, Kind, PackDescription, SnapshotRecord,
};
use lumina_backup::__internals::{pack, MasterKey};

fuzz_target!(|data: &[u8]| {
    let _ = format::open_file(data, Kind::Snapshot);
    let _ = format::open_file(data, Kind::Config);
    let _ = format::open_file(data, Kind::Key);
    let _ = pack::parse_pack(data, &Cipher::Plain);
    let sealed = Cipher::Sealed(std::sync::Arc::new(MasterKey::generate()));
    let _ = pack::parse_pack(data, &sealed);
    let _ = sealed.read_file(Kind::Snapshot, "x", data);
    if let Ok(k) = format::decode::<KeyFile>(data) {
        let _ = k.params.check();
    }
    // Pack numbers resolve to a fixed id (index layout 3 stores numbers).
    let _ = pack::ChunkLoc::decode(data, |_| Some(lumina_backup::PackId([7; 32])));
    let _ = format::decode_tree_node(data);
    if let Ok(r) = format::decode::<SnapshotRecord>(data) {
        let _ = r.validate();
    }
    let _ = format::open_file(data, Kind::ChainEvent);
    if let Ok(e) = format::decode::<ChainEvent>(data) {
        let _ = e.validate();
    }
    if let Ok(c) = format::decode::<Config>(data) {
        let _ = c.validate();
    }
    if let Ok(m) = ExportMap::decode(data) {
        for t in &m.tables {
            let _ = t.page_list();
        }
    }
    if let Ok(d) = format::decode::<PackDescription>(data) {
        let _ = d.validate(16, data.len() as u64);
    }
});
