//! The model: what the origin and every snapshot read, one tag per sector
//! ([`super::pattern`]), kept in memory beside the engine; the states each
//! commit may have made durable; and the writes a crash may keep or lose.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::pattern;

/// What the snapshots read at one moment: each live snapshot's view, a tag per
/// sector, by id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct State {
    /// Each live snapshot's view.
    pub snapshots: BTreeMap<u32, Vec<u64>>,
}

/// A state the store may hold after a crash, and the log position at which
/// the model took it (writes issued from there on may or may not show).
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The views.
    pub state: Arc<State>,
    /// Events in the log when the model took the state.
    pub as_of: usize,
    /// A snapshot whose view is not checked: one being deleted, which a
    /// crash may leave listed with part of its records gone (a split delete
    /// is finished by deleting it again; docs/crash-replay.md).
    pub unchecked: Option<u32>,
}

/// A stretch of the log during which a commit ran: an explicit commit, or an
/// operation that committed inside (an origin write after its copy-outs, a
/// delete split into several transactions). A crash inside it may leave any of
/// `states`; a crash at or after `done` leaves the last.
#[derive(Debug, Clone)]
pub struct CommitSpan {
    /// Events in the log when the operation began.
    pub began: usize,
    /// Events in the log when it returned.
    pub done: usize,
    /// The operation that committed, for messages.
    pub what: String,
    /// The states a crash inside it may leave: before the operation, after it.
    pub states: Vec<Candidate>,
    /// The states a crash after it may leave: the state after it, or, for an
    /// operation that is not durable when it returns (a snapshot write whose
    /// commit made earlier changes durable before its own), either.
    pub after: Vec<Candidate>,
}

/// A snapshot write whose data may land without its commit (in place in a
/// chunk the snapshot already owns).
#[derive(Debug, Clone, Copy)]
pub struct LooseWrite {
    /// Events in the log when the write began.
    pub began: usize,
    /// The snapshot written.
    pub snapshot: u32,
    /// First sector and sectors.
    pub first: u64,
    /// Sectors written.
    pub sectors: u64,
    /// The write's number (its tags are `pattern::tag(write, sector)`).
    pub write: u64,
}

/// The model of the origin and the snapshots over one run.
#[derive(Debug, Clone)]
pub struct Model {
    /// What the origin reads now.
    pub origin: Vec<u64>,
    /// What the snapshots read now.
    pub now: State,
    /// Every origin write of each sector: (log index of the write, tag), in order.
    pub origin_history: Vec<Vec<(usize, u64)>>,
    /// Every commit stretch, in log order; the first is the starting state.
    pub commits: Vec<CommitSpan>,
    /// Every snapshot write, in log order.
    pub loose: Vec<LooseWrite>,
    /// The number the next write gets.
    pub next_write: u64,
    /// What the origin read when the history began.
    pub settled_origin: Vec<u64>,
    /// Live snapshots in the order they were created.
    pub created: Vec<u32>,
    /// The snapshots the history began with (a deep scenario's prefill).
    pub prefilled: Vec<u32>,
}

impl Model {
    /// An origin of `sectors` sectors holding their initial tags, no snapshots.
    pub fn new(sectors: u64) -> Self {
        Model {
            origin: (0..sectors).map(|s| pattern::tag(0, s)).collect(),
            now: State::default(),
            origin_history: vec![Vec::new(); sectors as usize],
            commits: Vec::new(),
            loose: Vec::new(),
            next_write: 1,
            settled_origin: (0..sectors).map(|s| pattern::tag(0, s)).collect(),
            created: Vec::new(),
            prefilled: Vec::new(),
        }
    }

    /// Forgets the history: everything is durable from log position 0, as a
    /// store reopened on new devices.
    pub fn settle(&mut self) {
        self.origin_history.iter_mut().for_each(Vec::clear);
        self.loose.clear();
        self.settled_origin = self.origin.clone();
        self.prefilled = self.now.snapshots.keys().copied().collect();
        self.commits = vec![CommitSpan {
            began: 0,
            done: 0,
            what: "the starting state".to_string(),
            states: vec![self.candidate(0)],
            after: vec![self.candidate(0)],
        }];
    }

    /// The current state as a candidate taken at log position `as_of`.
    pub fn candidate(&self, as_of: usize) -> Candidate {
        Candidate {
            state: Arc::new(self.now.clone()),
            as_of,
            unchecked: None,
        }
    }

    /// Takes a write number.
    pub fn take_write(&mut self) -> u64 {
        self.next_write += 1;
        self.next_write - 1
    }

    /// Snapshot `id` created, seeing the origin.
    pub fn create(&mut self, id: u32) {
        self.now.snapshots.insert(id, self.origin.clone());
        self.created.push(id);
    }

    /// Snapshot `id` created, seeing what `parent` sees.
    pub fn create_of(&mut self, parent: u32, id: u32) {
        let view = self.now.snapshots[&parent].clone();
        self.now.snapshots.insert(id, view);
        self.created.push(id);
    }

    /// Snapshot `id` deleted.
    pub fn delete(&mut self, id: u32) {
        self.now.snapshots.remove(&id);
        self.created.retain(|&c| c != id);
    }

