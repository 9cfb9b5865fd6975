//! Size arguments: bytes with binary suffixes (`4k`, `64M`, `1G`) or sectors (`8s`).

use crate::SECTOR_BYTES;

/// Parses a size such as `4096`, `4k`, `64M`, `1G`, `2T` (powers of 1024, case
/// insensitive, an optional trailing `B`/`iB`) or `8s` (512-byte sectors) into bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, suffix) = trimmed.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!("size '{text}' does not start with a number"));
    }
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("size '{text}' is too large"))?;
    let lower = suffix.to_ascii_lowercase();
    let multiplier: u64 = if lower == "s" {
        SECTOR_BYTES
    } else {
        let unit = lower
            .strip_suffix("ib")
            .or_else(|| lower.strip_suffix('b'))
            .unwrap_or(&lower);
        match unit {
            "" => 1,
            "k" => 1 << 10,
            "m" => 1 << 20,
            "g" => 1 << 30,
            "t" => 1 << 40,
            "p" => 1 << 50,
            _ => {
                return Err(format!(
                    "size '{text}' has an unknown unit '{suffix}' (use s, k, M, G, T or none)"
                ))
            }
        }
    };
    value
        .checked_mul(multiplier)
        .ok_or_else(|| format!("size '{text}' is too large"))
}

/// Parses a chunk size (see [`parse_size`]) and returns it in sectors; it must be a
/// power of two of at least one sector.
pub fn parse_chunk_size(text: &str) -> Result<u32, String> {
    let bytes = parse_size(text)?;
    if bytes < SECTOR_BYTES || bytes % SECTOR_BYTES != 0 {
        return Err(format!(
            "chunk size '{text}' must be a whole number of 512-byte sectors"
        ));
    }
    let sectors = bytes / SECTOR_BYTES;
    if !sectors.is_power_of_two() {
        return Err(format!(
            "chunk size '{text}' ({sectors} sectors) is not a power of two"
        ));
    }
    u32::try_from(sectors).map_err(|_| format!("chunk size '{text}' is too large"))
}

/// Formats a byte count for people: `4 KiB`, `1.5 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("8s"), Ok(4096));
        assert!(parse_size("").is_err());
        assert!(parse_size("k").is_err());
        assert!(parse_size("4x").is_err());
        assert!(parse_size("4sb").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("16777216T").is_err());
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size("4k"), Ok(8));
        assert_eq!(parse_chunk_size("8s"), Ok(8));
        assert_eq!(parse_chunk_size("512"), Ok(1));
        assert!(parse_chunk_size("256").is_err());
        assert!(parse_chunk_size("12k").is_err());
        assert!(parse_chunk_size("1000").is_err());
    }

    #[test]
    fn human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(4096), "4 KiB");
        assert_eq!(human_bytes(1536 * 1024), "1.5 MiB");
    }
}
