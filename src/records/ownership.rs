//! Which owner put what at each name: the builder's bookkeeping for incremental updates.
//!
//! At 100k pods it covers a few hundred thousand names, so it is kept small: owners are
//! numbered, and a name that one owner puts records at (almost every name) costs one map
//! entry of a key and a number. Names several owners put records at (the PTR name of an
//! address two Services share) are listed apart.

use foldhash::HashMap;
use std::collections::hash_map::Entry;

use super::Owner;
use crate::snapshot::NameKey;

/// An owner as the bookkeeping stores it: its slot in [`Ownership`].
pub(super) type OwnerId = u32;

/// The names of every owner, and the owners of every name.
#[derive(Debug, Default)]
pub(super) struct Ownership {
    /// The slot of each owner that has names.
    ids: HashMap<Owner, OwnerId>,
    /// By id: the owner and its names; `None` once the owner has none (the id is free).
    slots: Vec<Option<Slot>>,
    /// Free ids, reused before the slots grow.
    free: Vec<OwnerId>,
    /// The owner of each name exactly one owner puts records at.
    sole: HashMap<NameKey, OwnerId>,
    /// The owners of each name several owners put records at, sorted by [`Owner`] so their
    /// records merge in the same order however they came: incremental and from-scratch builds
    /// agree.
    shared: HashMap<NameKey, Vec<OwnerId>>,
    /// How many owners make each name exist without records (an empty non-terminal). Counted,
    /// not listed: the parents of reverse names (`10.in-addr.arpa.`) are shared by every
    /// Service, and listing them would make each publish cost as much as the cluster.
    existence: HashMap<NameKey, usize>,
}

/// One owner's names at its last update, each list sorted.
#[derive(Debug)]
struct Slot {
    owner: Owner,
    /// Where it put records.
    records: Box<[NameKey]>,
    /// What it made exist without records.
    empty: Box<[NameKey]>,
}

impl Ownership {
    /// Room for `names` names with records and `owners` owners, so a first build does not
    /// grow the maps step by step (each step holds the old table and the new one at once), and
    /// the owners' slots are not left up to half empty by the doubling of a growing list
    /// (2.3 MiB at 100k Pods).
    pub(super) fn reserve(&mut self, names: usize, owners: usize) {
        self.sole.reserve(names);
        self.ids.reserve(owners);
        self.slots.reserve_exact(owners);
    }

    /// Every owner that has names.
    pub(super) fn owners(&self) -> impl Iterator<Item = &Owner> {
        self.ids.keys()
    }

    /// The owner of `id`.
    pub(super) fn owner(&self, id: OwnerId) -> &Owner {
        &self.slot(id).owner
    }

    fn slot(&self, id: OwnerId) -> &Slot {
        // Ids in `sole`, `shared` and `ids` are of live slots: `replace` frees an id only
        // after taking it out of all three.
        self.slots[id as usize].as_ref().expect("a live owner id")
    }

    /// The id of `owner`, if it has names.
    pub(super) fn id(&self, owner: &Owner) -> Option<OwnerId> {
        self.ids.get(owner).copied()
    }

    /// The owners that put records at `name`, in [`Owner`] order.
    pub(super) fn of(&self, name: &NameKey) -> smallvec::SmallVec<[OwnerId; 2]> {
        match self.sole.get(name) {
            Some(id) => smallvec::smallvec![*id],
            None => self
                .shared
                .get(name)
                .map(|ids| ids.iter().copied().collect())
                .unwrap_or_default(),
        }
    }

    /// Whether some owner makes `name` exist without records.
    pub(super) fn exists(&self, name: &NameKey) -> bool {
        self.existence.contains_key(name)
    }

    /// Records that `owner` now has records at `records` and makes `empty` exist (both
    /// sorted), and returns what it had before, in the same form.
    pub(super) fn replace(
        &mut self,
        owner: &Owner,
        records: Box<[NameKey]>,
        empty: Box<[NameKey]>,
    ) -> (Box<[NameKey]>, Box<[NameKey]>) {
        let has_names = !records.is_empty() || !empty.is_empty();
        let id = match self.ids.get(owner) {
            Some(id) => *id,
            None if !has_names => return Default::default(),
            None => {
                let slot = Some(Slot {
                    owner: owner.clone(),
                    records: Box::default(),
                    empty: Box::default(),
                });
                let id = match self.free.pop() {
                    Some(id) => {
                        self.slots[id as usize] = slot;
                        id
                    }
                    None => {
                        self.slots.push(slot);
                        // More than 4 billion owners do not fit in memory anyway.
                        OwnerId::try_from(self.slots.len() - 1).expect("fewer than 2^32 owners")
                    }
                };
                self.ids.insert(owner.clone(), id);
                id
            }
        };
        let slot = self.slots[id as usize].as_mut().expect("a live owner id");
        let old_records = std::mem::take(&mut slot.records);
        let old_empty = std::mem::take(&mut slot.empty);
        for name in &old_records {
            self.remove_owner(name, id);
        }
        for name in &old_empty {
            if let Some(count) = self.existence.get_mut(name) {
                *count -= 1;
                if *count == 0 {
                    self.existence.remove(name);
                }
            }
        }
        for name in &records {
            self.add_owner(name, id);
        }
        for name in &empty {
            *self.existence.entry(name.clone()).or_default() += 1;
        }
        if has_names {
            let slot = self.slots[id as usize].as_mut().expect("a live owner id");
            slot.records = records;
            slot.empty = empty;
        } else {
            self.ids.remove(owner);
            self.slots[id as usize] = None;
            self.free.push(id);
        }
        (old_records, old_empty)
    }

    fn add_owner(&mut self, name: &NameKey, id: OwnerId) {
        let slots = &self.slots;
        let by_owner = |a: &OwnerId, b: &OwnerId| {
            let owner = |id: &OwnerId| &slots[*id as usize].as_ref().expect("a live id").owner;
            owner(a).cmp(owner(b))
        };
        if let Some(list) = self.shared.get_mut(name) {
            if let Err(at) = list.binary_search_by(|o| by_owner(o, &id)) {
                list.insert(at, id);
            }
            return;
        }
        match self.sole.entry(name.clone()) {
            Entry::Vacant(entry) => {
                entry.insert(id);
            }
            Entry::Occupied(entry) if *entry.get() == id => {}
            Entry::Occupied(entry) => {
                let mut list = vec![entry.remove(), id];
                list.sort_by(by_owner);
                self.shared.insert(name.clone(), list);
            }
        }
    }

    fn remove_owner(&mut self, name: &NameKey, id: OwnerId) {
        if let Some(list) = self.shared.get_mut(name) {
            list.retain(|o| *o != id);
            if let [only] = list[..] {
                self.shared.remove(name);
                self.sole.insert(name.clone(), only);
            }
        } else if self.sole.get(name) == Some(&id) {
            self.sole.remove(name);
        }
    }
}
