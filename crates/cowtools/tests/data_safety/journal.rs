//! CLI tests of the tools on the shared store's journal: mkcow formats its
//! superblock, cowcheck reports a store waiting for replay (and a torn or
//! damaged journal), cowdump --journal lists it, cowrepair replays it before
//! it salvages. Stores with journal transactions are built with cowfmt's
//! journal API from two states the engine wrote: the state a crash leaves
//! after a commit record and before the images went home.

use crate::common;

use std::path::{Path, PathBuf};

use common::*;
use cowengine::{CreateOptions, SharedStore};
use cowfmt::shared::dump::{SharedDump, SharedSource, TreeDump};
use cowfmt::shared::journal::{
    encode_transaction, replay, scan, write_transaction, JournalArea, Transaction, TxHeader,
};
use cowfmt::shared::{Geometry, SharedHeader};
use cowfmt::{Access, Device};

const CHUNK: u64 = 512;
/// Below the engine's smallest usable journal (69 chunks), so the engine
/// commits the two states in place and leaves the journal as mkcow wrote it
/// (tail_seq 1); the transactions the tests need are built here.
const JOURNAL: u64 = 64;

/// A store the engine wrote, at two commits: `before` and `after` (its
/// path), and what changed between them.
struct TwoStates {
    dir: tempfile::TempDir,
    before: Vec<u8>,
    after: PathBuf,
    geometry: Geometry,
}

impl TwoStates {
    fn new() -> Self {
        let dir = tempdir();
        let origin_path = dir.path().join("origin");
        let after = dir.path().join("after.img");
        std::fs::write(&origin_path, vec![5u8; 600 * CHUNK as usize]).unwrap();
        let options = CreateOptions {
            chunk_sectors: 1,
            journal_chunks: JOURNAL,
        };
        let open = || {
            (
                Device::open(&after, Access::ReadWrite).unwrap(),
                Device::open(&origin_path, Access::ReadWrite).unwrap(),
            )
        };
        Device::create_or_extend(&after, 4096 * CHUNK).unwrap();
        let (cow, origin) = open();
        let mut store = SharedStore::create(cow, origin, &options).unwrap();
        let data = vec![7u8; CHUNK as usize];
        let first = store.create_snapshot(None).unwrap();
        for c in (0..300).step_by(2) {
            store.origin_write(c * CHUNK, &data).unwrap();
        }
        store.commit().unwrap();
        drop(store);
        let before = std::fs::read(&after).unwrap();
        let (cow, origin) = open();
        let mut store = SharedStore::open(cow, origin).unwrap();
        store.create_snapshot(None).unwrap();
        for c in (1..90).step_by(2) {
            store.origin_write(c * CHUNK, &data).unwrap();
        }
        store.snapshot_write(first, 4 * CHUNK, &data).unwrap();
        store.commit().unwrap();
        drop(store);
        let geometry = Geometry::new(4096 * CHUNK, 1, JOURNAL);
        TwoStates {
            dir,
            before,
            after,
            geometry,
        }
    }

    /// Asserts that the store at `path` holds the later state's records.
    fn assert_later_records(&self, path: &Path) {
        assert_eq!(records(path).exceptions, records(&self.after).exceptions);
    }

