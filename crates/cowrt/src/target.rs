//! The block-target trait and the request model. A transport (ublk, or a test)
//! turns each request into a [`Request`] and hands it to a [`BlockTarget`]
//! through [`serve`]; all I/O semantics live behind the trait.

use cowfmt::SECTOR_BYTES;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoOp {
    /// Read `len` bytes at `offset`.
    Read,
    /// Write `len` bytes at `offset`.
    Write,
    /// Make every completed write durable.
    Flush,
}

/// One block request, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The operation.
    pub op: IoOp,
    /// Byte offset on the device.
    pub offset: u64,
    /// Bytes to transfer (0 for a flush).
    pub len: usize,
    /// Forced unit access: the write is durable when it completes.
    pub fua: bool,
}

/// ublk's operation codes and flags (`include/uapi/linux/ublk_cmd.h`), as a
/// transport reads them from a request's `op_flags`.
pub mod ublk_codes {
    /// `UBLK_IO_OP_READ`.
    pub const OP_READ: u32 = 0;
    /// `UBLK_IO_OP_WRITE`.
    pub const OP_WRITE: u32 = 1;
    /// `UBLK_IO_OP_FLUSH`.
    pub const OP_FLUSH: u32 = 2;
    /// `UBLK_IO_F_FUA`.
    pub const F_FUA: u32 = 1 << 13;
}

impl Request {
    /// The request a ublk descriptor describes: `op_flags` (operation in the
    /// low 8 bits, flags above), `start_sector`, `nr_sectors` (both ignored
    /// for a FLUSH). Any other
    /// operation (DISCARD, WRITE_ZEROES: never advertised) is refused with
    /// `EOPNOTSUPP`.
    pub fn from_ublk(op_flags: u32, start_sector: u64, nr_sectors: u32) -> Result<Self, i32> {
        let op = match op_flags & 0xff {
            ublk_codes::OP_READ => IoOp::Read,
            ublk_codes::OP_WRITE => IoOp::Write,
            ublk_codes::OP_FLUSH => IoOp::Flush,
            _ => return Err(libc::EOPNOTSUPP),
        };
        if op == IoOp::Flush {
            // A flush has no range: the block layer's flush request carries
            // sector -1 (blk_rq_init), so the sector is not looked at.
            return Ok(Request {
                op,
                offset: 0,
                len: 0,
                fua: op_flags & ublk_codes::F_FUA != 0,
            });
        }
        let offset = start_sector.checked_mul(SECTOR_BYTES).ok_or(libc::EINVAL)?;
        let len = nr_sectors as usize * SECTOR_BYTES as usize;
        Ok(Request {
            op,
            offset,
            len,
            fua: op_flags & ublk_codes::F_FUA != 0,
        })
    }
}

/// A device served to a block layer: reads, writes (optionally FUA) and
/// flushes at byte offsets. Errors are the engine's, so each maps to the
/// errno the block layer sees ([`cowengine::errno::errno`]).
pub trait BlockTarget: Send + Sync {
    /// The device size in bytes.
    fn size(&self) -> u64;

    /// Reads `buf.len()` bytes at `offset`.
    fn read(&self, offset: u64, buf: &mut [u8]) -> cowfmt::Result<()>;

    /// Writes `data` at `offset`; with `fua`, the data (and whatever protects
    /// the snapshots from it) is durable when this returns.
    fn write(&self, offset: u64, data: &[u8], fua: bool) -> cowfmt::Result<()>;

    /// Makes every write that completed before it durable.
    fn flush(&self) -> cowfmt::Result<()>;
}

/// Why a request failed: the errno to complete it with, and one sentence for
/// the daemon's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The errno (positive).
    pub errno: i32,
    /// What went wrong.
    pub reason: String,
}

impl Failure {
    fn invalid(reason: String) -> Self {
        Failure {
            errno: libc::EINVAL,
            reason,
        }
    }
}

/// Serves `request` on `target` with the transport's buffer `buf` (at least
/// `request.len` bytes: filled for a read, the data of a write). Returns the
/// bytes transferred, or why not: `EINVAL` for a buffer too small or a range
/// past the end, the engine's errno for a failure.
pub fn serve(
    target: &dyn BlockTarget,
    request: &Request,
    buf: &mut [u8],
) -> Result<usize, Failure> {
    if request.op != IoOp::Flush {
        let past_end = request
            .offset
            .checked_add(request.len as u64)
            .is_none_or(|end| end > target.size());
        if past_end {
            return Err(Failure::invalid(format!(
                "{} bytes at offset {} pass the end of the device ({} bytes)",
                request.len,
                request.offset,
                target.size()
            )));
        }
        if buf.len() < request.len {
            return Err(Failure::invalid(format!(
                "{} bytes do not fit the transport's {}-byte buffer",
                request.len,
                buf.len()
            )));
        }
    }
    let data = &mut buf[..request.len];
    let done = match request.op {
        IoOp::Read => target.read(request.offset, data),
        IoOp::Write => target.write(request.offset, data, request.fua),
        IoOp::Flush => target.flush(),
    };
    done.map(|()| request.len).map_err(|e| Failure {
        errno: cowengine::errno::errno(&e),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ublk_descriptors_become_byte_requests() {
        let read = Request::from_ublk(ublk_codes::OP_READ, 8, 16).unwrap();
        assert_eq!(
            read,
            Request {
                op: IoOp::Read,
                offset: 4096,
                len: 8192,
                fua: false
            }
        );
        let fua = Request::from_ublk(ublk_codes::OP_WRITE | ublk_codes::F_FUA, 1, 1).unwrap();
        assert_eq!(
            (fua.op, fua.offset, fua.len, fua.fua),
            (IoOp::Write, 512, 512, true)
        );
        let flush = Request::from_ublk(ublk_codes::OP_FLUSH, 0, 0).unwrap();
        assert_eq!((flush.op, flush.len), (IoOp::Flush, 0));
        let kernel_flush = Request::from_ublk(ublk_codes::OP_FLUSH, u64::MAX, 0).unwrap();
        assert_eq!(
            (kernel_flush.op, kernel_flush.offset, kernel_flush.len),
            (IoOp::Flush, 0, 0),
            "the block layer's flush request has sector -1"
        );
        assert_eq!(Request::from_ublk(3, 0, 8), Err(libc::EOPNOTSUPP));
        assert_eq!(Request::from_ublk(5, 0, 8), Err(libc::EOPNOTSUPP));
        assert_eq!(Request::from_ublk(0, u64::MAX, 1), Err(libc::EINVAL));
    }
}
