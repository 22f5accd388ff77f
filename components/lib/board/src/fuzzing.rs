//! Entry points of the board parser's fuzz targets (`fuzz/`), kept here so that `cargo test`
//! replays the committed corpus through exactly what the fuzzers run.

use crate::{Board, PhandleSlot};

/// Phandles the fuzz entry indexes (fuzz inputs are small; a blob with more is walked
/// without the index only).
const INDEX_ROOM: usize = 256;

/// Everything a caller can ask of an arbitrary blob: the header and structure checks, the
/// model and compatible, the phandle index and both walks, which must agree item by item. It
/// must never panic, whatever the bytes; it allocates nothing.
pub fn walk(data: &[u8]) {
    let Ok(board) = Board::new(data) else {
        return;
    };
    let _ = (board.model(), board.compatible());
    let mut storage = [PhandleSlot::default(); INDEX_ROOM];
    let count = board.phandle_count();
    match board.index_phandles(&mut storage) {
        Ok(index) => {
            assert_eq!(index.len(), count, "the index holds every phandle");
            let mut plain = board.devices();
            let mut indexed = board.devices_indexed(&index);
            loop {
                match (plain.next(), indexed.next()) {
                    (None, None) => break,
                    (a, b) => assert_eq!(a, b, "the index changes what the walk reads"),
                }
            }
        }
        Err(_) => {
            assert!(count > INDEX_ROOM, "only too little room refuses an index");
            for item in board.devices() {
                let _ = item;
            }
        }
    }
}
