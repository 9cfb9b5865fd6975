//! Checking the committed space map against reachability: the caller walks
//! its own trees and counts every reference (its superblock included); the
//! space map adds its own blocks and reports every block whose count differs.

use std::ops::Range;

use super::finding::SmFinding;
use super::load::CommittedSpaceMap;

/// Every finding of `loaded`: those made while reading it, then each run of
/// consecutive blocks whose count differs from `reachable` (the references
/// the caller found, one entry per block of the space map), the space map's
/// own blocks added. Blocks whose counts could not be read are not judged.
pub fn check(loaded: &CommittedSpaceMap, mut reachable: Vec<u32>) -> Vec<SmFinding> {
    let nr_blocks = loaded.counts.len();
    reachable.resize(nr_blocks, 0);
    for &block in &loaded.own_blocks {
        if let Some(count) = reachable.get_mut(block as usize) {
            *count += 1;
        }
    }
    let mut unknown = loaded.unknown.clone();
    unknown.sort_by_key(|range| range.start);
    let mut unknown = unknown.into_iter().peekable();
    let mut findings = loaded.findings.clone();
    let mut run: Option<Mismatch> = None;
    for block in 0..nr_blocks as u64 {
        while unknown.next_if(|range| range.end <= block).is_some() {}
        let known = unknown.peek().is_none_or(|range| range.start > block);
        let (counted, found) = (loaded.counts[block as usize], reachable[block as usize]);
        let here = (known && counted != found).then_some((counted, found));
        match (&mut run, here) {
            (Some(m), Some(pair)) if m.pair == pair && m.blocks.end == block => m.blocks.end += 1,
            (_, here) => {
                findings.extend(run.take().map(Mismatch::finding));
                run = here.map(|pair| Mismatch {
                    blocks: block..block + 1,
                    pair,
                });
            }
        }
    }
    findings.extend(run.map(Mismatch::finding));
    findings
}

struct Mismatch {
    blocks: Range<u64>,
    pair: (u32, u32),
}

impl Mismatch {
    fn finding(self) -> SmFinding {
        let (counted, reachable) = self.pair;
        let blocks = self.blocks;
        if reachable == 0 {
            SmFinding::Leaked { blocks, counted }
        } else if reachable > counted {
            SmFinding::UnderCounted {
                blocks,
                counted,
                reachable,
            }
        } else {
            SmFinding::OverCounted {
                blocks,
                counted,
                reachable,
            }
        }
    }
}
