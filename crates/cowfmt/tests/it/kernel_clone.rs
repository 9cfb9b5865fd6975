//! dm-clone metadata written by the real kernel (`testdata/kernel-clone/`,
//! made by `cargo xtask vm-clone-fixtures`): for every geometry, the image
//! right after the kernel formatted it and the image after hydration and
//! removal. Checked here with what block 0 and the block validators say; the
//! B-tree, array and space-map walks add their own checks on the same files.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cowfmt::clone::superblock::{CloneSuperblock, METADATA_BLOCK_BYTES};
use cowfmt::pdata::block::{identify, verify, BlockKind, BLOCK_BYTES};
use serde_yaml::Value;
use sha2::{Digest, Sha256};

/// The fixture folders, one per geometry.
const FIXTURES: [&str; 4] = [
    "a-region8-131072regions",
    "b-region128-1024regions",
    "c-region8-8388608regions",
    "d-region2097152-4regions",
];

/// The two images of a folder, with the status label each was saved under.
const IMAGES_OF_A_FIXTURE: [(&str, &str); 2] = [
    ("meta-formatted.img.xz", "formatted"),
    ("meta-final.img.xz", "final"),
];

/// Byte offset of the space map root inside the superblock, and of its
/// fields (nr_blocks, nr_allocated, bitmap_root = index block, ref_count_root).
const SM_ROOT_AT: usize = 44;

/// Where the kernel puts its first blocks when it formats blank metadata.
const FRESH_INDEX: u64 = 1;
const FRESH_REF_COUNT_ROOT: u64 = 2;
const FRESH_BITSET_ROOT: u64 = 4;

/// One fixture folder: its manifest, its status lines by label.
struct Fixture {
    dir: PathBuf,
    manifest: Value,
    status: Vec<(String, Status)>,
}

/// The fields of a dm-clone status line the metadata determines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Status {
    target_sectors: u64,
    metadata_block_sectors: u64,
    used_blocks: u64,
    total_blocks: u64,
    region_sectors: u64,
    hydrated: u64,
    nr_regions: u64,
}

/// The space map root's four fields as the superblock holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SmRoot {
    nr_blocks: u64,
    nr_allocated: u64,
    index: u64,
    ref_count_root: u64,
}

impl SmRoot {
    fn decode(superblock: &[u8]) -> Self {
        let at = |i: usize| {
            let start = SM_ROOT_AT + 8 * i;
            u64::from_le_bytes(superblock[start..start + 8].try_into().expect("8 bytes"))
        };
        SmRoot {
            nr_blocks: at(0),
            nr_allocated: at(1),
            index: at(2),
            ref_count_root: at(3),
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/kernel-clone")
}

/// Every fixture image, decompressed once for all the tests.
fn fixture_image(name: &str, file: &str) -> &'static [u8] {
    static IMAGES: OnceLock<BTreeMap<(String, String), Vec<u8>>> = OnceLock::new();
    let all = IMAGES.get_or_init(|| {
        FIXTURES
            .iter()
            .flat_map(|name| {
                IMAGES_OF_A_FIXTURE
                    .iter()
                    .map(move |(file, _)| (*name, *file))
            })
            .map(|(name, file)| {
                let key = (name.to_string(), file.to_string());
                (key, unxz(&root().join(name).join(file)))
            })
            .collect()
    });
    &all[&(name.to_string(), file.to_string())]
}

fn unxz(path: &Path) -> Vec<u8> {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    lzma_rs::xz_decompress(&mut BufReader::new(file), &mut out)
        .unwrap_or_else(|e| panic!("{}: xz: {e:?}", path.display()));
    out
}

/// `a/b` of a status field as two numbers.
fn fraction(field: &str) -> (u64, u64) {
    let (a, b) = field.split_once('/').expect("a/b field");
    (a.parse().expect("number"), b.parse().expect("number"))
}

fn parse_status(line: &str) -> Status {
    // 0 LEN clone META_BLOCK USED/TOTAL REGION HYDRATED/NR ...
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f[2], "clone", "a clone status line: {line}");
    let (used_blocks, total_blocks) = fraction(f[4]);
    let (hydrated, nr_regions) = fraction(f[6]);
    Status {
        target_sectors: f[1].parse().expect("length"),
        metadata_block_sectors: f[3].parse().expect("metadata block size"),
        used_blocks,
        total_blocks,
        region_sectors: f[5].parse().expect("region size"),
        hydrated,
        nr_regions,
    }
}

