//! `cowdump --blocks` on dm-clone metadata: every metadata block the one
//! walk ([`walk`]) reaches, streamed as it is reached, with its type, its
//! checksum verdict, the block referencing it, what it covers and the
//! problems found at it; then the blocks with problems the walk never
//! reached as what they are (undecodable, leaked). A first walk (the
//! checker's) finds the problems, a second streams the rows: only the
//! blocks with problems and the array B-tree's nodes are held.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};

use serde::Serialize;

use super::super::check::report;
use super::super::geometry::{metadata_blocks, WORDS_PER_ARRAY_BLOCK};
use super::super::rules::CloneViolation;
use super::super::walk::{walk, BlockReached, BlockRole, CloneVisitor, Policy};
use crate::blockdev::BlockDev;
use crate::dump_format::DUMP_FORMAT_VERSION;
use crate::dump_lines::{open_list, write_fields, DumpWriteError, ListWriter, TextSyntax};
use crate::kind::StoreKind;
use crate::pdata::bitset::BITS_PER_WORD;
use crate::pdata::block::BlockKind;
use crate::pdata::btree::KeyRange;

/// The name of the list of blocks in the document.
pub const LIST: &str = "blocks";

/// A block's checksum verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Read as what it is: checksum and own location right.
    Ok,
    /// Its checksum or the location it names is wrong.
    Bad,
    /// Never read as a block of its type (a leaked block).
    Unread,
}

impl Verdict {
    /// The verdict as the document spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Bad => "bad",
            Verdict::Unread => "unread",
        }
    }
}

/// A span of keys or regions: `start..end` (`end` `None`: no upper bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    /// The first.
    pub start: u64,
    /// The first past the span, if bounded.
    pub end: Option<u64>,
}

/// One metadata block as `--blocks` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockRow {
    /// The block number.
    pub block: u64,
    /// What it is: `superblock`, `sm_index`, `sm_bitmap`, `ref_count_node`,
    /// `array_btree_node`, `array_block`, or for a block not reached the
    /// type it failed as (`btree_node`...), `superblock` for block 0, or
    /// `unreached`.
    #[serde(rename = "type")]
    pub role: &'static str,
    /// The checksum verdict.
    pub checksum: Verdict,
    /// The block referencing it, where known.
    pub referenced_from: Option<u64>,
    /// The blocks it references (the superblock: space map index,
    /// ref-count root, bitset root).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<u64>,
    /// A space map bitmap's number in the index; an array block's index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// An array B-tree node's keys (array block indices) and depth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<Span>,
    /// An array B-tree node's depth (the root is 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    /// The regions an array block holds the bits of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regions: Option<Span>,
    /// The problems found at the block, as `CODE: sentence`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// The fields of the document before its list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlocksHead {
    /// [`DUMP_FORMAT_VERSION`].
    pub format_version: u32,
    /// `clone`.
    pub kind: StoreKind,
    /// `blocks`.
    pub view: &'static str,
    /// Metadata blocks on the device (as the kernel counts them).
    pub nr_blocks: u64,
}

/// The fields after the list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlocksTail {
    /// Rows listed (a block referenced twice is listed twice).
    pub blocks_listed: u64,
    /// Blocks whose checksum or location is wrong.
    pub bad_blocks: u64,
    /// Blocks listed with a problem.
    pub blocks_with_problems: u64,
    /// Problems at no one block, as `CODE: sentence`.
    pub problems: Vec<String>,
}

/// Walks the clone metadata on `device`, giving `row` every block (see the
/// module); returns the tail. Fails on a read error or when `row` does.
pub fn list_blocks(
    device: &dyn BlockDev,
    row: &mut dyn FnMut(&BlockRow) -> io::Result<()>,
) -> Result<BlocksTail, DumpWriteError> {
    let first = walk(device, None, Policy::Tolerant, &mut ())?;
    let references = first.opened.superblock.as_ref().map(|superblock| {
        let sm = first.space_map.as_ref().map(|loaded| loaded.root);
        let sm = sm.map_or(Vec::new(), |root| {
            vec![root.index_block, root.ref_count_root]
        });
        (sm, superblock.bitset_root)
    });
    let nr_regions = first.opened.geometry.map_or(u64::MAX, |g| g.nr_regions());
    let checked = report(first);
    let mut lister = Lister {
        row,
        problems: BTreeMap::new(),
        listed: HashSet::new(),
        nodes: NodeLevels::default(),
        references,
        nr_regions,
        tail: BlocksTail::default(),
        error: None,
    };
    for violation in &checked.violations {
        match violation.block() {
            Some(block) => lister.problems.entry(block).or_default().push(violation),
            None => lister.tail.problems.push(sentence(violation)),
        }
    }
    walk(device, None, Policy::Tolerant, &mut lister)?;
    lister.unreached();
    if let Some(error) = lister.error {
        return Err(error.into());
    }
    Ok(lister.tail)
}