    fn after_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.after).unwrap()
    }

    /// The metadata chunks (bitmap chunks and tree blocks of the later
    /// state) that differ between the two states.
    fn changed_metadata(&self) -> Vec<u64> {
        let after = self.after_bytes();
        let source =
            SharedSource::open(Device::open(&self.after, Access::ReadOnly).unwrap()).unwrap();
        let mut blocks: Vec<u64> = TreeDump::of(&source)
            .unwrap()
            .tree
            .iter()
            .map(|b| b.chunk)
            .collect();
        blocks.extend(1..self.geometry.journal_start());
        blocks.sort_unstable();
        let cb = CHUNK as usize;
        let chunk = |bytes: &[u8], c: u64| bytes[c as usize * cb..(c as usize + 1) * cb].to_vec();
        blocks
            .into_iter()
            .filter(|&c| chunk(&self.before, c) != chunk(&after, c))
            .collect()
    }

    /// The later state as a crash leaves it right after its commit record:
    /// data chunks written, the changed metadata chunks and the header still
    /// as before, and a committed journal transaction (seq 1) holding them.
    /// Returns the path and the transaction's home chunks.
    fn crashed(&self, name: &str) -> (PathBuf, Vec<u64>) {
        self.crashed_as(name, false)
    }

    /// [`crashed`](Self::crashed), with the transaction's image of the
    /// first tree block it holds replaced by garbage when `garble`.
    fn crashed_as(&self, name: &str, mut garble: bool) -> (PathBuf, Vec<u64>) {
        let path = self.dir.path().join(name);
        let after = self.after_bytes();
        let mut bytes = after.clone();
        let homes = self.changed_metadata();
        assert!(homes.len() > 2, "{homes:?}");
        let cb = CHUNK as usize;
        let mut images = Vec::new();
        for &c in homes.iter().chain([0].iter()) {
            let at = c as usize * cb;
            if garble && c >= self.geometry.data_start() {
                images.extend(std::iter::repeat_n(0xee, cb));
                garble = false;
            } else if c != 0 {
                images.extend_from_slice(&after[at..at + cb]);
            }
            bytes[at..at + cb].copy_from_slice(&self.before[at..at + cb]);
        }
        std::fs::write(&path, &bytes).unwrap();
        let t = Transaction {
            seq: 1,
            header: TxHeader::from(&SharedHeader::decode(&after).unwrap()),
            homes: homes.clone(),
            images,
        };
        let dev = Device::open(&path, Access::ReadWrite).unwrap();
        write_transaction(&dev, &JournalArea::new(&self.geometry), 0, &t).unwrap();
        (path, homes)
    }
}

fn records(path: &Path) -> SharedDump {
    let source = SharedSource::open(Device::open(path, Access::ReadOnly).unwrap()).unwrap();
    SharedDump::of(&source).unwrap()
}

fn check(path: &Path, args: &[&str]) -> std::process::Output {
    tool("cowcheck").args(args).arg(path).output().unwrap()
}

/// Writes a torn transaction (descriptor and images, no commit record) of
/// `seq` at log position `pos`.
fn write_torn(path: &Path, g: &Geometry, pos: u64, seq: u64, homes: &[u64]) {
    let dev = Device::open(path, Access::ReadWrite).unwrap();
    let t = Transaction {
        seq,
        header: TxHeader {
            root_tree_chunk: g.data_start() + 1,
            snapmask: 1,
            tree_level: 1,
        },
        homes: homes.to_vec(),
        images: vec![0xab; homes.len() * CHUNK as usize],
    };
    let (mut desc, mut commit) = (Vec::new(), Vec::new());
    encode_transaction(&t, CHUNK as usize, &mut desc, &mut commit);
    let area = JournalArea::new(g);
    dev.write_at(&desc, area.log_chunk(pos) * CHUNK).unwrap();
    let images_at = area.log_chunk(pos + desc.len() as u64 / CHUNK);
    dev.write_at(&t.images, images_at * CHUNK).unwrap();
}

