//! The chunk allocator: next-fit over the whole bitmap, inside the data range,
//! with the bitmap chunks it changed since the last commit and, for a
//! journaled store, the frees that wait for a checkpoint.

use cowfmt::shared::bitmap::ChunkBitmap;
use cowfmt::shared::geometry::Geometry;

/// When a freed chunk may be handed out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreePolicy {
    /// At once (a store that commits in place).
    Immediate,
    /// Only after the next checkpoint (a journaled store): until the
    /// transaction that freed it is durable and no image of it is left in the
    /// log, reusing the chunk could let a crash resurrect a record naming it,
    /// or let replay write a stale image over its new content.
    AfterCheckpoint,
}

/// Hands out and takes back chunks of the data range, keeping the bitmap and a
/// free count in step. It searches forward from the last chunk it handed out and
/// wraps once; bits at or past the end of the device are never handed out.
///
/// Under [`FreePolicy::AfterCheckpoint`] a freed chunk keeps its bit set in the
/// working bitmap (so it is not handed out) and waits in a pending list; the
/// bitmap images of a transaction show it free ([`Allocator::bitmap_image`]).
/// The list moves with the transactions: freed since the last capture, in a
/// captured transaction, in a durable one; a checkpoint releases the durable ones.
#[derive(Debug, Clone)]
pub struct Allocator {
    bitmap: ChunkBitmap,
    data_start: u64,
    nr_chunks: u64,
    bits_per_chunk: u64,
    cursor: u64,
    free: u64,
    policy: FreePolicy,
    changed: Vec<bool>,
    changed_list: Vec<usize>,
    freed_open: Vec<u64>,
    freed_captured: Vec<u64>,
    freed_durable: Vec<u64>,
}

