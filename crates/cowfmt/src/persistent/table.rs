//! dmsetup table lines that activate a persistent or legacy store.

use crate::kind::StoreKind;

/// The origin and COW of a snapshot target, as they appear in a table line.
#[derive(Debug, Clone)]
pub struct TableDevices<'a> {
    /// The origin device path, if known.
    pub origin: Option<&'a str>,
    /// The origin size in sectors, if known (the table length).
    pub origin_sectors: Option<u64>,
    /// The COW device path.
    pub cow: &'a str,
}

/// The `snapshot` table line for a store of `chunk_sectors`. Mainline kernels of
/// every version accept only the one-letter store type: `P` for both
/// `persistent` and `legacy` (the seed's `persistent 2 <cow>` form was never
/// merged). Unknown values are shown as `<origin-sectors>` / `<origin>`.
pub fn snapshot_table_line(
    devices: &TableDevices<'_>,
    chunk_sectors: u32,
    kind: StoreKind,
) -> String {
    debug_assert!(kind.is_snap_v1());
    let length = devices
        .origin_sectors
        .map_or_else(|| "<origin-sectors>".to_string(), |s| s.to_string());
    let origin = devices.origin.unwrap_or("<origin>");
    format!(
        "0 {length} snapshot {origin} {cow} P {chunk_sectors}",
        cow = devices.cow
    )
}

/// The `snapshot-origin` table line that goes with a snapshot of `origin`.
pub fn origin_table_line(origin: Option<&str>, origin_sectors: Option<u64>) -> String {
    let length = origin_sectors.map_or_else(|| "<origin-sectors>".to_string(), |s| s.to_string());
    format!(
        "0 {length} snapshot-origin {}",
        origin.unwrap_or("<origin>")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let devices = TableDevices {
            origin: Some("/dev/vg/lv"),
            origin_sectors: Some(32768),
            cow: "/dev/vg/cow",
        };
        assert_eq!(
            snapshot_table_line(&devices, 8, StoreKind::Persistent),
            "0 32768 snapshot /dev/vg/lv /dev/vg/cow P 8"
        );
        let unknown = TableDevices {
            origin: None,
            origin_sectors: None,
            cow: "cow.img",
        };
        assert_eq!(
            snapshot_table_line(&unknown, 16, StoreKind::Legacy),
            "0 <origin-sectors> snapshot <origin> cow.img P 16"
        );
        assert_eq!(
            origin_table_line(Some("/dev/sda"), Some(8)),
            "0 8 snapshot-origin /dev/sda"
        );
    }
}
