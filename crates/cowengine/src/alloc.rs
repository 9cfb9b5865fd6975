//! The chunk allocator: next-fit over the whole bitmap, inside the data range.

use cowfmt::shared::bitmap::ChunkBitmap;
use cowfmt::shared::geometry::Geometry;

/// Hands out and takes back chunks of the data range, keeping the bitmap and a
/// free count in step. It searches forward from the last chunk it handed out and
/// wraps once; bits at or past the end of the device are never handed out.
#[derive(Debug, Clone)]
pub struct Allocator {
    bitmap: ChunkBitmap,
    data_start: u64,
    nr_chunks: u64,
    cursor: u64,
    free: u64,
}

impl Allocator {
    /// An allocator over `bitmap`, whose free count is taken from the data range.
    pub fn new(geometry: &Geometry, bitmap: ChunkBitmap) -> Self {
        let data_start = geometry.data_start().min(geometry.nr_chunks);
        let used_in_data = (data_start..geometry.nr_chunks)
            .filter(|&c| bitmap.is_used(c))
            .count() as u64;
        Allocator {
            free: geometry.nr_chunks - data_start - used_in_data,
            bitmap,
            data_start,
            nr_chunks: geometry.nr_chunks,
            cursor: data_start,
        }
    }

    /// Takes the next free chunk, or `None` when the data range is full.
    pub fn alloc(&mut self) -> Option<u64> {
        let found = self
            .bitmap
            .next_free(self.cursor, self.nr_chunks)
            .or_else(|| self.bitmap.next_free(self.data_start, self.cursor))?;
        self.bitmap.set(found, true);
        self.free -= 1;
        self.cursor = found + 1;
        Some(found)
    }

    /// Gives chunk `c` back. Freeing a chunk that is not in use, or outside the
    /// data range, changes nothing.
    pub fn free(&mut self, c: u64) {
        if c >= self.data_start && c < self.nr_chunks && self.bitmap.is_used(c) {
            self.bitmap.set(c, false);
            self.free += 1;
        }
    }

    /// Free chunks in the data range.
    pub fn free_chunks(&self) -> u64 {
        self.free
    }

    /// The bitmap the allocator keeps.
    pub fn bitmap(&self) -> &ChunkBitmap {
        &self.bitmap
    }

    /// The bitmap, for writing back.
    pub fn bitmap_mut(&mut self) -> &mut ChunkBitmap {
        &mut self.bitmap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_every_data_chunk_once_then_none() {
        let g = Geometry::new(512 * 100, 1, 3);
        let mut bitmap = ChunkBitmap::empty(&g);
        bitmap.set_range(0, g.data_start());
        let mut a = Allocator::new(&g, bitmap);
        assert_eq!(a.free_chunks(), 100 - 5);
        let got: Vec<u64> = std::iter::from_fn(|| a.alloc()).collect();
        assert_eq!(got, (5..100).collect::<Vec<_>>());
        assert_eq!(a.free_chunks(), 0);
        a.free(50);
        a.free(50);
        a.free(2);
        assert_eq!(a.free_chunks(), 1);
        assert_eq!(a.alloc(), Some(50));
        assert_eq!(a.alloc(), None);
    }

    #[test]
    fn covers_the_last_bitmap_chunk() {
        // Two bitmap chunks: the allocator must reach chunks the second describes.
        let g = Geometry::new(512 * 4200, 1, 0);
        assert_eq!(g.nr_bitmap_chunks, 2);
        let mut bitmap = ChunkBitmap::empty(&g);
        bitmap.set_range(0, 4199);
        let mut a = Allocator::new(&g, bitmap);
        assert_eq!(a.alloc(), Some(4199));
        assert_eq!(a.alloc(), None);
    }
}
