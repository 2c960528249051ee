//! The name index of a snapshot: a hash map from [`NameKey`] to [`Node`], split into shards that
//! snapshots share copy-on-write.
//!
//! A query costs one hash and one probe of a small hash table; a publish copies only the shards
//! its changes touch, plus the pointers above them. The persistent HAMT this replaces walked
//! three or four levels of nodes per lookup, and each was a cache miss at 100k pods.
//!
//! Shards sit two levels below the index (groups, then shards), so that copying the path to a
//! changed shard stays a few hundred pointers at 300k names rather than one per shard. The
//! layout grows with the map: when the average shard would pass [`MAX_SHARD`] entries, the
//! whole map is split again (amortised like a hash table's growth; it happens while a large
//! state is first built, not per change). It never shrinks.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;

use super::{NameKey, Node};

/// Average shard size that triggers a split: a changed shard is copied whole at the next
/// publish, and each entry copied costs two reference counts (the key's and the node's) that
/// are cache misses in a large cluster. Between half and all of this after a split.
const MAX_SHARD: usize = 64;

/// One entry: two thin pointers.
#[derive(Clone)]
struct Entry {
    key: NameKey,
    node: Node,
}

impl Entry {
    fn is(&self, key: &[u8]) -> bool {
        *self.key == *key
    }
}

type Shard = HashTable<Entry>;
type Group = Arc<[Arc<Shard>]>;

/// Every name of a snapshot with its node. Cloning is a few reference counts; the clone and the
/// original then share every shard until one of them changes it. Hashed with foldhash: SipHash
/// was a tenth of a full build and of a lookup.
#[derive(Clone)]
pub struct Index {
    hasher: foldhash::fast::RandomState,
    /// log2 of the number of groups.
    group_bits: u32,
    /// log2 of the number of shards in each group.
    shard_bits: u32,
    groups: Arc<[Group]>,
    len: usize,
}

impl Default for Index {
    fn default() -> Self {
        Self::with_layout(foldhash::fast::RandomState::default(), 0, 0, 0)
    }
}

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Index")
            .field("len", &self.len)
            .field("shards", &self.shards())
            .finish_non_exhaustive()
    }
}

impl Index {
    /// An empty map with 2^`group_bits` groups of 2^`shard_bits` shards, each its own and with
    /// room for about `names` names between them.
    fn with_layout(
        hasher: foldhash::fast::RandomState,
        group_bits: u32,
        shard_bits: u32,
        names: usize,
    ) -> Self {
        let per_shard = names >> (group_bits + shard_bits);
        let group = || -> Group {
            (0..1usize << shard_bits)
                .map(|_| Arc::new(Shard::with_capacity(per_shard)))
                .collect()
        };
        Self {
            hasher,
            group_bits,
            shard_bits,
            groups: (0..1usize << group_bits).map(|_| group()).collect(),
            len: 0,
        }
    }

