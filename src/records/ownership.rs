//! Which owner put what at each name: the builder's bookkeeping for incremental updates.
//!
//! At 100k pods it covers a few hundred thousand names, so it is kept small: owners are
//! numbered, and a name that one owner puts records at (almost every name) costs one 8-byte
//! table entry of the owner and the name's hash; the name itself is found in the owner's own
//! list. Names several owners put records at (the PTR name of an address two Services share)
//! are listed apart.

use std::hash::BuildHasher;

use foldhash::HashMap;
use hashbrown::HashTable;

use super::Owner;
use crate::snapshot::NameKey;

/// An owner as the bookkeeping stores it: its slot in [`Ownership`].
pub(super) type OwnerId = u32;

/// The names of every owner, and the owners of every name. `S` hashes the names (a parameter
/// so that a test can make every name collide).
#[derive(Debug, Default)]
pub(super) struct Ownership<S = foldhash::fast::RandomState> {
    /// The slot of each owner that has names, found by the owner's hash and told apart by the
    /// slot's owner: 4 bytes an entry, where a map from `Owner` kept a second copy of each
    /// (3 MiB at 100k Pods).
    ids: HashTable<OwnerId>,
    /// By id: the owner and its names; `None` once the owner has none (the id is free).
    slots: Vec<Option<Slot>>,
    /// Free ids, reused before the slots grow.
    free: Vec<OwnerId>,
    /// The owner of each name exactly one owner puts records at, by the name's hash: an entry
    /// is the owner's if the name is among its `records`. A table keyed by the name held a
    /// 16-byte entry per name (8.5 MiB at 100k Pods, for 512k buckets).
    sole: HashTable<SoleOwner>,
    hasher: S,
    /// The owners of each name several owners put records at, sorted by [`Owner`] so their
    /// records merge in the same order however they came: incremental and from-scratch builds
    /// agree.
    shared: HashMap<NameKey, Vec<OwnerId>>,
    /// How many owners make each name exist without records (an empty non-terminal). Counted,
    /// not listed: the parents of reverse names (`10.in-addr.arpa.`) are shared by every
    /// Service, and listing them would make each publish cost as much as the cluster.
    existence: HashMap<NameKey, usize>,
}

/// The hash of the owner in slot `id` (a live one), for [`Ownership::ids`].
fn owner_hash<S: BuildHasher>(hasher: &S, slots: &[Option<Slot>], id: OwnerId) -> u64 {
    let slot = slots[id as usize].as_ref().expect("a live owner id");
    hasher.hash_one(&slot.owner)
}

/// Whether `name` is among the names the owner in slot `id` (a live one) has records at: what
/// tells apart the entries of [`Ownership::sole`] whose 32 bits are the same.
fn has_records_at(slots: &[Option<Slot>], id: OwnerId, name: &NameKey) -> bool {
    let slot = slots[id as usize].as_ref().expect("a live owner id");
    slot.records.binary_search(name).is_ok()
}

/// The entry of a name in [`Ownership::sole`]: its owner, and 32 bits of the name's hash, which
/// both place the entry and tell names apart before the owner's list is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SoleOwner {
    id: OwnerId,
    hash: u32,
}