impl Fixture {
    fn load(name: &str) -> Self {
        let dir = root().join(name);
        let text = std::fs::read_to_string(dir.join("manifest.yaml")).expect("manifest.yaml");
        let manifest: Value = serde_yaml::from_str(&text).expect("manifest.yaml is YAML");
        let lines = std::fs::read_to_string(dir.join("status.txt")).expect("status.txt");
        let status = lines
            .lines()
            .map(|line| {
                let (label, rest) = line.split_once(' ').expect("LABEL LINE");
                (label.to_string(), parse_status(rest))
            })
            .collect();
        Fixture {
            dir,
            manifest,
            status,
        }
    }

    fn geometry(&self, field: &str) -> u64 {
        self.manifest["geometry"][field]
            .as_u64()
            .unwrap_or_else(|| panic!("{}: geometry.{field}", self.dir.display()))
    }

    fn status(&self, label: &str) -> Status {
        self.status
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, s)| *s)
            .unwrap_or_else(|| panic!("{}: no status {label}", self.dir.display()))
    }

    /// The hydrated runs of the manifest as (start, count).
    fn hydrated_runs(&self) -> Vec<(u64, u64)> {
        self.manifest["hydrated"]
            .as_sequence()
            .expect("hydrated runs")
            .iter()
            .map(|run| {
                let n = |k: &str| run[k].as_u64().expect("run field");
                (n("start"), n("count"))
            })
            .collect()
    }
}

#[test]
fn every_fixture_folder_is_checked() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(root())
        .expect("testdata/kernel-clone is readable")
        .map(|entry| entry.expect("directory entry"))
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    let known: BTreeSet<String> = FIXTURES.iter().map(|s| s.to_string()).collect();
    assert_eq!(on_disk, known);
}

#[test]
fn status_lines_agree_with_the_manifest_geometry() {
    for name in FIXTURES {
        let fx = Fixture::load(name);
        let (region, target) = (fx.geometry("region_sectors"), fx.geometry("target_sectors"));
        let nr_regions = target.div_ceil(region);
        assert_eq!(fx.geometry("nr_regions"), nr_regions, "{name}");
        assert_eq!(
            fx.geometry("bitset_words"),
            nr_regions.div_ceil(64),
            "{name}"
        );
        let hydrated = fx.manifest["hydrated_regions"]
            .as_u64()
            .expect("hydrated_regions");
        for (label, want_hydrated) in [
            ("formatted", 0),
            ("final", hydrated),
            ("reactivated", hydrated),
        ] {
            let st = fx.status(label);
            assert_eq!(st.target_sectors, target, "{name} {label}");
            assert_eq!(st.region_sectors, region, "{name} {label}");
            assert_eq!(st.nr_regions, nr_regions, "{name} {label}");
            assert_eq!(st.metadata_block_sectors, 8, "{name} {label}");
            assert_eq!(
                st.total_blocks,
                fx.geometry("metadata_bytes") / 4096,
                "{name} {label}"
            );
            assert_eq!(st.hydrated, want_hydrated, "{name} {label}");
        }
        assert_eq!(fx.status("reactivated"), fx.status("final"), "{name}");
    }
}

