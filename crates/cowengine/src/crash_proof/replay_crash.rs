//! Crashes during replay: the journal replay a crash image needs (cowfmt's
//! `journal::replay`, which the engine runs at open) is itself recorded on a
//! crash device, and every image a power cut during it can leave (every
//! prefix, none, all and a sample of its unsynced writes lost) must be
//! finished by a second replay to exactly the bytes of an uncut one.

use cowfmt::crashdev::CrashLog;
use cowfmt::memdev::MemDev;
use cowfmt::shared::geometry::{validate_chunk_size, Geometry};
use cowfmt::shared::header::{SharedHeader, HEADER_BYTES};
use cowfmt::shared::journal::replay;

use super::pattern::Rng;

/// Checks the replays of `image` cut at every point; returns the cut images
/// checked (0 when the journal holds nothing to replay or the image has no
/// readable header: the crash image's own checks report that).
pub fn check_replay_crashes(image: &[u8], seed: u64, samples: usize) -> Result<u64, String> {
    let Some(header) = image
        .get(..HEADER_BYTES)
        .and_then(|bytes| SharedHeader::decode(bytes).ok())
        .filter(|h| {
            h.validate_identity().is_ok() && validate_chunk_size(u64::from(h.chunk_size)).is_ok()
        })
    else {
        return Ok(0);
    };
    let geometry = Geometry::new(
        image.len() as u64,
        header.chunk_size,
        u64::from(header.nr_journal_chunks),
    );
    let log = CrashLog::new();
    let device = log.device("replay:cow", image.to_vec());
    let Ok(report) = replay(&device, &geometry) else {
        return Ok(0);
    };
    if report.transactions == 0 {
        return Ok(0);
    }
    let uncut = log.image(0, log.len(), &[]).map_err(|e| e.to_string())?;
    let mut rng = Rng::new(seed, 0x2000_0000);
    let mut images = 0;
    for at in 0..log.len() {
        let pending = log.unsynced(0, at);
        let mut lost_sets = vec![Vec::new(), pending.clone()];
        for _ in 0..samples {
            lost_sets.push(pending.iter().copied().filter(|_| rng.chance(50)).collect());
        }
        lost_sets.dedup();
        for lost in lost_sets {
            images += 1;
            let cut = log.image(0, at, &lost).map_err(|e| e.to_string())?;
            let again = MemDev::from_bytes("replay:cut", cut);
            replay(&again, &geometry).map_err(|e| {
                format!(
                    "a replay cut after {at} of its {} events (writes {lost:?} lost) cannot be \
                     replayed again: {e}",
                    log.len()
                )
            })?;
            let bytes = again.to_bytes();
            if bytes != uncut {
                let cb = geometry.chunk_bytes as usize;
                let chunk = (0..bytes.len() / cb)
                    .find(|&c| bytes[c * cb..(c + 1) * cb] != uncut[c * cb..(c + 1) * cb])
                    .unwrap_or_default();
                return Err(format!(
                    "a replay cut after {at} of its {} events (writes {lost:?} lost) and \
                     replayed again leaves chunk {chunk} unlike an uncut replay",
                    log.len()
                ));
            }
        }
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cowfmt::blockdev::BlockDev;
    use cowfmt::shared::format::format_store;
    use cowfmt::shared::journal::{
        write_superblock, write_transaction, JournalArea, Transaction, TxHeader,
    };

    /// A 512 B store with a 16-chunk journal holding one committed
    /// transaction of two images.
    fn journaled_image() -> Vec<u8> {
        let device = MemDev::new("store", 256 * 512);
        format_store(&device, 1, 16).unwrap();
        let mut first = [0u8; HEADER_BYTES];
        device.read_at(&mut first, 0, &String::new).unwrap();
        let header = SharedHeader::decode(&first).unwrap();
        let geometry = Geometry::new(256 * 512, header.chunk_size, 16);
        let area = JournalArea::new(&geometry);
        write_superblock(&device, &area, 1).unwrap();
        let home = geometry.data_start() + 5;
        let t = Transaction {
            seq: 1,
            header: TxHeader {
                root_tree_chunk: header.root_tree_chunk,
                snapmask: header.snapmask,
                tree_level: header.tree_level,
            },
            homes: vec![home, home + 1],
            images: [vec![7u8; 512], vec![9u8; 512]].concat(),
        };
        write_transaction(&device, &area, 0, &t).unwrap();
        device.to_bytes()
    }

    #[test]
    fn a_replay_cut_anywhere_is_finished_by_the_next() {
        let images = check_replay_crashes(&journaled_image(), 1, 2).unwrap();
        assert!(images > 5, "{images} cut replays");
    }

    #[test]
    fn nothing_to_replay_is_nothing_to_cut() {
        let device = MemDev::new("store", 256 * 512);
        format_store(&device, 1, 16).unwrap();
        assert_eq!(check_replay_crashes(&device.to_bytes(), 1, 2).unwrap(), 0);
        assert_eq!(check_replay_crashes(&[0; 4096], 1, 2).unwrap(), 0);
    }
}
