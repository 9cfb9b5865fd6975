//! CLI tests of mkcow for shared stores: exact layout, journal and snapshot
//! options, refusals, and restore from a dump.

use crate::common;

use common::*;
use cowengine::SharedStore;
use cowfmt::shared::bitmap::ChunkBitmap;
use cowfmt::shared::leaf::Leaf;
use cowfmt::shared::{Geometry, Node, SharedHeader};
use cowfmt::{Access, Device};

fn header_of(path: &std::path::Path) -> SharedHeader {
    use std::io::Read;
    let mut bytes = [0u8; 40];
    std::fs::File::open(path)
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    SharedHeader::decode(&bytes).unwrap()
}

#[test]
fn formats_the_exact_layout() {
    let dir = tempdir();
    let path = dir.path().join("shared.img");
    let output = mkcow(
        &[
            "--kind",
            "shared",
            "--size",
            "64M",
            "--journal-size",
            "1M",
            "--snapshots",
            "3",
        ],
        &path,
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("formatted a shared store"), "{text}");
    assert!(
        text.contains(&format!("shared 3 {} 8 2", path.display())),
        "{text}"
    );

    let h = header_of(&path);
    // 16384 chunks of 4 KiB: 1 bitmap chunk, 256 journal chunks, then leaf and root.
    assert_eq!(
        (h.magic, h.valid, h.version, h.chunk_size),
        (0x5537_8008, 1, 1, 8)
    );
    assert_eq!(
        (h.snapmask, h.tree_level, h.nr_journal_chunks),
        (0b111, 1, 256)
    );
    assert_eq!(h.root_tree_chunk, 1 + 1 + 256 + 1);
    let bytes = std::fs::read(&path).unwrap();
    let chunk = |c: usize| &bytes[c * 4096..(c + 1) * 4096];
    assert!(chunk(0)[40..].iter().all(|&b| b == 0));
    let root = Node::decode(chunk(259)).unwrap();
    assert_eq!(root.entries.len(), 1);
    assert_eq!(root.entries[0].chunk, 258);
    let leaf = Leaf::decode(chunk(258)).unwrap();
    assert_eq!((leaf.count(), leaf.base_chunk), (0, 0));
    let geometry = Geometry::new(64 << 20, 8, 256);
    let device = Device::open(&path, Access::ReadOnly).unwrap();
    let bitmap = ChunkBitmap::load(&device, &geometry).unwrap();
    assert_eq!(bitmap.count_used(), 260);
    assert!(bitmap.is_used(259) && !bitmap.is_used(260));
}

#[test]
fn default_journal_is_capped_to_an_eighth_of_a_small_device() {
    let dir = tempdir();
    let path = dir.path().join("small.img");
    mkcow_quiet(
        &["--kind", "shared", "--size", "8M", "--chunk-size", "512"],
        &path,
    );
    assert_eq!(header_of(&path).nr_journal_chunks, 16384 / 8);
    let path = dir.path().join("big.img");
    mkcow_quiet(&["--kind", "shared", "--size", "4G"], &path);
    assert_eq!(header_of(&path).nr_journal_chunks, (128 << 20) / 4096);
}

