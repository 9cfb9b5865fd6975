//! The input files every case may name, made once per run in a pool folder:
//! golden images, generated stores, dumps of them, damaged copies and bad
//! inputs. Stores that a tool makes are made by the base revision's tools, so
//! that both sides read the same bytes.

use std::fs::{self, File, OpenOptions};
use std::io::BufReader;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::build::ToolDir;
use crate::gen_store::{generate, GenKind, GenStoreArgs, Pattern};
use crate::tools::workspace_root;

/// The golden folders and the short names their images get in the pool
/// (`golden-a.cow`, `golden-a.origin`...).
const GOLDEN: [(&str, &str); 4] = [
    ("a-persistent-chunk8", "golden-a"),
    ("b2-persistent-chunk8-area-exactly-full", "golden-b2"),
    ("c-persistent-overflow-invalid", "golden-c"),
    ("c2-persistent-PO-snapshot-overflow", "golden-c2"),
];

/// Writes every input into `pool`.
pub fn prepare(pool: &Path, base: &ToolDir) -> Result<()> {
    fs::create_dir_all(pool).with_context(|| format!("{}: cannot create", pool.display()))?;
    golden(pool)?;
    generated(pool)?;
    made_by_mkcow(pool, base)?;
    dumps(pool, base)?;
    damaged(pool)?;
    damaged_clone(pool)?;
    bad(pool)?;
    Ok(())
}

fn golden(pool: &Path) -> Result<()> {
    let golden = workspace_root().join("testdata/golden");
    for (folder, short) in GOLDEN {
        unxz(
            &golden.join(folder).join("cow.img.xz"),
            &pool.join(format!("{short}.cow")),
        )?;
        unxz(
            &golden.join(folder).join("origin.img.xz"),
            &pool.join(format!("{short}.origin")),
        )?;
    }
    let clone = golden.join("d-clone-partial-hydration");
    unxz(&clone.join("meta.img.xz"), &pool.join("clone-meta.img"))?;
    unxz(&clone.join("dest.img.xz"), &pool.join("clone-dest.img"))
}

fn unxz(from: &Path, to: &Path) -> Result<()> {
    let mut input = BufReader::new(
        File::open(from).with_context(|| format!("{}: cannot open", from.display()))?,
    );
    let mut output = File::create_new(to)
        .with_context(|| format!("{}: cannot create (it must not exist yet)", to.display()))?;
    lzma_rs::xz_decompress(&mut input, &mut output)
        .map_err(|e| anyhow::anyhow!("{}: cannot decompress: {e:?}", from.display()))
}

/// gen-store arguments for `NAME.cow` and `NAME.origin` in `pool`.
fn gen_args(
    pool: &Path,
    name: &str,
    kind: GenKind,
    chunk_sectors: u32,
    records: u64,
) -> GenStoreArgs {
    GenStoreArgs {
        kind,
        cow: pool.join(format!("{name}.cow")),
        origin: pool.join(format!("{name}.origin")),
        chunk_size: chunk_sectors,
        records,
        snapshots: None,
        writes: None,
        origin_size: None,
        cow_size: None,
        pattern: Pattern::Random,
        seed: 1,
        with_data: true,
        force: true,
        summary_json: None,
    }
}

fn generated(pool: &Path) -> Result<()> {
    // Persistent, 4 KiB chunks, three areas (256 records each), with data.
    generate(&gen_args(pool, "gen-p", GenKind::Persistent, 8, 700))?;
    // Legacy, 8 KiB chunks, sequential.
    generate(&GenStoreArgs {
        pattern: Pattern::Sequential,
        ..gen_args(pool, "gen-l", GenKind::Legacy, 16, 300)
    })?;
    // Persistent, 16 KiB chunks, runs of consecutive chunks, metadata only.
    generate(&GenStoreArgs {
        pattern: Pattern::Runs,
        with_data: false,
        seed: 7,
        ..gen_args(pool, "gen-r", GenKind::Persistent, 32, 400)
    })?;
    // Shared, 4 KiB chunks, four snapshots, with data.
    generate(&GenStoreArgs {
        snapshots: Some(4),
        ..gen_args(pool, "gen-s", GenKind::Shared, 8, 600)
    })?;
    // Shared, 8 KiB chunks, many snapshots, runs.
    generate(&GenStoreArgs {
        snapshots: Some(20),
        pattern: Pattern::Runs,
        seed: 3,
        ..gen_args(pool, "gen-s2", GenKind::Shared, 16, 900)
    })?;
    Ok(())
}