impl Allocator {
    /// An allocator over `bitmap`, whose free count is taken from the data
    /// range; frees are immediate.
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
            bits_per_chunk: geometry.bits_per_bitmap(),
            cursor: data_start,
            policy: FreePolicy::Immediate,
            changed: vec![false; geometry.nr_bitmap_chunks as usize],
            changed_list: Vec::new(),
            freed_open: Vec::new(),
            freed_captured: Vec::new(),
            freed_durable: Vec::new(),
        }
    }

    /// Sets when freed chunks become reusable.
    pub fn set_policy(&mut self, policy: FreePolicy) {
        self.policy = policy;
    }

    /// Takes the next free chunk, or `None` when the data range is full (chunks
    /// waiting for a checkpoint are not free).
    pub fn alloc(&mut self) -> Option<u64> {
        let found = self
            .bitmap
            .next_free(self.cursor, self.nr_chunks)
            .or_else(|| self.bitmap.next_free(self.data_start, self.cursor))?;
        self.bitmap.set(found, true);
        self.mark_changed(found);
        self.free -= 1;
        self.cursor = found + 1;
        Some(found)
    }

    /// Takes back chunk `c`, handed out by [`Allocator::alloc`] since the last
    /// [`Allocator::take_changed`] and never recorded anywhere: free at once,
    /// whatever the policy (no transaction has seen it in use).
    pub fn unalloc(&mut self, c: u64) {
        if c < self.data_start || c >= self.nr_chunks || !self.bitmap.is_used(c) {
            return;
        }
        self.bitmap.set(c, false);
        self.free += 1;
        self.cursor = self.cursor.min(c);
    }

    /// Gives chunk `c` back: free at once, or after the next checkpoint (see
    /// [`FreePolicy`]). Freeing a chunk that is not in use, or outside the data
    /// range, changes nothing.
    pub fn free(&mut self, c: u64) {
        if c < self.data_start || c >= self.nr_chunks || !self.bitmap.is_used(c) {
            return;
        }
        self.mark_changed(c);
        match self.policy {
            FreePolicy::Immediate => {
                self.bitmap.set(c, false);
                self.free += 1;
            }
            FreePolicy::AfterCheckpoint => self.freed_open.push(c),
        }
    }

    fn mark_changed(&mut self, c: u64) {
        let i = (c / self.bits_per_chunk) as usize;
        if !self.changed[i] {
            self.changed[i] = true;
            self.changed_list.push(i);
        }
    }

    /// Free chunks in the data range (chunks waiting for a checkpoint excluded).
    pub fn free_chunks(&self) -> u64 {
        self.free
    }

    /// Freed chunks that wait for a checkpoint before they can be handed out.
    pub fn pending_frees(&self) -> u64 {
        (self.freed_open.len() + self.freed_captured.len() + self.freed_durable.len()) as u64
    }

    /// Bitmap chunks changed since the last [`Allocator::take_changed`].
    pub fn changed_chunks(&self) -> usize {
        self.changed_list.len()
    }

    /// The indices (0-based; bitmap chunk `i` lives at device chunk `1 + i`)
    /// of the bitmap chunks changed since the last call, in order, and forgets
    /// them; the frees made since then now belong to the captured transaction.
    pub fn take_changed(&mut self, out: &mut Vec<usize>) {
        out.clear();
        out.append(&mut self.changed_list);
        out.sort_unstable();
        for &i in out.iter() {
            self.changed[i] = false;
        }
        self.bitmap.take_dirty();
        self.freed_captured.append(&mut self.freed_open);
    }

    /// Writes bitmap chunk `i` as it must reach the disk into `out` (one
    /// chunk): the working bitmap with every chunk that waits for a
    /// checkpoint shown free.
    pub fn bitmap_image(&self, i: usize, out: &mut [u8]) {
        out.copy_from_slice(self.bitmap.chunk(i));
        let first = i as u64 * self.bits_per_chunk;
        let pending = self
            .freed_open
            .iter()
            .chain(&self.freed_captured)
            .chain(&self.freed_durable);
        for &c in pending {
            if c >= first && c < first + self.bits_per_chunk {
                let bit = c - first;
                out[(bit / 8) as usize] &= !(1 << (bit % 8));
            }
        }
    }

    /// The captured transaction is durable: its frees wait only for the
    /// checkpoint now.
    pub fn captured_durable(&mut self) {
        self.freed_durable.append(&mut self.freed_captured);
    }

    /// The captured transaction was not written: its frees stay pending with
    /// the next one (the store refuses further commits after a failed one).
    pub fn captured_failed(&mut self) {
        self.freed_open.append(&mut self.freed_captured);
    }

    /// A checkpoint made every durable transaction's frees final: their chunks
    /// are free to hand out again. Returns how many.
    pub fn checkpointed(&mut self) -> u64 {
        let mut released = 0;
        for c in std::mem::take(&mut self.freed_durable) {
            if self.bitmap.is_used(c) {
                self.bitmap.set(c, false);
                self.free += 1;
                released += 1;
            }
        }
        self.bitmap.take_dirty();
        released
    }

    /// The bitmap the allocator keeps (chunks waiting for a checkpoint show in use).
    pub fn bitmap(&self) -> &ChunkBitmap {
        &self.bitmap
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

    #[test]
    fn frees_wait_for_the_checkpoint_and_images_show_them_free() {
        let g = Geometry::new(512 * 100, 1, 3);
        let mut bitmap = ChunkBitmap::empty(&g);
        bitmap.set_range(0, g.data_start());
        let mut a = Allocator::new(&g, bitmap);
        a.set_policy(FreePolicy::AfterCheckpoint);
        let got: Vec<u64> = std::iter::from_fn(|| a.alloc()).collect();
        assert_eq!(got.len(), 95);
        let mut changed = Vec::new();
        a.take_changed(&mut changed);
        assert_eq!(changed, vec![0]);
        a.free(7);
        a.free(50);
        assert_eq!((a.free_chunks(), a.pending_frees()), (0, 2));
        assert_eq!(a.alloc(), None, "a pending chunk is not handed out");
        assert_eq!(a.changed_chunks(), 1);
        let mut image = vec![0u8; 512];
        a.bitmap_image(0, &mut image);
        assert_eq!(image[0], 0b0111_1111, "chunk 7 shows free");
        assert_eq!(image[6], 0b1111_1011, "chunk 50 shows free");
        a.take_changed(&mut changed);
        a.captured_durable();
        assert_eq!(a.checkpointed(), 2);
        assert_eq!((a.free_chunks(), a.pending_frees()), (2, 0));
        assert_eq!(a.alloc(), Some(7));
        assert_eq!(a.alloc(), Some(50));
    }

    #[test]
    fn a_checkpoint_keeps_frees_of_transactions_not_yet_durable() {
        let g = Geometry::new(512 * 100, 1, 3);
        let mut bitmap = ChunkBitmap::empty(&g);
        bitmap.set_range(0, 100);
        let mut a = Allocator::new(&g, bitmap);
        a.set_policy(FreePolicy::AfterCheckpoint);
        let mut changed = Vec::new();
        a.free(10);
        a.take_changed(&mut changed);
        a.free(11);
        assert_eq!(a.checkpointed(), 0, "chunk 10's transaction is not durable");
        a.captured_durable();
        assert_eq!(a.checkpointed(), 1);
        assert_eq!(
            a.pending_frees(),
            1,
            "chunk 11 waits for the next transaction"
        );
    }
}
