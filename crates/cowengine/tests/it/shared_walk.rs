//! The read-ahead walk (`Tree::walk_ahead`, the checker's) shows its visitor
//! exactly what the inline walk shows, in the same order, on intact and on
//! damaged trees; a visitor's error stops both threads and is the one
//! returned.

use crate::shared_support;

use cowfmt::shared::dump::SharedSource;
use cowfmt::shared::walk::{BlockAt, Tree, TreeVisitor, WalkProblem};
use cowfmt::shared::{Leaf, Node};
use cowfmt::{Access, Device, Error};
use shared_support::Fixture;

/// A committed store of 512-byte chunks with a tree of two node levels.
fn store() -> Fixture {
    let fx = Fixture::new(1, 1200, 5000, 2);
    let mut store = fx.create();
    for id in 0..3u32 {
        store.create_snapshot(None).unwrap();
        for c in (u64::from(id)..1200).step_by(3) {
            store.origin_write(c * 512, &[id as u8 + 1; 512]).unwrap();
        }
    }
    store.commit().unwrap();
    assert!(store.tree_level() >= 2);
    fx
}

/// Everything a walk shows, as text, in order, and the chunks of the leaves.
#[derive(Default)]
struct Events {
    seen: Vec<String>,
    leaves: Vec<u64>,
    stop_after: Option<usize>,
}

impl Events {
    fn push(&mut self, event: String) -> cowfmt::Result<()> {
        self.seen.push(event);
        match self.stop_after {
            Some(n) if self.seen.len() >= n => Err(Error::Invalid("visitor stops".into())),
            _ => Ok(()),
        }
    }
}

impl TreeVisitor for Events {
    fn node(&mut self, at: &BlockAt, node: &Node) -> cowfmt::Result<()> {
        self.push(format!("node {at:?} {node:?}"))
    }

    fn leaf(&mut self, at: &BlockAt, leaf: &Leaf) -> cowfmt::Result<()> {
        self.leaves.push(at.chunk);
        self.push(format!("leaf {at:?} {leaf:?}"))
    }

    fn problem(&mut self, at: &BlockAt, problem: &WalkProblem) -> cowfmt::Result<()> {
        self.push(format!("problem {at:?} {problem:?}"))
    }
}

/// Which walk of the tree to run.
#[derive(Clone, Copy)]
enum Walk {
    Inline,
    Ahead,
}

fn run(fx: &Fixture, walk: Walk, stop_after: Option<usize>) -> (Events, cowfmt::Result<u64>) {
    let device = Device::open(fx.cow_path(), Access::ReadOnly).unwrap();
    let source = SharedSource::open(device).unwrap();
    let tree = Tree::of(source.device(), source.geometry(), source.header());
    let mut events = Events {
        stop_after,
        ..Events::default()
    };
    let visited = match walk {
        Walk::Inline => tree.walk(&mut events),
        Walk::Ahead => tree.walk_ahead(&mut events),
    };
    (events, visited.map(|visited| visited.count_ones()))
}

fn poke(fx: &Fixture, offset: u64, bytes: &[u8]) {
    let device = Device::open(fx.cow_path(), Access::ReadWrite).unwrap();
    device.write_at(bytes, offset).unwrap();
}

fn assert_same_walks(fx: &Fixture) {
    let (inline, inline_result) = run(fx, Walk::Inline, None);
    let (ahead, ahead_result) = run(fx, Walk::Ahead, None);
    assert!(inline.seen.len() > 10);
    assert_eq!(inline.seen, ahead.seen);
    assert_eq!(inline_result.unwrap(), ahead_result.unwrap());
}

#[test]
fn an_intact_tree_reads_the_same_ahead() {
    assert_same_walks(&store());
}

#[test]
fn a_damaged_tree_reads_the_same_ahead() {
    let fx = store();
    let leaves = run(&fx, Walk::Inline, None).0.leaves;
    // A zeroed leaf, a leaf with an impossible count, and a leaf whose magic
    // is gone: three problem events among the leaves.
    poke(&fx, leaves[1] * fx.chunk_bytes, &[0u8; 512]);
    poke(&fx, leaves[3] * fx.chunk_bytes + 4, &u32::MAX.to_le_bytes());
    poke(&fx, leaves[5] * fx.chunk_bytes, &[0xff; 2]);
    let (events, _) = run(&fx, Walk::Inline, None);
    let problems = events.seen.iter().filter(|e| e.starts_with("problem"));
    assert_eq!(problems.count(), 3);
    assert_same_walks(&fx);
}

#[test]
fn a_visitor_error_stops_the_walk_ahead() {
    let fx = store();
    let all = run(&fx, Walk::Inline, None).0.seen;
    for stop in [1, 2, 7, all.len() / 2, all.len()] {
        let (events, result) = run(&fx, Walk::Ahead, Some(stop));
        let seen = events.seen;
        assert_eq!(seen.len(), stop);
        assert_eq!(seen[..], all[..stop]);
        let error = result.unwrap_err().to_string();
        assert!(error.contains("visitor stops"), "{error}");
    }
}
