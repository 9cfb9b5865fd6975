//! What a block device front end answers when the engine fails: the errno of
//! each [`Error`].

use cowfmt::Error;

/// The errno a failed request reports: `ENOSPC` when the store is full,
/// `EINVAL` for a request the store cannot serve as asked (a missing snapshot,
/// an id out of range, the snapshot limit, I/O past the end of the origin),
/// `EIO` for everything else (device errors, damaged or invalidated stores).
pub fn errno(error: &Error) -> i32 {
    match error {
        Error::StoreFull { .. } | Error::NoSpace { .. } => libc::ENOSPC,
        Error::Invalid(_) | Error::SnapshotLimit { .. } => libc::EINVAL,
        _ => libc::EIO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn full_stores_bad_requests_and_device_errors_map_apart() {
        let path = PathBuf::from("cow.img");
        let full = Error::StoreFull {
            path: path.clone(),
            needed: 3,
            free: 0,
        };
        assert_eq!(errno(&full), libc::ENOSPC);
        assert_eq!(
            errno(&Error::Invalid("snapshot 3 does not exist".into())),
            libc::EINVAL
        );
        let corrupt = Error::Corrupt {
            path: path.clone(),
            chunk: 9,
            detail: "expected a leaf".into(),
        };
        assert_eq!(errno(&corrupt), libc::EIO);
        let read = Error::Read {
            path,
            offset: 0,
            len: 512,
            source: std::io::Error::other("medium error"),
        };
        assert_eq!(errno(&read), libc::EIO);
    }
}