    /// How many shards the map is split into.
    pub fn shards(&self) -> usize {
        1 << (self.group_bits + self.shard_bits)
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Group and shard of `hash`: from bits the shard's own table does not use for its
    /// buckets (the low ones) or its tags (the top seven).
    fn slot(&self, hash: u64) -> (usize, usize) {
        let bits = hash >> 24;
        let group = bits & ((1 << self.group_bits) - 1);
        let shard = (bits >> self.group_bits) & ((1 << self.shard_bits) - 1);
        // Both are below 2^32: the layout is split at most 16 bits each way.
        (group as usize, shard as usize)
    }

    fn shard(&self, hash: u64) -> &Shard {
        let (group, shard) = self.slot(hash);
        &self.groups[group][shard]
    }

    /// The shard of `hash`, copied first if a clone shares it.
    fn shard_mut(&mut self, hash: u64) -> &mut Shard {
        let (group, shard) = self.slot(hash);
        let groups = Arc::make_mut(&mut self.groups);
        let shards = Arc::make_mut(&mut groups[group]);
        Arc::make_mut(&mut shards[shard])
    }

    /// The node of `key` (a wire-form name, as [`super::name_key`] makes it).
    pub fn get(&self, key: &[u8]) -> Option<&Node> {
        self.get_key_value(key).map(|(_, node)| node)
    }

    /// The stored key of `key` and its node: the stored key can be shared rather than kept twice.
    pub fn get_key_value(&self, key: &[u8]) -> Option<(&NameKey, &Node)> {
        let hash = self.hash(key);
        let entry = self.shard(hash).find(hash, |e| e.is(key))?;
        Some((&entry.key, &entry.node))
    }

    /// The nodes of many keys (`None` for a key absent, or not given), in order: [`Self::get`]
    /// of each, made in steps so that the cache misses of different keys overlap.
    ///
    /// In a large cluster a lookup is a chain of dependent cache misses: the shard's table,
    /// its control bytes, the entry, the key. One lookup after another waits out each chain
    /// whole; here every key takes one step of its chain before any takes the next, so the
    /// loads of a step do not wait on each other and the processor has them in flight together.
    pub fn get_batch<const N: usize>(
        &self,
        keys: &[Option<&[u8]>],
    ) -> smallvec::SmallVec<[Option<&Node>; N]> {
        use smallvec::SmallVec;
        use std::hint::black_box;

        // Hash each key and load its shard's table header.
        let shards: SmallVec<[Option<(u64, &Shard)>; N]> = keys
            .iter()
            .map(|key| {
                let hash = self.hash((*key)?);
                let shard = self.shard(hash);
                black_box(shard.len());
                Some((hash, shard))
            })
            .collect();
        // Load the control bytes where the key would be.
        let mut probes: SmallVec<[Option<hashbrown::hash_table::IterHash<'_, Entry>>; N]> = shards
            .iter()
            .map(|found| found.map(|(hash, shard)| shard.iter_hash(hash)))
            .collect();
        // Load the first entry whose control byte matches the key's.
        let candidates: SmallVec<[Option<&Entry>; N]> = probes
            .iter_mut()
            .map(|probe| {
                let entry = probe.as_mut()?.next()?;
                black_box(entry.node.0.ptr());
                Some(entry)
            })
            .collect();
        // Load the key to check it: a different name under the same seven bits of control
        // byte (one in 128) takes the ordinary lookup.
        keys.iter()
            .zip(&candidates)
            .map(|(key, candidate)| {
                let (key, candidate) = ((*key)?, (*candidate)?);
                if candidate.is(key) {
                    Some(&candidate.node)
                } else {
                    self.get(key)
                }
            })
            .collect()
    }

    /// Sets the node of `key`, returning the one it replaces. The node's answers must be for
    /// `key` ([`Node::new`] with the name `key` stands for), or it must have none.
    pub fn insert(&mut self, key: NameKey, node: Node) -> Option<Node> {
        let hash = self.hash(&key);
        let hasher = self.hasher.clone();
        let entry = Entry { key, node };
        let shard = self.shard_mut(hash);
        match shard.find_mut(hash, |e| *e.key == *entry.key) {
            Some(existing) => Some(std::mem::replace(existing, entry).node),
            None => {
                shard.insert_unique(hash, entry, |e| hasher.hash_one(&e.key[..]));
                self.len += 1;
                self.grow();
                None
            }
        }
    }

    /// Removes `key`, returning its node.
    pub fn remove(&mut self, key: &[u8]) -> Option<Node> {
        let hash = self.hash(key);
        // Looked up first, so removing an absent name copies nothing.
        self.shard(hash).find(hash, |e| e.is(key))?;
        let entry = self.shard_mut(hash).find_entry(hash, |e| e.is(key)).ok()?;
        let (removed, _) = entry.remove();
        self.len -= 1;
        Some(removed.node)
    }

    /// How many names the index holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the index holds no name.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every entry, in no particular order.
    fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.groups
            .iter()
            .flat_map(|group| group.iter())
            .flat_map(|shard| shard.iter())
    }

    /// Every name and its node, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&NameKey, &Node)> {
        self.entries().map(|e| (&e.key, &e.node))
    }

