//! The fallback where libblkid cannot be loaded: util-linux's `wipefs
//! --no-act --json`, which lists every signature libblkid knows without
//! writing anything.

use std::path::Path;
use std::process::Command;

use serde::Deserialize;

use super::{describe_place, describe_type, Signature, Source, Unavailable};

/// Where `wipefs` is looked for: the search path, then the usual sbin folders
/// (often missing from a user's PATH).
const PROGRAMS: [&str; 3] = ["wipefs", "/usr/sbin/wipefs", "/sbin/wipefs"];

#[derive(Debug, Deserialize)]
struct Listing {
    signatures: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    offset: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    label: Option<String>,
    /// `filesystem`, `raid`, `crypto`, `partition-table`, `other`.
    #[serde(default)]
    usage: Option<String>,
}

/// Every signature `wipefs` lists on the file or device at `path` of
/// `device_bytes` bytes.
pub fn probe(path: &Path, device_bytes: u64) -> Result<Vec<Signature>, Unavailable> {
    let mut reasons = Vec::new();
    for program in PROGRAMS {
        match Command::new(program)
            .args(["--no-act", "--json", "--output", "OFFSET,TYPE,LABEL,USAGE"])
            .arg(path)
            .output()
        {
            Ok(output) if output.status.success() => {
                return parse(&output.stdout, device_bytes)
                    .map_err(|reason| Unavailable::new("wipefs", reason));
            }
            Ok(output) => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                return Err(Unavailable::new(
                    "wipefs",
                    format!("{program} failed ({}): {}", output.status, stderr.trim()),
                ));
            }
            Err(e) => reasons.push(format!("{program}: {e}")),
        }
    }
    Err(Unavailable::new("wipefs", reasons.join("; ")))
}

/// The signatures of one `wipefs --json` listing (empty output: none).
pub fn parse(json: &[u8], device_bytes: u64) -> Result<Vec<Signature>, String> {
    if json.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let listing: Listing =
        serde_json::from_slice(json).map_err(|e| format!("unexpected --json output: {e}"))?;
    listing
        .signatures
        .into_iter()
        .map(|entry| {
            let digits = entry.offset.trim_start_matches("0x");
            let offset = u64::from_str_radix(digits, 16)
                .map_err(|_| format!("unexpected offset {:?}", entry.offset))?;
            let partition_table = entry.usage.as_deref() == Some("partition-table");
            Ok(Signature {
                what: describe_type(&entry.kind, entry.usage.as_deref(), partition_table),
                place: describe_place(&entry.kind, offset, device_bytes, partition_table),
                name: entry.kind,
                offset,
                label: entry.label.filter(|l| !l.is_empty()),
                source: Source::Wipefs,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_listing_with_a_backup_gpt() {
        let json = br#"{
           "signatures": [
              {"offset":"0xfffe00", "type":"gpt", "label":null, "usage":"partition-table"},
              {"offset":"0x1fe", "type":"PMBR", "label":null, "usage":"partition-table"},
              {"offset":"0x438", "type":"ext4", "label":"data", "usage":"filesystem"},
              {"offset":"0x0", "type":"zfs_member", "label":null, "usage":"raid"}
           ]
        }"#;
        let found = parse(json, 1 << 24).unwrap();
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "a GPT partition table (backup header at byte 16776704)",
                "a protective MBR (GPT) (boot signature at byte 510)",
                "an ext4 file system labelled \"data\" (superblock at byte 1080)",
                "a zfs_member RAID member (superblock at byte 0)",
            ]
        );
        assert!(found.iter().all(|s| s.source == Source::Wipefs));
    }

    #[test]
    fn no_output_is_no_signature_and_junk_is_an_error() {
        assert_eq!(parse(b"", 4096), Ok(Vec::new()));
        assert!(parse(b"{\"nope\": 1}", 4096).is_err());
    }
}