    /// The origin written by write `write` over `sectors` sectors from
    /// `first`, the data landing at log index `index`.
    pub fn origin_write(&mut self, first: u64, sectors: u64, write: u64, index: usize) {
        for s in first..first + sectors {
            let tag = pattern::tag(write, s);
            self.origin[s as usize] = tag;
            self.origin_history[s as usize].push((index, tag));
        }
    }

    /// Snapshot `id` written by write `write`, begun at log position `began`.
    pub fn snapshot_write(&mut self, id: u32, first: u64, sectors: u64, write: u64, began: usize) {
        let view = self.now.snapshots.get_mut(&id).expect("a live snapshot");
        for s in first..first + sectors {
            view[s as usize] = pattern::tag(write, s);
        }
        self.loose.push(LooseWrite {
            began,
            snapshot: id,
            first,
            sectors,
            write,
        });
    }

    /// The states a crash after the first `at` events may leave: those of the
    /// last commit that returned by then, and every state of a commit still
    /// running at `at`. The last completed one comes first.
    pub fn candidates(&self, at: usize) -> Vec<Candidate> {
        let done = self.commits.partition_point(|c| c.done <= at);
        let mut out = self.commits[done - 1].after.clone();
        for span in &self.commits[done..] {
            if span.began < at {
                out.extend(span.states.iter().cloned());
            }
        }
        out
    }

    /// The commit stretch running at `at`, if any, for messages.
    pub fn in_flight(&self, at: usize) -> Option<&CommitSpan> {
        self.commits.iter().find(|c| c.began < at && at < c.done)
    }

    /// Whether `tag` in sector `sector` of snapshot `id` may come from a
    /// snapshot write issued between `from` and `at`.
    pub fn loose_tag(&self, id: u32, sector: u64, tag: u64, from: usize, at: usize) -> bool {
        self.loose.iter().any(|w| {
            w.snapshot == id
                && (from..at).contains(&w.began)
                && (w.first..w.first + w.sectors).contains(&sector)
                && pattern::tag(w.write, sector) == tag
        })
    }

    /// Whether origin sector `sector` may read `tag` after a crash after the
    /// first `at` events, the origin's last sync before them being event
    /// `synced` (0 when none): its value at that sync, or any written since.
    pub fn origin_allows(&self, sector: u64, tag: u64, synced: usize, at: usize) -> bool {
        let history = &self.origin_history[sector as usize];
        let durable = history.partition_point(|&(i, _)| i < synced);
        let base = match durable {
            0 => self.settled_origin[sector as usize],
            n => history[n - 1].1,
        };
        base == tag
            || history[durable..]
                .iter()
                .take_while(|&&(i, _)| i < at)
                .any(|&(_, t)| t == tag)
    }

    /// Whether origin sector `sector` ever held `tag` in this run.
    pub fn origin_held(&self, sector: u64, tag: u64) -> bool {
        self.settled_origin[sector as usize] == tag
            || self.origin_history[sector as usize]
                .iter()
                .any(|&(_, t)| t == tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An explicit commit of the current state over events `began..done`.
    fn commit(model: &mut Model, began: usize, done: usize) {
        let before = model.candidate(began);
        model.commits.push(CommitSpan {
            began,
            done,
            what: "commit".into(),
            states: vec![before.clone()],
            after: vec![before],
        });
    }

    /// Snapshot 0 created and committed over events 0..4, then written
    /// (write 1) and committed over 10..14; the origin written at event 6
    /// (write 2) and synced at 8.
    fn model() -> Model {
        let mut model = Model::new(4);
        model.settle();
        model.create(0);
        commit(&mut model, 0, 4);
        model.origin_write(1, 1, 2, 6);
        model.snapshot_write(0, 2, 1, 1, 9);
        commit(&mut model, 10, 14);
        model
    }

    #[test]
    fn a_crash_leaves_the_last_commit_or_the_one_in_flight() {
        let model = model();
        let sets = |at| -> Vec<usize> {
            model
                .candidates(at)
                .iter()
                .map(|c| c.state.snapshots.len())
                .collect()
        };
        assert_eq!(sets(0), [0], "before the first commit began");
        assert_eq!(sets(2), [0, 1], "during the first commit");
        assert_eq!(sets(4), [1]);
        assert_eq!(
            model.candidates(12)[1].state.snapshots[&0][2],
            pattern::tag(1, 2)
        );
        assert_eq!(
            model.candidates(12)[0].state.snapshots[&0][2],
            pattern::tag(0, 2)
        );
        assert!(model.loose_tag(0, 2, pattern::tag(1, 2), 4, 10));
        assert!(
            !model.loose_tag(0, 2, pattern::tag(1, 2), 4, 9),
            "not issued yet"
        );
        assert!(model.in_flight(12).is_some() && model.in_flight(14).is_none());
    }

    #[test]
    fn an_origin_sector_holds_its_durable_value_or_a_later_write() {
        let model = model();
        let (old, new) = (pattern::tag(0, 1), pattern::tag(2, 1));
        assert!(model.origin_allows(1, old, 0, 7) && model.origin_allows(1, new, 0, 7));
        assert!(!model.origin_allows(1, new, 0, 6), "written at event 6");
        assert!(!model.origin_allows(1, old, 8, 9), "synced at 8");
        assert!(model.origin_allows(1, new, 8, 9));
        assert!(model.origin_held(1, old) && !model.origin_held(2, new));
    }
}