/// The head of the `--blocks` document of `device`.
pub fn blocks_head(device: &dyn BlockDev) -> BlocksHead {
    BlocksHead {
        format_version: DUMP_FORMAT_VERSION,
        kind: StoreKind::Clone,
        view: LIST,
        nr_blocks: metadata_blocks(device.size()),
    }
}

/// Writes the `--blocks` document of `device` in `syntax`; `tick` gets the
/// count of rows written after each one.
pub fn write_blocks_document(
    out: &mut dyn Write,
    device: &dyn BlockDev,
    syntax: TextSyntax,
    tick: &dyn Fn(u64),
) -> Result<(), DumpWriteError> {
    write_fields(out, syntax, &blocks_head(device), true)?;
    open_list(out, syntax, LIST)?;
    let mut list = ListWriter::new(out, syntax, &[]);
    let tail = list_blocks(device, &mut |row| {
        list.item();
        let text = serde_json::to_string(row).map_err(io::Error::other)?;
        list.batch.text(text.as_bytes());
        list.batch.end_record()?;
        tick(list.batch.count);
        Ok(())
    })?;
    list.close()?;
    write_fields(out, syntax, &tail, false)?;
    if syntax == TextSyntax::Json {
        writeln!(out, "\n}}")?;
    }
    Ok(())
}

/// `CODE: sentence` of a violation.
fn sentence(violation: &CloneViolation) -> String {
    format!("{}: {}", violation.code(), violation.describe())
}

/// Whether a violation says the block did not decode as its type.
fn is_bad_block(violation: &CloneViolation) -> bool {
    matches!(
        violation,
        CloneViolation::Checksum { .. } | CloneViolation::Blocknr { .. }
    )
}

/// The nodes of the array B-tree by level, each level sorted by first key
/// once the next level starts (the walk goes level by level): the parent of
/// a node or of an array block is the node one level up whose keys hold it.
#[derive(Default)]
struct NodeLevels {
    levels: Vec<Vec<(KeyRange, u64)>>,
    sorted: usize,
}

impl NodeLevels {
    /// Records a node at `depth`; returns its parent.
    fn node(&mut self, depth: u32, keys: KeyRange, location: u64) -> Option<u64> {
        let depth = depth as usize;
        while self.levels.len() <= depth {
            self.levels.push(Vec::new());
        }
        self.levels[depth].push((keys, location));
        let above = depth.checked_sub(1)?;
        self.holder(above, keys.start)
    }

    /// The leaf holding array block `index`.
    fn leaf(&mut self, index: u64) -> Option<u64> {
        let deepest = self.levels.len().checked_sub(1)?;
        self.holder(deepest, index)
    }

    /// The node of `level` whose keys hold `key`.
    fn holder(&mut self, level: usize, key: u64) -> Option<u64> {
        while self.sorted <= level {
            self.levels[self.sorted].sort_unstable_by_key(|(keys, _)| keys.start);
            self.sorted += 1;
        }
        let nodes = &self.levels[level];
        let after = nodes.partition_point(|(keys, _)| keys.start <= key);
        let (keys, location) = nodes.get(after.checked_sub(1)?)?;
        keys.contains(key).then_some(*location)
    }
}

/// The second walk's visitor: one row per block reached.
struct Lister<'a, 'v> {
    row: &'a mut dyn FnMut(&BlockRow) -> io::Result<()>,
    problems: BTreeMap<u64, Vec<&'v CloneViolation>>,
    listed: HashSet<u64>,
    nodes: NodeLevels,
    /// The superblock's: space map index and ref-count root, bitset root.
    references: Option<(Vec<u64>, u64)>,
    /// Regions of the target (the last array block holds fewer bits).
    nr_regions: u64,
    tail: BlocksTail,
    error: Option<io::Error>,
}

impl Lister<'_, '_> {
    fn emit(&mut self, mut row: BlockRow) {
        if let Some(found) = self.problems.get(&row.block) {
            if found.iter().any(|v| is_bad_block(v)) {
                row.checksum = Verdict::Bad;
            }
            row.problems = found.iter().map(|v| sentence(v)).collect();
            self.listed.insert(row.block);
        }
        self.tail.blocks_listed += 1;
        self.tail.bad_blocks += u64::from(row.checksum == Verdict::Bad);
        self.tail.blocks_with_problems += u64::from(!row.problems.is_empty());
        if self.error.is_none() {
            self.error = (self.row)(&row).err();
        }
    }

    /// Rows for the blocks with problems that no reference reached.
    fn unreached(&mut self) {
        let left: Vec<(u64, Vec<&CloneViolation>)> = (self.problems.iter())
            .filter(|(block, _)| !self.listed.contains(block))
            .map(|(block, found)| (*block, found.clone()))
            .collect();
        for (block, found) in left {
            let failed_as = found.iter().find_map(|v| match v {
                CloneViolation::Checksum { kind, .. } | CloneViolation::Blocknr { kind, .. } => {
                    Some(*kind)
                }
                _ => None,
            });
            let role = match failed_as {
                Some(kind) => kind_name(kind),
                None if block == 0 => "superblock",
                None => "unreached",
            };
            let row = BlockRow {
                role,
                checksum: if failed_as.is_some() {
                    Verdict::Bad
                } else {
                    Verdict::Unread
                },
                ..BlockRow::new(block, None)
            };
            self.emit(row);
        }
    }
}

