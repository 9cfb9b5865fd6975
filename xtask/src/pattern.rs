//! The data pattern of the golden images (testdata/golden/README.md): 4 KiB
//! block B of a device, filled with tag T, is the 16-byte line
//! `printf '%s %010x\n' T B` repeated 256 times, B = byte offset / 4096.

/// Bytes of one pattern block.
pub const BLOCK_BYTES: u64 = 4096;
/// Bytes of one pattern line.
pub const LINE_BYTES: usize = 16;

/// Initial content of an origin.
pub const ORIG: Tag = Tag(*b"ORIG");
/// Content written to an origin after the snapshot was taken.
pub const NEW1: Tag = Tag(*b"NEW1");
/// A second write to an origin chunk that was already copied out.
pub const NEW2: Tag = Tag(*b"NEW2");

/// A four-letter pattern tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag(pub [u8; 4]);

/// The 16-byte line of `block` (block numbers wrap at 2^40, 4 PiB of device).
pub fn line(tag: Tag, block: u64) -> [u8; LINE_BYTES] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; LINE_BYTES];
    out[..4].copy_from_slice(&tag.0);
    out[4] = b' ';
    for digit in 0..10 {
        let nibble = (block >> (4 * (9 - digit))) & 0xf;
        out[5 + digit] = HEX[nibble as usize];
    }
    out[15] = b'\n';
    out
}

/// Fills `buf` with bytes `offset..offset + buf.len()` of a device filled with
/// `tag`. `offset` and `buf.len()` must be multiples of the line size.
pub fn fill(tag: Tag, offset: u64, buf: &mut [u8]) {
    debug_assert_eq!(offset % LINE_BYTES as u64, 0);
    debug_assert_eq!(buf.len() % LINE_BYTES, 0);
    let mut current = (u64::MAX, [0u8; LINE_BYTES]);
    for (index, slot) in buf.chunks_exact_mut(LINE_BYTES).enumerate() {
        let block = (offset + (index * LINE_BYTES) as u64) / BLOCK_BYTES;
        if current.0 != block {
            current = (block, line(tag, block));
        }
        slot.copy_from_slice(&current.1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_is_the_printf_format() {
        assert_eq!(&line(ORIG, 0x4da), b"ORIG 00000004da\n");
        assert_eq!(&line(NEW1, 0), b"NEW1 0000000000\n");
    }

    #[test]
    fn fill_follows_block_boundaries_at_any_offset() {
        let mut buf = vec![0u8; 8192];
        fill(ORIG, 2048, &mut buf);
        assert_eq!(&buf[..16], &line(ORIG, 0));
        assert_eq!(&buf[2032..2048], &line(ORIG, 0));
        assert_eq!(&buf[2048..2064], &line(ORIG, 1));
        assert_eq!(&buf[8176..], &line(ORIG, 2));
    }
}