#[test]
fn the_engine_states_check_clean_with_an_empty_journal() {
    let states = TwoStates::new();
    let out = check(&states.after, &["--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["summary"]["journal"]["state"], "empty");
    assert_eq!(json["summary"]["journal"]["tail_seq"], 1);
}

#[test]
fn cowcheck_reports_a_store_waiting_for_replay() {
    let states = TwoStates::new();
    let (crashed, homes) = states.crashed("crashed.img");
    let out = check(&crashed, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains(
            "error: journal-needs-replay: journal (chunk 2): 1 committed transaction (seq 1 to 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("open it with the engine or run cowrepair"),
        "{text}"
    );
    let out = check(&crashed, &["--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["summary"]["journal"]["state"], "needs-replay");
    assert_eq!(json["summary"]["journal"]["committed"], 1);
    assert_eq!(json["summary"]["journal"]["images"], homes.len() as u64);
    let codes: Vec<&str> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"journal-needs-replay"), "{codes:?}");
}

#[test]
fn replay_turns_the_crashed_store_into_the_committed_one() {
    let states = TwoStates::new();
    let (crashed, _) = states.crashed("crashed.img");
    let dev = Device::open(&crashed, Access::ReadWrite).unwrap();
    let report = replay(&dev, &states.geometry).unwrap();
    assert_eq!(report.transactions, 1);
    drop(dev);
    let replayed = std::fs::read(&crashed).unwrap();
    let after = states.after_bytes();
    let journal = states.geometry.journal_start() as usize * CHUNK as usize;
    let data = states.geometry.data_start() as usize * CHUNK as usize;
    assert!(
        replayed[..journal] == after[..journal],
        "header or bitmap differ"
    );
    assert!(replayed[data..] == after[data..], "the data range differs");
    let out = check(&crashed, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn a_torn_last_transaction_is_an_info_note_not_damage() {
    let states = TwoStates::new();
    let g = states.geometry;
    write_torn(&states.after, &g, 0, 1, &[g.data_start() + 700, 1]);
    let out = check(&states.after, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            "info: journal log position 0 (chunk 3): the last transaction (seq 1) is torn"
        ),
        "{text}"
    );
    assert!(text.contains("this is not damage"), "{text}");
    assert!(text.trim_end().ends_with("clean"), "{text}");
    let json: serde_json::Value =
        serde_json::from_slice(&check(&states.after, &["--format", "json"]).stdout).unwrap();
    assert_eq!(json["summary"]["journal"]["torn"], true);
    assert!(json["notes"][0].as_str().unwrap().contains("torn"));
}

#[test]
fn a_crashed_store_with_a_torn_transaction_after_the_committed_one() {
    let states = TwoStates::new();
    let (crashed, homes) = states.crashed("crashed.img");
    let pos = homes.len() as u64 + 2;
    write_torn(
        &crashed,
        &states.geometry,
        pos,
        2,
        &[states.geometry.data_start() + 900],
    );
    let text = stdout(&check(&crashed, &[]));
    assert!(text.contains("journal-needs-replay"), "{text}");
    assert!(
        text.contains(&format!("info: journal log position {pos}")),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&cowdump(&["--journal", "--format", "json"], &crashed).stdout)
            .unwrap();
    let txs = json["journal"]["transactions"].as_array().unwrap();
    assert_eq!(txs.len(), 2);
    assert_eq!(txs[1]["state"], "torn");
    assert_eq!(txs[1]["seq"], 2);
    assert_eq!(txs[1]["pos"], pos);
    assert_eq!(txs[1]["homes"][0], states.geometry.data_start() + 900);
}

#[test]
fn cowcheck_reports_a_damaged_superblock_and_a_damaged_transaction() {
    let states = TwoStates::new();
    let g = states.geometry;
    let sup = g.journal_start() * CHUNK;
    let damaged = states.dir.path().join("damaged.img");
    std::fs::copy(&states.after, &damaged).unwrap();
    poke(&damaged, sup + 24, &[9]);
    let out = check(&damaged, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("error: journal-superblock-damaged: journal superblock (chunk 2): crc32c"),
        "{text}"
    );
    assert!(text.contains("cowrepair reformats the journal"), "{text}");

    let outside = states.dir.path().join("outside.img");
    std::fs::copy(&states.after, &outside).unwrap();
    let dev = Device::open(&outside, Access::ReadWrite).unwrap();
    let t = Transaction {
        seq: 1,
        header: TxHeader::from(&SharedHeader::decode(&std::fs::read(&outside).unwrap()).unwrap()),
        homes: vec![g.journal_start() + 5],
        images: vec![0; CHUNK as usize],
    };
    write_transaction(&dev, &JournalArea::new(&g), 0, &t).unwrap();
    let out = check(&outside, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("error: journal-transaction-damaged: journal log position 0 (chunk 3): transaction seq 1: image 0's home chunk 7 is not in the tree area"), "{text}");
}

#[test]
fn cowdump_lists_the_journal_in_every_format() {
    let states = TwoStates::new();
    let (crashed, homes) = states.crashed("crashed.img");
    let run = |format: &str| {
        let out = cowdump(&["--journal", "--format", format], &crashed);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        out
    };
    let json: serde_json::Value = serde_json::from_slice(&run("json").stdout).unwrap();
    let yaml: serde_json::Value = serde_yaml::from_slice(&run("yaml").stdout).unwrap();
    assert_eq!(json, yaml);
    assert_eq!(json["kind"], "shared");
    let j = &json["journal"];
    assert_eq!(j["state"], "needs-replay");
    assert_eq!(j["start"], 2);
    assert_eq!(j["log_chunks"], JOURNAL - 1);
    assert_eq!(j["superblock"]["tail_seq"], 1);
    assert_eq!(j["superblock"]["chunk_bytes"], CHUNK);
    let tx = &j["transactions"][0];
    assert_eq!(tx["seq"], 1);
    assert_eq!(tx["pos"], 0);
    assert_eq!(tx["chunk"], 3);
    assert_eq!(tx["state"], "committed");
    assert_eq!(tx["images"], homes.len() as u64);
    let listed: Vec<u64> = tx["homes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_u64().unwrap())
        .collect();
    assert_eq!(listed, homes);
    assert_eq!(tx["snapshots"], serde_json::json!([0, 1]));
    let table = stdout(&run("table"));
    assert!(
        table.contains(&format!(
            "Journal: superblock chunk 2, {} log chunks, needs-replay",
            JOURNAL - 1
        )),
        "{table}"
    );
    assert!(table.contains("superblock: tail_seq 1"), "{table}");
    let row = table.lines().find(|l| l.contains("committed")).unwrap();
    assert!(
        row.contains(&format!("{}  committed", homes.len())),
        "{row}"
    );
    assert!(
        row.contains(
            &homes
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
        "{row}"
    );
    assert!(table.contains("(1 transaction)"), "{table}");
}

#[test]
fn cowdump_journal_of_a_damaged_superblock_and_of_a_persistent_store() {
    let states = TwoStates::new();
    poke(&states.after, states.geometry.journal_start() * CHUNK, b"X");
    let out = cowdump(&["--journal", "--format", "json"], &states.after);
    let json = success_json(&out);
    assert_eq!(json["journal"]["state"], "damaged");
    assert!(json["journal"]["problem"]
        .as_str()
        .unwrap()
        .contains("magic"));
    assert!(json["journal"]["superblock"].is_null());

    let dir = tempdir();
    let persistent = build_store(&dir, "p.img", 8, 64, 3);
    let out = tool("cowdump")
        .arg("--journal")
        .arg(&persistent)
        .output()
        .unwrap();
    assert_error_says(&out, 2, "p.img", &["--journal is for shared stores"]);
}

#[test]
fn cowrepair_replays_through_an_overlay_and_never_writes_the_input() {
    let states = TwoStates::new();
    let (crashed, homes) = states.crashed("crashed.img");
    let input_before = std::fs::read(&crashed).unwrap();
    let fixed = states.dir.path().join("fixed.img");
    let out = tool("cowrepair")
        .args(["-i", s(&crashed), "-o", s(&fixed)])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains(&format!("the journal held 1 committed transaction ({} images, up to seq 1) not yet written home: it was replayed before the salvage", homes.len())), "{text}");
    assert!(text.contains("the input was not written"), "{text}");
    assert_eq!(std::fs::read(&crashed).unwrap(), input_before);
    assert_eq!(check(&fixed, &[]).status.code(), Some(0));
    states.assert_later_records(&fixed);
    assert_eq!(
        records(&fixed).head.snapshots,
        records(&states.after).head.snapshots
    );
    let fixed_dev = Device::open(&fixed, Access::ReadOnly).unwrap();
    let scanned = scan(&fixed_dev, &states.geometry).unwrap();
    assert_eq!(scanned.sup.unwrap().tail_seq, 1);
    assert!(!scanned.needs_replay());

    let json_out = states.dir.path().join("fixed2.img");
    let out = tool("cowrepair")
        .args([
            "-q",
            "-i",
            s(&crashed),
            "-o",
            s(&json_out),
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["journal"]["transactions_replayed"], 1);
    assert_eq!(json["journal"]["images_replayed"], homes.len() as u64);
}

#[test]
fn without_the_replay_the_salvage_would_lose_the_last_commit() {
    let states = TwoStates::new();
    let (crashed, _) = states.crashed("crashed.img");
    let before = states.dir.path().join("before.img");
    std::fs::write(&before, &states.before).unwrap();
    assert_ne!(
        records(&before).exceptions,
        records(&states.after).exceptions
    );
    let fixed = states.dir.path().join("fixed.img");
    tool("cowrepair")
        .args(["-q", "-i", s(&crashed), "-o", s(&fixed)])
        .assert()
        .code(0);
    states.assert_later_records(&fixed);
}

#[test]
fn cowrepair_in_place_replays_too() {
    let states = TwoStates::new();
    let (crashed, _) = states.crashed("crashed.img");
    let backup = states.dir.path().join("backup.img");
    let out = tool("cowrepair")
        .args(["-i", s(&crashed), "--in-place", "--backup", s(&backup)])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("1 committed transaction"), "{text}");
    assert_eq!(check(&crashed, &[]).status.code(), Some(0));
    states.assert_later_records(&crashed);
}

#[test]
fn cowrepair_reformats_a_damaged_journal_and_says_so() {
    let states = TwoStates::new();
    poke(
        &states.after,
        states.geometry.journal_start() * CHUNK + 8,
        &[7],
    );
    let fixed = states.dir.path().join("fixed.img");
    let out = tool("cowrepair")
        .args(["-i", s(&states.after), "-o", s(&fixed)])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains(
            "the journal superblock was damaged (chunk 2: version 7 at offset 8 is not supported"
        ),
        "{text}"
    );
    assert!(
        text.contains("the output's journal was formatted afresh"),
        "{text}"
    );
    assert_eq!(check(&fixed, &[]).status.code(), Some(0));
    let dev = Device::open(&fixed, Access::ReadOnly).unwrap();
    assert_eq!(
        scan(&dev, &states.geometry).unwrap().sup.unwrap().tail_seq,
        1
    );
}

/// The journal superblock of the store at `path` (journal after `bitmap`
/// chunks of `chunk_bytes`).
fn superblock(path: &Path, chunk_bytes: usize, bitmap: usize) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let at = (1 + bitmap) * chunk_bytes;
    bytes[at..at + chunk_bytes].to_vec()
}

#[test]
fn mkcow_formats_the_journal_superblock() {
    let dir = tempdir();
    let path = dir.path().join("shared.img");
    mkcow_quiet(
        &["--kind", "shared", "--size", "64M", "--journal-size", "1M"],
        &path,
    );
    let sup = superblock(&path, 4096, 1);
    assert_eq!(&sup[0..8], b"CoWJsupr");
    assert_eq!(u32::from_le_bytes(sup[8..12].try_into().unwrap()), 1);
    assert_eq!(u32::from_le_bytes(sup[12..16].try_into().unwrap()), 4096);
    assert_eq!(u32::from_le_bytes(sup[16..20].try_into().unwrap()), 255);
    assert_eq!(u64::from_le_bytes(sup[24..32].try_into().unwrap()), 1);
    assert!(sup[36..].iter().all(|&b| b == 0));
    let out = check(&path, &["--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["summary"]["journal"]["state"], "empty");

    let none = dir.path().join("none.img");
    mkcow_quiet(
        &["--kind", "shared", "--size", "1M", "--journal-size", "0"],
        &none,
    );
    let json: serde_json::Value =
        serde_json::from_slice(&check(&none, &["--format", "json"]).stdout).unwrap();
    assert_eq!(json["summary"]["journal"]["state"], "none");
}

#[test]
fn mkcow_restore_formats_the_journal_superblock() {
    let states = TwoStates::new();
    let dump = states.dir.path().join("dump.json");
    tool("cowdump")
        .args(["-q", "--format", "json", "-o", s(&dump), s(&states.after)])
        .assert()
        .success();
    let restored = states.dir.path().join("restored.img");
    tool("mkcow")
        .args(["-q", "--from-dump", s(&dump), "--size", "2M", s(&restored)])
        .assert()
        .success();
    let header = SharedHeader::decode(&std::fs::read(&restored).unwrap()).unwrap();
    let g = Geometry::new(2 << 20, 1, u64::from(header.nr_journal_chunks));
    let sup = superblock(&restored, CHUNK as usize, g.nr_bitmap_chunks as usize);
    assert_eq!(&sup[0..8], b"CoWJsupr");
    assert_eq!(u64::from_le_bytes(sup[24..32].try_into().unwrap()), 1);
    assert_eq!(check(&restored, &[]).status.code(), Some(0));
}

#[test]
fn cowdump_warns_that_a_dump_predates_committed_transactions() {
    let states = TwoStates::new();
    let (crashed, _) = states.crashed("crashed.img");
    let out = tool("cowdump").arg(&crashed).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("warning: ") && err.contains("the journal holds 1 committed transaction not yet written home: this dump shows the store before it; open it with the engine or run cowrepair"),
        "{err}"
    );
    let clean = tool("cowdump").arg(&states.after).output().unwrap();
    assert!(!stderr(&clean).contains("journal"), "{}", stderr(&clean));
}

/// `cowmigrate` with `args`, which must succeed; returns its stdout.
fn migrate_ok(args: &[&str]) -> String {
    let out = tool("cowmigrate").args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

const READ_THROUGH: &str = "read through 1 committed journal transaction not yet written home";

#[test]
fn cowmigrate_compacts_and_rechunks_a_store_waiting_for_replay_as_its_last_commit() {
    let states = TwoStates::new();
    let (crashed, _) = states.crashed("crashed.img");
    let input_before = std::fs::read(&crashed).unwrap();
    let origin = states.dir.path().join("origin");
    for extra in [&[][..], &["--chunk-size", "1k", "--origin", s(&origin)][..]] {
        let out = |name: &str| states.dir.path().join(name);
        let (c, a) = (out("c.img"), out("a.img"));
        let mut args = vec!["-i", s(&crashed), "-o", s(&c), "--to", "shared"];
        args.extend_from_slice(extra);
        let text = migrate_ok(&args);
        assert!(text.contains(READ_THROUGH), "{text}");
        let mut args = vec!["-i", s(&states.after), "-o", s(&a), "--to", "shared"];
        args.extend_from_slice(extra);
        assert!(!migrate_ok(&args).contains("read through"));
        let (from_crashed, from_after) = (records(&c), records(&a));
        assert_eq!(from_crashed.exceptions, from_after.exceptions, "{extra:?}");
        assert_eq!(from_crashed.head.snapshots, from_after.head.snapshots);
        assert_eq!(check(&c, &[]).status.code(), Some(0));
        for path in [c, a] {
            std::fs::remove_file(path).unwrap();
        }
    }
    let json: serde_json::Value = serde_json::from_str(&migrate_ok(&[
        "-i",
        s(&crashed),
        "-o",
        s(&states.dir.path().join("j.img")),
        "--to",
        "shared",
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(json["journal_transactions_read"], 1);
    assert_eq!(std::fs::read(&crashed).unwrap(), input_before);
}

#[test]
fn cowmigrate_exports_a_store_waiting_for_replay_as_its_last_commit() {
    let states = TwoStates::new();
    let (crashed, _) = states.crashed("crashed.img");
    let input_before = std::fs::read(&crashed).unwrap();
    let origin = states.dir.path().join("origin");
    let out = |name: String| states.dir.path().join(name);
    // Snapshot 1 exists only in the later state; snapshot 0 changed in it.
    for id in ["0", "1"] {
        for (to, extra) in [
            ("persistent", vec![]),
            ("raw", vec!["--origin", s(&origin)]),
        ] {
            let (c, a) = (out(format!("c-{to}-{id}")), out(format!("a-{to}-{id}")));
            let mut args = vec!["-i", s(&crashed), "-o", s(&c), "--to", to, "--snapshot", id];
            args.extend_from_slice(&extra);
            let text = migrate_ok(&args);
            assert!(text.contains(READ_THROUGH), "{text}");
            args[1] = s(&states.after);
            args[3] = s(&a);
            assert!(!migrate_ok(&args).contains("read through"));
            assert!(
                std::fs::read(&c).unwrap() == std::fs::read(&a).unwrap(),
                "--to {to} --snapshot {id}: the exports differ"
            );
        }
    }
    assert_eq!(std::fs::read(&crashed).unwrap(), input_before);
}

#[test]
fn cowmigrate_merge_replays_the_journal_first() {
    let states = TwoStates::new();
    let (crashed, _) = states.crashed("crashed.img");
    let origin = states.dir.path().join("origin");
    let later = engine_images(&states.after, &origin);
    let text = migrate_ok(&[
        "-i",
        s(&crashed),
        "--merge",
        "--origin",
        s(&origin),
        "--snapshot",
        "0",
    ]);
    assert!(
        text.contains("1 committed journal transaction replayed into the store before the merge"),
        "{text}"
    );
    assert!(std::fs::read(&origin).unwrap() == later[0].1);
    let left: Vec<_> = later.into_iter().filter(|(id, _)| *id != 0).collect();
    assert_eq!(left.len(), 1, "snapshot 1 of the later state is kept");
    assert_eq!(engine_images(&crashed, &origin), left);
    assert_eq!(check(&crashed, &[]).status.code(), Some(0));
}

#[test]
fn cowmigrate_merge_refuses_a_damaged_journal_superblock() {
    let states = TwoStates::new();
    let (crashed, _) = states.crashed("crashed.img");
    poke(&crashed, states.geometry.journal_start() * CHUNK + 8, &[7]);
    let origin = states.dir.path().join("origin");
    let (store_before, origin_before) = (
        std::fs::read(&crashed).unwrap(),
        std::fs::read(&origin).unwrap(),
    );
    let out = tool("cowmigrate")
        .args(["-i", s(&crashed), "--merge", "--origin", s(&origin)])
        .args(["--snapshot", "0"])
        .output()
        .unwrap();
    assert_error_says(
        &out,
        2,
        "crashed.img",
        &["journal superblock (chunk 2)", "run cowrepair first"],
    );
    assert!(std::fs::read(&crashed).unwrap() == store_before);
    assert!(std::fs::read(&origin).unwrap() == origin_before);
}

/// Runs a merge of snapshot `id` of `store` into `origin` that must be
/// refused; asserts neither was written and returns the message.
fn refused_merge(store: &Path, origin: &Path, id: &str) -> String {
    let before = (
        std::fs::read(store).unwrap(),
        std::fs::read(origin).unwrap(),
    );
    let out = tool("cowmigrate")
        .args([
            "-i",
            s(store),
            "--merge",
            "--origin",
            s(origin),
            "--snapshot",
            id,
        ])
        .output()
        .unwrap();
    let msg = assert_one_line_error(&out, 2, "crashed.img");
    assert!(
        std::fs::read(store).unwrap() == before.0,
        "the store was written"
    );
    assert!(
        std::fs::read(origin).unwrap() == before.1,
        "the origin was written"
    );
    msg
}

#[test]
fn cowmigrate_merge_of_an_absent_snapshot_does_not_replay_the_journal() {
    let states = TwoStates::new();
    let (crashed, _) = states.crashed("crashed.img");
    let origin = states.dir.path().join("origin");
    let msg = refused_merge(&crashed, &origin, "7");
    assert!(msg.contains("snapshot 7 does not exist"), "{msg}");
}

#[test]
fn cowmigrate_merge_refuses_a_committed_transaction_holding_a_garbage_tree_block() {
    let states = TwoStates::new();
    let (crashed, _) = states.crashed_as("crashed.img", true);
    let origin = states.dir.path().join("origin");
    let msg = refused_merge(&crashed, &origin, "0");
    assert!(
        msg.contains("as its committed journal transactions would leave it"),
        "{msg}"
    );
    assert!(msg.contains("nothing was written"), "{msg}");
}

#[test]
fn cowcheck_checks_the_state_a_replay_would_leave_too() {
    let states = TwoStates::new();
    let (sound, _) = states.crashed("sound.img");
    let out = check(&sound, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("journal-needs-replay"), "{text}");
    assert!(!text.contains("after replay"), "{text}");
    let (garbled, _) = states.crashed_as("garbled.img", true);
    let out = check(&garbled, &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("journal-needs-replay"), "{text}");
    assert!(
        text.contains("garbled.img: after replay: error: "),
        "{text}"
    );
    assert!(text.contains("after replay\n"), "{text}");
    let out = check(&garbled, &["--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let after = json["after_replay"].as_array().unwrap();
    assert!(after.iter().any(|f| f["severity"] == "error"), "{json}");
}

/// Formats a shared store of 512-byte chunks with a journal of `chunks`
/// chunks at `path`; returns mkcow's stderr.
fn mkcow_with_journal(path: &Path, chunks: u64) -> String {
    let out = tool("mkcow")
        .args([
            "-q",
            "--kind",
            "shared",
            "--size",
            "1M",
            "--chunk-size",
            "512",
        ])
        .args(["--journal-size", &(chunks * CHUNK).to_string()])
        .arg(path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn a_store_that_commits_in_place_is_warned_about_by_every_tool() {
    let dir = tempdir();
    for (chunks, in_place) in [(0, true), (68, true), (69, false)] {
        let path = dir.path().join(format!("j{chunks}.img"));
        let warning = mkcow_with_journal(&path, chunks);
        assert_eq!(
            warning.contains("commits in place, not crash-safe"),
            in_place,
            "{chunks}: {warning}"
        );
        assert_eq!(warning.is_empty(), !in_place, "{chunks}: {warning}");
        let out = check(&path, &[]);
        assert_eq!(out.status.code(), Some(0), "{chunks}: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            text.contains("info: ") && text.contains("commits in place, not crash-safe"),
            in_place,
            "{chunks}: {text}"
        );
        assert!(text.contains(": clean"), "{chunks}: {text}");
        let dump = |format: &str| {
            let out = cowdump(&["--journal", "--format", format], &path);
            String::from_utf8(out.stdout).unwrap()
        };
        let json: serde_json::Value = serde_json::from_str(&dump("json")).unwrap();
        assert_eq!(
            json["journal"]["commits_in_place"].is_string(),
            in_place,
            "{json}"
        );
        let text = dump("table");
        assert_eq!(
            text.contains("commits in place, not crash-safe"),
            in_place,
            "{chunks}: {text}"
        );
        assert_eq!(text.contains("no journal"), chunks == 0, "{text}");
        assert_eq!(text.contains("superblock chunk"), chunks != 0, "{text}");
    }
}

/// A store the engine wrote with a journal it uses, left as a crash leaves it
/// after two commits (the store is forgotten, never checkpointed): its path
/// and its origin's.
fn engine_crashed(dir: &tempfile::TempDir) -> (PathBuf, PathBuf) {
    let origin_path = dir.path().join("origin");
    let path = dir.path().join("engine.img");
    std::fs::write(&origin_path, vec![5u8; 600 * CHUNK as usize]).unwrap();
    let origin = Device::open(&origin_path, Access::ReadWrite).unwrap();
    let mut store = engine_create(&path, 4096 * CHUNK, origin, 1, 400);
    let data = vec![7u8; CHUNK as usize];
    let first = store.create_snapshot(None).unwrap();
    for c in (0..40).step_by(2) {
        store.origin_write(c * CHUNK, &data).unwrap();
    }
    store.commit().unwrap();
    store.create_snapshot(None).unwrap();
    for c in (1..30).step_by(3) {
        store.origin_write(c * CHUNK, &data).unwrap();
    }
    store.snapshot_write(first, 4 * CHUNK, &data).unwrap();
    store.commit().unwrap();
    std::mem::forget(store);
    (path, origin_path)
}

#[test]
fn the_tools_read_a_journal_the_engine_wrote() {
    let dir = tempdir();
    let (crashed, origin) = engine_crashed(&dir);
    let input = std::fs::read(&crashed).unwrap();
    let copy = dir.path().join("copy.img");
    std::fs::write(&copy, &input).unwrap();
    drop(
        SharedStore::open(
            Device::open(&copy, Access::ReadWrite).unwrap(),
            Device::open(&origin, Access::ReadOnly).unwrap(),
        )
        .unwrap(),
    );
    let engine_view = engine_images(&copy, &origin);
    assert_eq!(engine_view.len(), 2);

    let out = check(&crashed, &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("journal-needs-replay"), "{text}");
    assert!(!text.contains("after replay"), "{text}");

    let out = cowdump(&["--journal", "--format", "json"], &crashed);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let txs = json["journal"]["transactions"].as_array().unwrap();
    assert!(!txs.is_empty(), "{json}");
    assert!(txs.iter().all(|t| t["state"] == "committed"), "{json}");
    assert_eq!(json["journal"]["state"], "needs-replay");

    let fixed = dir.path().join("fixed.img");
    tool("cowrepair")
        .args(["-i", s(&crashed), "-o", s(&fixed)])
        .assert()
        .success();
    assert_eq!(check(&fixed, &[]).status.code(), Some(0));
    assert_eq!(engine_images(&fixed, &origin), engine_view);

    for (id, image) in &engine_view {
        let raw = dir.path().join(format!("snap{id}.raw"));
        let id = id.to_string();
        migrate_ok(&[
            "-i",
            s(&crashed),
            "--to",
            "raw",
            "--origin",
            s(&origin),
            "--snapshot",
            &id,
            "-o",
            s(&raw),
        ]);
        assert!(std::fs::read(&raw).unwrap() == *image, "snapshot {id}");
    }
    assert!(
        std::fs::read(&crashed).unwrap() == input,
        "the input was written"
    );
}
