//! Reading runs of chunks in large batches, skipping the holes of sparse
//! images (they read as zeros: no leaf, and nothing to copy to a zeroed output).

use crate::device::Device;
use crate::error::Result;

/// Bytes read at a time.
pub(super) const BATCH_BYTES: usize = 4 << 20;

/// A stretch of chunks handed to the callback.
pub(super) enum Stretch<'a> {
    /// Chunks read from the device.
    Data(&'a [u8]),
    /// This many chunks in a hole of a sparse image: all zero, not read.
    Hole(u64),
}

/// Calls `f(first chunk, data)` for the chunks of `runs` (`[start, end)`,
/// ascending, disjoint) that do not lie in holes, at most [`BATCH_BYTES`] at a time.
pub(super) fn for_each_batch(
    input: &Device,
    chunk_bytes: usize,
    runs: &[(u64, u64)],
    f: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
) -> Result<()> {
    for_each_stretch(
        input,
        chunk_bytes,
        runs,
        &mut |first, stretch| match stretch {
            Stretch::Data(bytes) => f(first, bytes),
            Stretch::Hole(_) => Ok(()),
        },
    )
}

/// Calls `f(first chunk, stretch)` over the chunks of `runs` in ascending
/// order: data read in batches of at most [`BATCH_BYTES`], holes given whole.
pub(super) fn for_each_stretch(
    input: &Device,
    chunk_bytes: usize,
    runs: &[(u64, u64)],
    f: &mut dyn FnMut(u64, Stretch<'_>) -> Result<()>,
) -> Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    let cb = chunk_bytes as u64;
    let data = data_chunk_ranges(input, cb);
    let per_batch = (BATCH_BYTES / chunk_bytes).max(1) as u64;
    let mut buf = vec![0u8; (per_batch * cb) as usize];
    let mut d = 0;
    for &(a, b) in runs {
        while d < data.len() && data[d].1 <= a {
            d += 1;
        }
        let mut at = a;
        let mut k = d;
        while at < b {
            let (ds, de) = data.get(k).copied().unwrap_or((b, b));
            if at < ds {
                let hole_end = ds.min(b);
                f(at, Stretch::Hole(hole_end - at))?;
                at = hole_end;
                continue;
            }
            let end = de.min(b);
            while at < end {
                let n = (end - at).min(per_batch);
                let bytes = &mut buf[..(n * cb) as usize];
                input.read_at(bytes, at * cb, || format!("chunks {at}..{}", at + n))?;
                f(at, Stretch::Data(bytes))?;
                at += n;
            }
            k += 1;
        }
    }
    Ok(())
}

/// The chunk ranges `[start, end)` that hold data (any chunk a data range touches).
fn data_chunk_ranges(input: &Device, chunk_bytes: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (start, end) in input.data_ranges(0, input.size_bytes()) {
        let (s, e) = (start / chunk_bytes, end.div_ceil(chunk_bytes));
        match out.last_mut() {
            Some(last) if last.1 >= s => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Access;

    #[test]
    fn holes_are_skipped_and_data_is_read_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse.img");
        let device = Device::create_or_extend(&path, 4096 * 4096).unwrap();
        device.write_at(&[1u8; 4096], 10 * 4096).unwrap();
        device.write_at(&[2u8; 4096], 3000 * 4096).unwrap();
        drop(device);
        let device = Device::open(&path, Access::ReadOnly).unwrap();
        let mut seen = Vec::new();
        let mut covered = 0;
        for_each_stretch(
            &device,
            4096,
            &[(5, 20), (2990, 4096)],
            &mut |first, stretch| {
                match stretch {
                    Stretch::Data(bytes) => {
                        covered += bytes.len() as u64 / 4096;
                        for (i, c) in bytes.chunks_exact(4096).enumerate() {
                            if c[0] != 0 {
                                seen.push((first + i as u64, c[0]));
                            }
                        }
                    }
                    Stretch::Hole(n) => covered += n,
                }
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, vec![(10, 1), (3000, 2)]);
        assert_eq!(covered, 15 + (4096 - 2990));
    }
}