#[test]
fn hydrated_runs_are_sorted_disjoint_inside_the_target_and_add_up() {
    for name in FIXTURES {
        let fx = Fixture::load(name);
        let runs = fx.hydrated_runs();
        let nr_regions = fx.geometry("nr_regions");
        let mut previous_end: Option<u64> = None;
        for &(start, count) in &runs {
            assert!(count > 0, "{name}: empty run at {start}");
            if let Some(end) = previous_end {
                assert!(
                    start > end,
                    "{name}: the run at {start} touches or overlaps the one before"
                );
            }
            assert!(
                start + count <= nr_regions,
                "{name}: run {start}+{count} past {nr_regions}"
            );
            previous_end = Some(start + count);
        }
        let total: u64 = runs.iter().map(|&(_, count)| count).sum();
        assert_eq!(
            total,
            fx.manifest["hydrated_regions"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(total, fx.status("final").hydrated, "{name}");
    }
}

/// Calls `check(fixture, name, file, status label, image)` for every image.
fn each_image(mut check: impl FnMut(&Fixture, &str, &str, &str, &[u8])) {
    for name in FIXTURES {
        let fx = Fixture::load(name);
        for (file, label) in IMAGES_OF_A_FIXTURE {
            check(&fx, name, file, label, fixture_image(name, file));
        }
    }
}

#[test]
fn every_image_has_the_manifest_size_and_hash() {
    each_image(|fx, name, file, label, image| {
        assert_eq!(
            image.len() as u64,
            fx.geometry("metadata_bytes"),
            "{name}/{file}"
        );
        let want = fx.manifest["metadata_sha256"][label]
            .as_str()
            .expect("sha256");
        let got: String = Sha256::digest(image)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, want, "{name}/{file}");
    });
}

#[test]
fn every_superblock_verifies_with_the_manifest_geometry_and_the_status_counts() {
    each_image(|fx, name, file, label, image| {
        let block: &[u8; METADATA_BLOCK_BYTES] = image[..METADATA_BLOCK_BYTES].try_into().unwrap();
        let sb = CloneSuperblock::decode(block);
        assert_eq!(sb.defect(), None, "{name}/{file}");
        assert_eq!(
            verify(BlockKind::CloneSuperblock, 0, block),
            Ok(()),
            "{name}/{file}"
        );
        assert_eq!(
            sb.region_sectors,
            fx.geometry("region_sectors"),
            "{name}/{file}"
        );
        assert_eq!(
            sb.target_sectors,
            fx.geometry("target_sectors"),
            "{name}/{file}"
        );
        let sm = SmRoot::decode(block);
        let st = fx.status(label);
        assert_eq!(sm.nr_blocks, st.total_blocks, "{name}/{file}: sm nr_blocks");
        assert_eq!(
            sm.nr_allocated, st.used_blocks,
            "{name}/{file}: sm nr_allocated"
        );
        let at = |b: u64| &image[b as usize * BLOCK_BYTES..(b as usize + 1) * BLOCK_BYTES];
        for (what, location, kind) in [
            ("bitset root", sb.bitset_root, BlockKind::BtreeNode),
            ("space map index", sm.index, BlockKind::SmIndex),
            ("ref-count root", sm.ref_count_root, BlockKind::BtreeNode),
        ] {
            assert!(location < sm.nr_blocks, "{name}/{file}: {what} {location}");
            assert_eq!(
                verify(kind, location, at(location)),
                Ok(()),
                "{name}/{file}: {what}"
            );
        }
    });
}

/// A fresh format writes exactly the blocks it allocates, each a valid
/// block naming its own location, in the order formats.md 2.10 gives.
#[test]
fn a_fresh_format_writes_exactly_its_allocated_blocks_in_the_kernel_order() {
    for name in FIXTURES {
        let image = fixture_image(name, "meta-formatted.img.xz");
        let sb = CloneSuperblock::decode(image[..METADATA_BLOCK_BYTES].try_into().unwrap());
        let sm = SmRoot::decode(&image[..METADATA_BLOCK_BYTES]);
        assert_eq!(
            (sm.index, sm.ref_count_root, sb.bitset_root),
            (FRESH_INDEX, FRESH_REF_COUNT_ROOT, FRESH_BITSET_ROOT),
            "{name}"
        );
        let mut written = 0;
        for (location, block) in image.chunks_exact(BLOCK_BYTES).enumerate() {
            if block.iter().all(|&b| b == 0) {
                continue;
            }
            let kind = identify(block)
                .unwrap_or_else(|| panic!("{name}: block {location} has no known checksum"));
            assert_eq!(
                verify(kind, location as u64, block),
                Ok(()),
                "{name}: block {location}"
            );
            written += 1;
        }
        assert_eq!(written, sm.nr_allocated, "{name}");
    }
}

/// Every array block of a fresh format is a block of its own: the kernel
/// (since 4.x) allocates one per full block instead of sharing one, so the
/// format uses one superblock, three space map blocks, the array's B-tree
/// nodes and ceil(words / 509) array blocks.
#[test]
fn a_fresh_format_has_one_array_block_per_509_words() {
    for name in FIXTURES {
        let fx = Fixture::load(name);
        let image = fixture_image(name, "meta-formatted.img.xz");
        let kinds: Vec<BlockKind> = image
            .chunks_exact(BLOCK_BYTES)
            .filter(|block| block.iter().any(|&b| b != 0))
            .map(|block| identify(block).expect("a known block"))
            .collect();
        let count = |kind| kinds.iter().filter(|&&k| k == kind).count() as u64;
        let words = fx.geometry("bitset_words");
        assert_eq!(count(BlockKind::ArrayBlock), words.div_ceil(509), "{name}");
        assert_eq!(count(BlockKind::CloneSuperblock), 1, "{name}");
        assert_eq!(count(BlockKind::SmIndex), 1, "{name}");
        assert_eq!(count(BlockKind::SmBitmap), 1, "{name}");
    }
}