/// Runs a command line of a base tool in `pool`; it must succeed.
fn base_tool(pool: &Path, base: &ToolDir, line: &str) -> Result<()> {
    let mut words = line.split_whitespace();
    let tool = words.next().context("a command names its tool")?;
    let output = Command::new(base.path(tool))
        .args(words)
        .current_dir(pool)
        .output()
        .with_context(|| format!("cannot run {tool}"))?;
    if !output.status.success() {
        bail!(
            "preparing the inputs: {line} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn made_by_mkcow(pool: &Path, base: &ToolDir) -> Result<()> {
    for line in [
        "mkcow -q --size 2M mk-p.cow",
        "mkcow -q --kind legacy --chunk-size 8k --size 1M mk-l.cow",
        "mkcow -q --kind shared --size 8M --journal-size 256k --snapshots 3 mk-s.cow",
    ] {
        base_tool(pool, base, line)?;
    }
    Ok(())
}

fn dumps(pool: &Path, base: &ToolDir) -> Result<()> {
    for (store, dump, format) in [
        ("gen-p.cow", "gen-p.yaml", "yaml"),
        ("gen-p.cow", "gen-p.json", "json"),
        ("gen-l.cow", "gen-l.yaml", "yaml"),
        ("golden-b2.cow", "golden-b2.yaml", "yaml"),
        ("gen-s.cow", "gen-s.yaml", "yaml"),
        ("gen-s.cow", "gen-s.json", "json"),
        ("mk-s.cow", "mk-s.yaml", "yaml"),
    ] {
        base_tool(
            pool,
            base,
            &format!("cowdump -q --format {format} -o {dump} {store}"),
        )?;
    }
    // A dump edited by hand: one record's new_chunk made impossible.
    let text = fs::read_to_string(pool.join("gen-p.yaml")).context("gen-p.yaml")?;
    fs::write(
        pool.join("bad-dump.yaml"),
        text.replacen("new_chunk: ", "new_chunk: 99999999", 1),
    )?;
    fs::write(pool.join("half-dump.yaml"), &text[..text.len() / 2])?;
    Ok(())
}

/// Copies `from` to `to` in `pool` and writes `bytes` at `offset` of the copy.
fn damaged_copy(pool: &Path, from: &str, to: &str, pokes: &[(u64, &[u8])]) -> Result<()> {
    fs::copy(pool.join(from), pool.join(to))
        .with_context(|| format!("cannot copy {from} to {to}"))?;
    let file = OpenOptions::new().write(true).open(pool.join(to))?;
    for (offset, bytes) in pokes {
        file.write_all_at(bytes, *offset)?;
    }
    Ok(())
}

fn damaged(pool: &Path) -> Result<()> {
    const CHUNK: u64 = 4096;
    // Area 0 of gen-p is chunk 1; a record is old_chunk then new_chunk, 8 bytes each, little-endian.
    let record = |index: u64| CHUNK + index * 16;
    damaged_copy(pool, "gen-p.cow", "dmg-hdr.cow", &[(0, &[0; 16])])?;
    damaged_copy(pool, "gen-p.cow", "dmg-magic.cow", &[(0, b"PanS")])?;
    damaged_copy(pool, "gen-p.cow", "dmg-invalid.cow", &[(4, &[0; 4])])?;
    damaged_copy(pool, "gen-p.cow", "dmg-version.cow", &[(8, &[9, 0, 0, 0])])?;
    damaged_copy(
        pool,
        "gen-p.cow",
        "dmg-rec.cow",
        &[(record(5) + 8, &u64::MAX.to_le_bytes()[..6])],
    )?;
    let sixth = read_at(pool, "gen-p.cow", record(6) + 8, 8)?;
    damaged_copy(pool, "gen-p.cow", "dmg-dup.cow", &[(record(7) + 8, &sixth)])?;
    damaged_copy(
        pool,
        "gen-p.cow",
        "dmg-area.cow",
        &[(CHUNK, &[0; CHUNK as usize])],
    )?;
    damaged_copy(
        pool,
        "gen-p.cow",
        "dmg-term.cow",
        &[(record(100), &[0; 16])],
    )?;
    damaged_copy(
        pool,
        "golden-b2.cow",
        "dmg-b2-area.cow",
        &[(CHUNK + 3 * 16, &[0xff; 16])],
    )?;
    let length = fs::metadata(pool.join("gen-p.cow"))?.len();
    damaged_copy(pool, "gen-p.cow", "dmg-trunc.cow", &[])?;
    OpenOptions::new()
        .write(true)
        .open(pool.join("dmg-trunc.cow"))?
        .set_len(length * 2 / 5)?;
    damaged_copy(pool, "gen-s.cow", "dmg-s-hdr.cow", &[(0, &[0; 512])])?;
    damaged_copy(pool, "gen-s.cow", "dmg-s-leaf.cow", &[])?;
    crate::damage::zero_leaves(&pool.join("dmg-s-leaf.cow"), 3)?;
    damaged_copy(pool, "gen-s2.cow", "dmg-s2-leaf.cow", &[])?;
    crate::damage::zero_leaves(&pool.join("dmg-s2-leaf.cow"), 2)?;
    Ok(())
}

fn read_at(pool: &Path, name: &str, offset: u64, length: usize) -> Result<Vec<u8>> {
    let mut bytes = vec![0; length];
    File::open(pool.join(name))?.read_exact_at(&mut bytes, offset)?;
    Ok(bytes)
}

fn bad(pool: &Path) -> Result<()> {
    fs::create_dir_all(pool.join("adir"))?;
    File::create(pool.join("empty.img"))?;
    fs::write(
        pool.join("trunc.img"),
        &fs::read(pool.join("gen-p.cow"))?[..100],
    )?;
    let junk: Vec<u8> = (0..65536u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    fs::write(pool.join("junk.img"), junk)?;
    File::create(pool.join("zero.img"))?.set_len(1 << 20)?;
    fs::write(pool.join("existing.txt"), "an existing file\n")?;
    Ok(())
}

/// Damaged copies of the golden clone metadata: its superblock's checksum
/// (`dmg-clone-sb.img`) and its one array block's (`dmg-clone-array.img`).
fn damaged_clone(pool: &Path) -> Result<()> {
    const BLOCK: u64 = 4096;
    let le64 = |bytes: Vec<u8>| u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
    // The superblock's bitset root (a leaf), whose first value (after the
    // 32-byte header and 252 keys) is the array block.
    let root = le64(read_at(pool, "clone-meta.img", 188, 8)?);
    let array_block = le64(read_at(
        pool,
        "clone-meta.img",
        root * BLOCK + 32 + 252 * 8,
        8,
    )?);
    damaged_copy(pool, "clone-meta.img", "dmg-clone-sb.img", &[(0, &[0; 4])])?;
    damaged_copy(
        pool,
        "clone-meta.img",
        "dmg-clone-array.img",
        &[(array_block * BLOCK + 40, &[0x5a])],
    )
}
