//! Snapshot ids and share masks: bit s of a mask stands for snapshot s.

/// The most snapshots a shared store holds (ids 0..=63).
pub const MAX_SNAPSHOTS: u32 = 64;

/// The mask of snapshot `id` alone.
pub fn bit(id: u32) -> u64 {
    1u64 << id
}

/// The snapshot ids whose bits are set in `mask`, ascending.
pub fn ids(mask: u64) -> impl Iterator<Item = u32> {
    let mut rest = mask;
    std::iter::from_fn(move || {
        if rest == 0 {
            return None;
        }
        let id = rest.trailing_zeros();
        rest &= rest - 1;
        Some(id)
    })
}

/// The ids of `mask` as a vector.
pub fn id_list(mask: u64) -> Vec<u32> {
    ids(mask).collect()
}

/// The ids of `mask` as people read them, e.g. "0,3-5,63" ("none" for 0).
pub fn describe(mask: u64) -> String {
    let ids = id_list(mask);
    if ids.is_empty() {
        return "none".to_string();
    }
    let mut parts = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        parts.push(if j == i {
            ids[i].to_string()
        } else {
            format!("{}-{}", ids[i], ids[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_descriptions() {
        assert_eq!(id_list(0), Vec::<u32>::new());
        assert_eq!(id_list(bit(0) | bit(63)), vec![0, 63]);
        assert_eq!(describe(0b111001), "0,3-5");
        assert_eq!(describe(u64::MAX), "0-63");
        assert_eq!(describe(0), "none");
    }
}
