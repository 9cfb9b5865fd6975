//! Reading the salvaged leaves again (the tally and the writer each read them
//! once, so that memory never holds every record), with read-ahead hints.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::shared::leaf::Leaf;

use super::reachable::FoundLeaf;

/// Leaves hinted to the kernel ahead of reading.
const HINT_AHEAD: usize = 64;

/// Calls `f(leaf, decoded)` for each of `leaves`, in the order given.
pub(super) fn for_each_leaf(
    input: &Device,
    chunk_bytes: usize,
    leaves: &[&FoundLeaf],
    f: &mut dyn FnMut(&FoundLeaf, &Leaf) -> Result<()>,
) -> Result<()> {
    let mut buf = vec![0u8; chunk_bytes];
    for (i, found) in leaves.iter().enumerate() {
        if i % HINT_AHEAD == 0 {
            for ahead in leaves.iter().skip(i).take(HINT_AHEAD) {
                input.will_need(ahead.chunk * chunk_bytes as u64, chunk_bytes as u64);
            }
        }
        input.read_chunk(found.chunk, &mut buf)?;
        let leaf = Leaf::decode(&buf).map_err(|e| Error::Corrupt {
            path: input.path().to_path_buf(),
            chunk: found.chunk,
            detail: format!("the leaf no longer decodes while it is read again ({e}); was the device written to during the repair?"),
        })?;
        f(found, &leaf)?;
    }
    Ok(())
}