impl BlockRow {
    fn new(block: u64, referenced_from: Option<u64>) -> Self {
        BlockRow {
            block,
            role: "",
            checksum: Verdict::Ok,
            referenced_from,
            references: Vec::new(),
            index: None,
            keys: None,
            depth: None,
            regions: None,
            problems: Vec::new(),
        }
    }
}

/// The `type` of a block that failed to decode as `kind`.
fn kind_name(kind: BlockKind) -> &'static str {
    match kind {
        BlockKind::BtreeNode => "btree_node",
        BlockKind::ArrayBlock => "array_block",
        BlockKind::SmIndex => "sm_index",
        BlockKind::SmBitmap => "sm_bitmap",
        BlockKind::CloneSuperblock => "superblock",
    }
}

impl CloneVisitor for Lister<'_, '_> {
    fn block(&mut self, reached: &BlockReached) {
        let location = reached.location;
        let mut row = BlockRow::new(location, reached.parent);
        match reached.role {
            BlockRole::Superblock => {
                row.role = "superblock";
                if let Some((sm, bitset_root)) = &self.references {
                    row.references = sm.iter().copied().chain([*bitset_root]).collect();
                }
            }
            BlockRole::SpaceMapIndex => row.role = "sm_index",
            BlockRole::SpaceMapBitmap { bitmap } => {
                row.role = "sm_bitmap";
                row.index = Some(bitmap);
            }
            BlockRole::RefCountNode => {
                row.role = "ref_count_node";
                let is_root =
                    (self.references.as_ref()).is_some_and(|(sm, _)| sm.get(1) == Some(&location));
                row.referenced_from = reached.parent.or(is_root.then_some(0));
            }
            BlockRole::ArrayBtreeNode { keys, depth } => {
                row.role = "array_btree_node";
                let parent = self.nodes.node(depth, keys, location);
                row.referenced_from = reached.parent.or(parent);
                row.keys = Some(Span {
                    start: keys.start,
                    end: keys.end,
                });
                row.depth = Some(depth);
            }
            BlockRole::ArrayBlock { index } => {
                row.role = "array_block";
                row.referenced_from = reached.parent.or(self.nodes.leaf(index));
                row.index = Some(index);
                let bits = WORDS_PER_ARRAY_BLOCK * BITS_PER_WORD;
                row.regions = Some(Span {
                    start: index * bits,
                    end: Some(((index + 1) * bits).min(self.nr_regions)),
                });
            }
        }
        self.emit(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clone::{golden_metadata, memory_device};
    use crate::pdata::block::BLOCK_BYTES;

    fn rows(device: &dyn BlockDev) -> (Vec<BlockRow>, BlocksTail) {
        let mut rows = Vec::new();
        let tail = list_blocks(device, &mut |row| {
            rows.push(row.clone());
            Ok(())
        })
        .unwrap();
        (rows, tail)
    }

    #[test]
    fn the_kernels_metadata_lists_every_allocated_block_once_and_ok() {
        let (rows, tail) = rows(&memory_device(&golden_metadata()));
        let mut blocks: Vec<u64> = rows.iter().map(|r| r.block).collect();
        blocks.sort_unstable();
        blocks.dedup();
        assert_eq!(blocks.len() as u64, tail.blocks_listed);
        assert_eq!(blocks.len(), 6, "{rows:?}");
        assert!(rows
            .iter()
            .all(|r| r.checksum == Verdict::Ok && r.problems.is_empty()));
        assert_eq!((tail.bad_blocks, tail.problems.len()), (0, 0));
        let superblock = &rows[0];
        assert_eq!((superblock.block, superblock.role), (0, "superblock"));
        assert!(superblock.references.contains(&12), "{superblock:?}");
        let root = rows.iter().find(|r| r.block == 12).unwrap();
        assert_eq!(
            (root.role, root.referenced_from),
            ("array_btree_node", Some(0))
        );
        let array = rows.iter().find(|r| r.role == "array_block").unwrap();
        assert_eq!((array.referenced_from, array.index), (Some(12), Some(0)));
    }

    #[test]
    fn a_block_failing_its_checksum_is_listed_bad_with_its_code() {
        let mut bytes = golden_metadata();
        let array = rows(&memory_device(&bytes))
            .0
            .into_iter()
            .find(|r| r.role == "array_block")
            .unwrap()
            .block as usize;
        bytes[array * BLOCK_BYTES + 100] ^= 0xff;
        let (rows, tail) = rows(&memory_device(&bytes));
        let bad: Vec<&BlockRow> = rows.iter().filter(|r| r.block == array as u64).collect();
        assert_eq!(bad.len(), 1, "{rows:?}");
        assert_eq!(bad[0].checksum, Verdict::Bad);
        assert!(
            bad[0].problems[0].starts_with("block-checksum: "),
            "{:?}",
            bad[0].problems
        );
        assert_eq!(tail.bad_blocks, 1);
    }
}