impl SoleOwner {
    /// Where the entry sits in the table: its 32 bits spread over 64, so that the table's
    /// bucket (low bits) and tag (top seven) both depend on all of them.
    fn table_hash(&self) -> u64 {
        u64::from(self.hash).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
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

impl<S: BuildHasher> Ownership<S> {
    /// Room for `names` names with records and `owners` owners, so a first build does not
    /// grow the maps step by step (each step holds the old table and the new one at once), and
    /// the owners' slots are not left up to half empty by the doubling of a growing list
    /// (2.3 MiB at 100k Pods).
    pub(super) fn reserve(&mut self, names: usize, owners: usize) {
        self.sole.reserve(names, SoleOwner::table_hash);
        let (hasher, slots) = (&self.hasher, &self.slots);
        self.ids
            .reserve(owners, |id| owner_hash(hasher, slots, *id));
        self.slots.reserve_exact(owners);
    }

    /// Every owner that has names.
    pub(super) fn owners(&self) -> impl Iterator<Item = &Owner> {
        self.slots.iter().flatten().map(|slot| &slot.owner)
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
        let slots = &self.slots;
        self.ids
            .find(self.hasher.hash_one(owner), |id| {
                slots[*id as usize]
                    .as_ref()
                    .is_some_and(|slot| slot.owner == *owner)
            })
            .copied()
    }

    /// The 32 bits of `name`'s hash that [`SoleOwner`] keeps.
    fn name_hash(&self, name: &[u8]) -> u32 {
        // The top half: foldhash mixes its last multiplication into the high bits.
        (self.hasher.hash_one(name) >> 32) as u32
    }

    /// The owner that alone puts records at `name`, if there is one; `name` must not be shared
    /// (see [`Self::of`]).
    fn sole_owner(&self, name: &NameKey) -> Option<OwnerId> {
        let hash = self.name_hash(name);
        let probe = SoleOwner { id: 0, hash };
        self.sole
            .find(probe.table_hash(), |e| {
                e.hash == hash && has_records_at(&self.slots, e.id, name)
            })
            .map(|e| e.id)
    }

    /// The owners that put records at `name`, in [`Owner`] order.
    pub(super) fn of(&self, name: &NameKey) -> smallvec::SmallVec<[OwnerId; 2]> {
        // `shared` first: an owner of a shared name may also be the sole owner of another name
        // with the same 32 bits, whose entry would pass for this name's.
        match self.shared.get(name) {
            Some(ids) => ids.iter().copied().collect(),
            None => self.sole_owner(name).into_iter().collect(),
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
        let id = match self.id(owner) {
            Some(id) => id,
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
                let (hasher, slots) = (&self.hasher, &self.slots);
                self.ids.insert_unique(hasher.hash_one(owner), id, |id| {
                    owner_hash(hasher, slots, *id)
                });
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
            if let Ok(entry) = self
                .ids
                .find_entry(self.hasher.hash_one(owner), |other| *other == id)
            {
                entry.remove();
            }
            self.slots[id as usize] = None;
            self.free.push(id);
        }
        (old_records, old_empty)
    }

    /// Adds `id` to the owners of `name`. Called while `id`'s slot has no `records` (`replace`
    /// sets them after), so `id`'s own entries are not looked for: its old names are gone.
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
        let mine = SoleOwner {
            id,
            hash: self.name_hash(name),
        };
        let other = self.sole.find_entry(mine.table_hash(), |e| {
            e.hash == mine.hash && e.id != id && has_records_at(slots, e.id, name)
        });
        match other {
            Err(_) => {
                self.sole
                    .insert_unique(mine.table_hash(), mine, SoleOwner::table_hash);
            }
            Ok(entry) => {
                let (other, _) = entry.remove();
                let mut list = vec![other.id, id];
                list.sort_by(by_owner);
                self.shared.insert(name.clone(), list);
            }
        }
    }

    /// Removes `id` from the owners of `name`. Called while `id`'s slot has no `records`
    /// (`replace` took them), so its entry is found by owner and hash alone: two of its names
    /// with the same 32 bits have equal entries, and both go.
    fn remove_owner(&mut self, name: &NameKey, id: OwnerId) {
        let hash = self.name_hash(name);
        if let Some(list) = self.shared.get_mut(name) {
            list.retain(|o| *o != id);
            if let [only] = list[..] {
                self.shared.remove(name);
                let entry = SoleOwner { id: only, hash };
                self.sole
                    .insert_unique(entry.table_hash(), entry, SoleOwner::table_hash);
            }
            return;
        }
        let mine = SoleOwner { id, hash };
        if let Ok(entry) = self.sole.find_entry(mine.table_hash(), |e| *e == mine) {
            entry.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::hash::Hasher;

    use super::*;
    use crate::model::Namespace;

    /// Hashes every name alike, so every entry of `sole` has the same 32 bits and only the
    /// owners' lists tell names apart.
    #[derive(Debug, Default)]
    struct Colliding;

    struct SameHash;

    impl Hasher for SameHash {
        fn finish(&self) -> u64 {
            0x5151_5151_0000_0000
        }

        fn write(&mut self, _: &[u8]) {}
    }

    impl BuildHasher for Colliding {
        type Hasher = SameHash;

        fn build_hasher(&self) -> SameHash {
            SameHash
        }
    }

    /// A small deterministic generator (xorshift), so a failure replays.
    struct Steps(u64);

    impl Steps {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// Random replacements of a few owners' names, checked after each against a plain map of
    /// who has what: the owners of every name (in `Owner` order), whether it exists, and the
    /// names `replace` hands back.
    fn replays_like_a_plain_map<S: BuildHasher + Default>() {
        let owners: Vec<Owner> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|ns| Owner::Namespace(Namespace::new(ns).expect("valid")))
            .chain([Owner::Zones])
            .collect();
        let names: Vec<NameKey> = (0..16u8)
            .map(|i| NameKey::from(&[1, b'a' + i, 0][..]))
            .collect();
        let mut ownership = Ownership::<S>::default();
        let mut expected: BTreeMap<Owner, (BTreeSet<NameKey>, BTreeSet<NameKey>)> = BTreeMap::new();
        let mut steps = Steps(0x2545_f491_4f6c_dd1d);
        for step in 0..2_000 {
            let owner = &owners[steps.below(owners.len() as u64) as usize];
            let mut pick = |most: u64| -> BTreeSet<NameKey> {
                (0..steps.below(most))
                    .map(|_| names[steps.below(names.len() as u64) as usize].clone())
                    .collect()
            };
            let records = pick(6);
            let empty: BTreeSet<NameKey> = pick(3).difference(&records).cloned().collect();
            let (old_records, old_empty) = ownership.replace(
                owner,
                records.iter().cloned().collect(),
                empty.iter().cloned().collect(),
            );
            let (was_records, was_empty) = if records.is_empty() && empty.is_empty() {
                expected.remove(owner).unwrap_or_default()
            } else {
                expected
                    .insert(owner.clone(), (records, empty))
                    .unwrap_or_default()
            };
            assert_eq!(
                old_records.to_vec(),
                Vec::from_iter(was_records),
                "step {step}"
            );
            assert_eq!(old_empty.to_vec(), Vec::from_iter(was_empty), "step {step}");
            for name in &names {
                let want: Vec<&Owner> = expected
                    .iter()
                    .filter(|(_, (records, _))| records.contains(name))
                    .map(|(owner, _)| owner)
                    .collect();
                let got: Vec<&Owner> = ownership
                    .of(name)
                    .iter()
                    .map(|id| ownership.owner(*id))
                    .collect();
                assert_eq!(got, want, "owners of {name:?} at step {step}");
                let empty_somewhere = expected.values().any(|(_, empty)| empty.contains(name));
                assert_eq!(ownership.exists(name), empty_somewhere, "step {step}");
            }
        }
        // Everything dropped leaves nothing behind.
        for owner in &owners {
            ownership.replace(owner, Box::default(), Box::default());
        }
        assert_eq!(ownership.sole.len(), 0);
        assert!(ownership.shared.is_empty() && ownership.existence.is_empty());
        assert_eq!(ownership.owners().count(), 0);
    }

    #[test]
    fn owners_of_each_name_follow_every_replacement() {
        replays_like_a_plain_map::<foldhash::fast::RandomState>();
    }

    #[test]
    fn names_whose_hashes_collide_keep_their_own_owners() {
        replays_like_a_plain_map::<Colliding>();
    }
}