    /// Every name, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &NameKey> {
        self.iter().map(|(key, _)| key)
    }

    /// Splits every shard in two when the average shard has grown past [`MAX_SHARD`].
    fn grow(&mut self) {
        self.reserve(0);
    }

    /// Lays the map out for `additional` more names at once, so a first build that knows
    /// about how many names it makes does not split the map over and over as it fills (each
    /// split moves every entry).
    pub fn reserve(&mut self, additional: usize) {
        let names = self.len.saturating_add(additional);
        let (mut group_bits, mut shard_bits) = (self.group_bits, self.shard_bits);
        // Groups and shards per group double in turn, so both levels stay short.
        while names > (1usize << (group_bits + shard_bits)).saturating_mul(MAX_SHARD)
            && group_bits + shard_bits < 32
        {
            if group_bits <= shard_bits {
                group_bits += 1;
            } else {
                shard_bits += 1;
            }
        }
        if (group_bits, shard_bits) == (self.group_bits, self.shard_bits) {
            return;
        }
        // Each shard is made at the size it will have, rather than grown (and its smaller
        // tables freed) as names arrive.
        let mut grown = Self::with_layout(self.hasher.clone(), group_bits, shard_bits, names);
        for entry in self.entries() {
            let hash = grown.hash(&entry.key);
            let hasher = grown.hasher.clone();
            grown
                .shard_mut(hash)
                .insert_unique(hash, entry.clone(), |e| hasher.hash_one(&e.key[..]));
        }
        grown.len = self.len;
        *self = grown;
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    use super::super::{RecordSet, name_key};
    use super::*;

    fn key(i: usize) -> NameKey {
        name_key(&Name::from_ascii(format!("host-{i}.svc.cluster.local.")).expect("valid name"))
    }

    /// A node answering A with an address derived from `value`, so nodes can be told apart.
    fn node(i: usize, value: u8) -> Node {
        let name = Name::from_ascii(format!("host-{i}.svc.cluster.local.")).expect("valid name");
        let record = Record::from_rdata(name.clone(), 30, RData::A(A::new(10, 0, 0, value)));
        Node::new(
            &name,
            vec![RecordSet {
                record_type: RecordType::A,
                records: vec![record],
                additionals: Vec::new(),
            }],
        )
    }

    /// The node's encoded A answer, which carries the address.
    fn address(node: &Node) -> Option<Vec<u8>> {
        Some(node.wire(RecordType::A)?.to_vec())
    }

    #[test]
    fn insert_get_replace_remove() {
        let mut index = Index::default();
        assert!(index.is_empty());
        assert_eq!(index.insert(key(1), node(1, 1)), None);
        assert_eq!(index.len(), 1);
        assert_eq!(index.get(&key(1)).map(address), Some(address(&node(1, 1))));
        assert!(index.get(&key(2)).is_none());

        let replaced = index.insert(key(1), node(1, 2)).expect("was there");
        assert_eq!(address(&replaced), address(&node(1, 1)));
        assert_eq!(index.len(), 1);
        assert_eq!(index.get(&key(1)).map(address), Some(address(&node(1, 2))));

        assert!(index.remove(&key(2)).is_none());
        assert!(index.remove(&key(1)).is_some());
        assert!(index.get(&key(1)).is_none());
        assert!(index.is_empty());
    }

    #[test]
    fn a_batch_finds_what_lookups_one_at_a_time_find() {
        let mut index = Index::default();
        for i in 0..20_000 {
            index.insert(key(i), node(i, 1));
        }
        // Present and absent names, and requests without one (`None`), in batches of 32 and a
        // last short one.
        let wanted: Vec<Option<NameKey>> =
            (0..40_010).map(|i| (i % 7 != 3).then(|| key(i))).collect();
        let mut found_some = 0;
        for chunk in wanted.chunks(32) {
            let keys: Vec<Option<&[u8]>> = chunk.iter().map(|k| k.as_deref()).collect();
            let found = index.get_batch::<32>(&keys);
            assert_eq!(found.len(), keys.len());
            for (key, node) in keys.iter().zip(&found) {
                // The same entry, not only an equal node.
                let one = key.and_then(|key| index.get(key)).map(std::ptr::from_ref);
                assert_eq!(node.map(std::ptr::from_ref), one, "{key:?}");
                found_some += usize::from(node.is_some());
            }
        }
        assert_eq!(found_some, (0..20_000).filter(|i| i % 7 != 3).count());
        // Names whose first entry under their control byte is another name's, which the batch
        // must look past: with 20,000 names some always are (about one in thirty).
        let shadowed = (0..20_000)
            .map(key)
            .filter(|key| {
                let hash = index.hash(key);
                let first = index.shard(hash).iter_hash(hash).next();
                first.is_some_and(|entry| !entry.is(key))
            })
            .count();
        assert!(shadowed > 0, "no name was shadowed: the test proves less");
    }

    #[test]
    fn keys_are_whole_names_not_prefixes() {
        let mut index = Index::default();
        index.insert(key(1), node(1, 1));
        let whole = key(1);
        assert!(index.get(&whole[..whole.len() - 1]).is_none());
        let mut longer = whole.to_vec();
        longer.push(0);
        assert!(index.get(&longer).is_none());
    }

    #[test]
    fn nodes_without_an_encoded_answer_are_found_by_key() {
        let mut index = Index::default();
        // An empty non-terminal has no answer to carry its name.
        index.insert(key(1), Node::default());
        assert!(index.get(&key(1)).is_some_and(|n| n.is_empty()));
        assert!(index.get(&key(2)).is_none());
        // Found by its key, and no other.
        index.insert(key(3), node(3, 3));
        assert!(index.get(&key(3)).is_some());
        assert!(index.get(&key(4)).is_none());
    }

    #[test]
    fn a_clone_does_not_see_later_changes() {
        let mut index = Index::default();
        for i in 0..1000 {
            index.insert(key(i), node(i, 1));
        }
        let published = index.clone();
        index.insert(key(5), node(5, 2));
        index.insert(key(5000), node(5000, 1));
        index.remove(&key(7));

        assert_eq!(published.len(), 1000);
        assert_eq!(
            published.get(&key(5)).map(address),
            Some(address(&node(5, 1)))
        );
        assert!(published.get(&key(5000)).is_none());
        assert!(published.get(&key(7)).is_some());

        assert_eq!(index.len(), 1000);
        assert_eq!(index.get(&key(5)).map(address), Some(address(&node(5, 2))));
        assert!(index.get(&key(7)).is_none());
    }

    #[test]
    fn a_change_copies_only_its_shard() {
        let mut index = Index::default();
        for i in 0..1000 {
            index.insert(key(i), node(i, 1));
        }
        let published = index.clone();
        index.insert(key(5), node(5, 2));
        let shared = index
            .groups
            .iter()
            .zip(published.groups.iter())
            .flat_map(|(a, b)| a.iter().zip(b.iter()))
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert_eq!(shared, index.shards() - 1);
    }

    #[test]
    fn a_reserved_index_is_laid_out_once_and_keeps_what_it_held() {
        let mut index = Index::default();
        for i in 0..100 {
            index.insert(key(i), node(i, 1));
        }
        index.reserve(20_000);
        let shards = index.shards();
        assert!(shards >= 20_100 / MAX_SHARD, "{shards}");
        assert!((0..100).all(|i| index.get(&key(i)).is_some()));
        for i in 100..20_100 {
            index.insert(key(i), node(i, 1));
        }
        assert_eq!(
            index.shards(),
            shards,
            "no split while filling what was reserved"
        );
        assert_eq!(index.len(), 20_100);
        assert!((0..20_100).all(|i| index.get(&key(i)).is_some()));
        // Reserving what the layout already holds changes nothing.
        index.reserve(0);
        assert_eq!(index.shards(), shards);
    }

    #[test]
    fn growing_splits_shards_and_keeps_every_name() {
        let mut index = Index::default();
        let mut snapshots = Vec::new();
        for i in 0..20_000 {
            index.insert(key(i), node(i, 1));
            if i % 5000 == 0 {
                snapshots.push((i + 1, index.clone()));
            }
        }
        assert_eq!(index.len(), 20_000);
        assert!(index.shards() >= 20_000 / MAX_SHARD, "{}", index.shards());
        assert!(
            index.shards() <= 2 * 20_000 / MAX_SHARD,
            "{}",
            index.shards()
        );
        assert!((0..20_000).all(|i| index.get(&key(i)).is_some()));
        assert_eq!(index.iter().count(), 20_000);
        let mut keys: Vec<&NameKey> = index.keys().collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 20_000);
        // Snapshots taken before a split still hold exactly what they held.
        for (len, snapshot) in &snapshots {
            assert_eq!(snapshot.len(), *len);
            assert_eq!(snapshot.iter().count(), *len);
            assert!(snapshot.get(&key(*len)).is_none());
            assert!(snapshot.get(&key(len - 1)).is_some());
        }
        for i in 0..20_000 {
            assert!(index.remove(&key(i)).is_some());
        }
        assert!(index.is_empty());
        assert_eq!(index.iter().count(), 0);
    }
}