#[test]
fn refusals_are_one_line_errors() {
    let dir = tempdir();
    let path = dir.path().join("s.img");
    mkcow_quiet(&["--kind", "shared", "--size", "1M"], &path);
    let again = mkcow(&["--kind", "shared"], &path);
    assert_error_says(&again, 2, "s.img", &["already holds a shared store"]);

    let tiny = dir.path().join("tiny.img");
    let out = mkcow(
        &["--kind", "shared", "--size", "1M", "--journal-size", "1M"],
        &tiny,
    );
    assert_error_says(&out, 2, "tiny.img", &["at least"]);

    let big_chunk = mkcow(
        &["--kind", "shared", "--size", "64M", "--chunk-size", "2M"],
        dir.path().join("c.img"),
    );
    assert_error_says(&big_chunk, 2, "c.img", &["2048 sectors"]);

    let too_many = mkcow(
        &["--kind", "shared", "--size", "1M", "--snapshots", "65"],
        dir.path().join("d.img"),
    );
    assert_eq!(too_many.status.code(), Some(2));

    let zero = dir.path().join("zero.json");
    std::fs::write(
        &zero,
        r#"{"format_version":1,"kind":"shared","chunk_size":0,"valid":true,"snapshots":[0],"exceptions":[]}"#,
    )
    .unwrap();
    let out = tool("mkcow")
        .args(["--kind", "shared", "--size", "1M", "--from-dump"])
        .arg(&zero)
        .arg(dir.path().join("z.img"))
        .output()
        .unwrap();
    assert_error_says(
        &out,
        2,
        "zero.json",
        &["chunk_size: chunk size 0 sectors is zero"],
    );
    let out = mkcow(
        &[
            "--kind",
            "shared",
            "--size",
            "1M",
            "--chunk-size",
            "0",
            "--snapshots",
            "2",
        ],
        dir.path().join("z.img"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !stderr(&out).contains("snapshots are more"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("z.img").exists());

    for (chunk, max) in [("512", 29u32), ("1k", 61)] {
        let name = format!("limit-{chunk}.img");
        let path = dir.path().join(&name);
        let over = tool("mkcow")
            .args(["--kind", "shared", "--size", "1M", "--chunk-size", chunk])
            .args(["--snapshots", &(max + 1).to_string()])
            .arg(&path)
            .output()
            .unwrap();
        assert_error_says(&over, 2, &name, &[&format!("serves ({max}")]);
        assert!(!path.exists(), "nothing is written before the refusal");
        mkcow_quiet(
            &[
                "--kind",
                "shared",
                "--size",
                "1M",
                "--chunk-size",
                chunk,
                "--snapshots",
                &max.to_string(),
            ],
            &path,
        );
        assert_eq!(header_of(&path).snapmask.count_ones(), max);
    }
}

#[test]
fn restores_from_a_hand_written_dump_and_the_engine_reads_it() {
    let dir = tempdir();
    let dump = dir.path().join("dump.json");
    std::fs::write(
        &dump,
        r#"{"format_version":1,"kind":"shared","chunk_size":1,"valid":true,"version":1,
            "snapshots":[0,1,5],"journal_chunks":2,
            "exceptions":[{"origin_chunk":3,"cow_chunk":40,"snapshots":[0,5]},
                          {"origin_chunk":3,"cow_chunk":41,"snapshots":[1]},
                          {"origin_chunk":9,"cow_chunk":42,"snapshots":[5]}]}"#,
    )
    .unwrap();
    let path = dir.path().join("restored.img");
    let out = tool("mkcow")
        .arg("--from-dump")
        .arg(&dump)
        .args(["--size", "512K"])
        .arg(&path)
        .output()
        .unwrap();
    assert_success_says(&out, &["restored a shared store"]);
    let origin = blank_image(&dir, "origin.img", 16 * 512);
    let mut store = SharedStore::open(
        Device::open(&path, Access::ReadWrite).unwrap(),
        Device::open(&origin, Access::ReadWrite).unwrap(),
    )
    .unwrap();
    assert_eq!(store.snapmask(), 0b10_0011);
    let ex = store.exceptions().unwrap();
    assert_eq!(ex.len(), 2);
    assert_eq!(
        (ex[0].0, ex[0].1[0].share, ex[0].1[0].chunk),
        (3, 0b10_0001, 40)
    );
    assert_eq!((ex[0].1[1].share, ex[0].1[1].chunk), (0b10, 41));
    assert_eq!((ex[1].0, ex[1].1[0].chunk), (9, 42));
}

#[test]
fn restore_refuses_bad_records() {
    let dir = tempdir();
    let cases = [
        (
            r#"[{"origin_chunk":3,"cow_chunk":40,"snapshots":[2]}]"#,
            "not among the dump's snapshots",
        ),
        (
            r#"[{"origin_chunk":3,"cow_chunk":40,"snapshots":[0]},{"origin_chunk":3,"cow_chunk":41,"snapshots":[0]}]"#,
            "overlap",
        ),
        (
            r#"[{"origin_chunk":4,"cow_chunk":40,"snapshots":[0]},{"origin_chunk":3,"cow_chunk":41,"snapshots":[0]}]"#,
            "ascend",
        ),
        (
            r#"[{"origin_chunk":3,"cow_chunk":1,"snapshots":[0]}]"#,
            "outside the data range",
        ),
        (
            r#"[{"origin_chunk":3,"cow_chunk":40,"snapshots":[0]},{"origin_chunk":5,"cow_chunk":40,"snapshots":[0]}]"#,
            "used twice",
        ),
        (
            r#"[{"origin_chunk":3,"cow_chunk":40,"snapshots":[]}]"#,
            "no snapshot",
        ),
        (
            r#"[{"origin_chunk":18446744073709551615,"cow_chunk":40,"snapshots":[0]}]"#,
            "past the largest origin",
        ),
        (
            r#"[{"origin_chunk":36028797018963968,"cow_chunk":40,"snapshots":[0]}]"#,
            "past the largest origin",
        ),
        (
            r#"[{"origin_chunk":3,"cow_chunk":40,"snapshots":[64]}]"#,
            "snapshot id 64 is out of range",
        ),
    ];
    for (i, (records, expected)) in cases.iter().enumerate() {
        let dump = dir.path().join(format!("d{i}.json"));
        std::fs::write(
            &dump,
            format!(r#"{{"kind":"shared","chunk_size":1,"valid":true,"snapshots":[0,1],"journal_chunks":0,"exceptions":{records}}}"#),
        )
        .unwrap();
        let out = tool("mkcow")
            .arg("--from-dump")
            .arg(&dump)
            .args(["--size", "64K"])
            .arg(dir.path().join(format!("o{i}.img")))
            .output()
            .unwrap();
        let name = format!("d{i}.json");
        let msg = assert_one_line_error(&out, 2, &name);
        assert!(msg.contains(expected), "case {i}: {msg}");
        assert_eq!(msg.matches(name.as_str()).count(), 1, "case {i}: {msg}");
    }
}
