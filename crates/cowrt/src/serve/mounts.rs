//! The mounts of ublk devices in the daemon's own mount namespace. A
//! filesystem mounted on one of the daemon's devices when the daemon started
//! (`serve --recover` after a crash, typically) is copied into the daemon's
//! private namespace; there it would keep the device open after the user
//! unmounts it, so that taking the device down at stop waits forever
//! (libublk's README). The daemon detaches those copies at start.

use std::path::PathBuf;

/// The mount points in `mountinfo` (`/proc/self/mountinfo`'s text) whose
/// source is a ublk block device, deepest last as the file lists them.
pub fn ublk_mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|&f| f == "-")?;
            let source = fields.get(dash + 2)?;
            let point = fields.get(4)?;
            source
                .starts_with("/dev/ublkb")
                .then(|| PathBuf::from(unescape(point)))
        })
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(digits) => {
                let value = digits.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
                out.push(value as u8);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ublk_mounts_are_found_with_their_points_unescaped() {
        let mountinfo = "\
22 1 0:21 / / rw shared:1 - rootfs rootfs rw
35 22 254:0 / /mnt/fs rw,relatime shared:12 - ext4 /dev/ublkb0 rw
36 22 253:16 / /mnt/data rw - ext4 /dev/vdb rw
37 35 254:1 / /mnt/fs/my\\040snap rw - ext4 /dev/ublkb12 ro
38 22 0:40 / /mnt/ublkb0 rw - tmpfs tmpfs rw
";
        assert_eq!(
            ublk_mount_points(mountinfo),
            [PathBuf::from("/mnt/fs"), PathBuf::from("/mnt/fs/my snap")]
        );
        assert!(ublk_mount_points("garbage line\n").is_empty());
        assert_eq!(unescape("a\\134b\\12"), "a\\b\\12");
    }
}
