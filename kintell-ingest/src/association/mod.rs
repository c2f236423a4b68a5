//! The campaign index: the catalogue loaded once per batch or run, so associating a row needs no query.
//!
//! [`CampaignIndex`] organises a [`CatalogSnapshot`] by company and programme kind, each list sorted by start date,
//! with group tags interned to integers (bits of a `u64` for the 64 most frequent) and instances pre-sorted by
//! preference. Associating one activity is a binary search over a compact array of start days, a scan of a few
//! adjacent 32-byte entries and integer operations; the outcome's reasons are explained from the index's own copy
//! of what they name, so the catalogue's views are not touched at all. It allocates only the [`Outcome`] it returns
//! (and, for an ambiguous choice, the list of tied campaigns). The results are exactly those of
//! [`crate::scoring::associate`] over the same campaigns.

mod catalog;

pub use catalog::{Associator, DecidedAssociation, DecidedBy, record};

use crate::domain::{
    CampaignId, CampaignStatus, CompanyId, InstanceId, InstanceStatus, ProgramType, Tag, Tags,
};
use crate::scoring::{
    ActivityFacts, CampaignView, CandidateSummary, Detail, InstanceFacts, InstanceView, Outcome,
    Proposal, RankKey, ScoringPolicy, TagMatch, conclude, confidence, len32, no_candidates,
    no_company, status_rank, total,
};
use chrono::{Datelike, NaiveDate};
use std::cmp::Ordering;
use std::collections::HashMap;

/// The catalogue as association needs it: every campaign with its group's tags and its instances.
///
/// Campaign ids are expected to be unique, as the catalogue's primary key makes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CatalogSnapshot {
    /// All campaigns, whatever their company, status or activity; the index filters.
    pub campaigns: Vec<CampaignView>,
}

/// Programme kinds an activity can have; one campaign list per company and kind.
const KINDS: usize = ProgramType::ALL.len();

const fn kind_slot(p: ProgramType) -> usize {
    match p {
        ProgramType::MentorsUkraine => 0,
        ProgramType::LanguageUkraine => 1,
        ProgramType::Buddy => 2,
        ProgramType::Upskilling => 3,
        ProgramType::Kintell => 4,
    }
}

/// Tags with ids below this are compared as bits of a `u64`; the rest (only in catalogues with more distinct tags)
/// by merging ascending id lists.
const MASK_BITS: u32 = 64;

/// Participant tag sets with up to this many tags outside the mask are interned on the stack.
const STACK_TAGS: usize = 16;

/// FxHash (rustc's): a multiply-rotate hash, much cheaper than SipHash on short tags. Only the catalogue's tags
/// are keys, so a crafted participant tag can at worst cost a scan of a bucket of those.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Dictionary = HashMap<Tag, u32, std::hash::BuildHasherDefault<FxHasher>>;

/// A contiguous range of an array.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: u32,
    len: u32,
}

/// One campaign in a company's list for a programme kind: 48 bytes, everything a scan reads. Its group tags at or
/// above [`MASK_BITS`] are `rest_tags[rest..next.rest]` and its instances `windows[instances..next.instances]`,
/// where `next` is the following entry (the last one is a sentinel).
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// First and last day of the window (inclusive), as days from the common era.
    start: i32,
    end: i32,
    /// Group tags below [`MASK_BITS`], as bits.
    mask: u64,
    rest: u32,
    instances: u32,
    id: CampaignId,
    status: CampaignStatus,
}

/// The window of an `active` or `planned` instance, as days; a campaign's are sorted by preference, so the first
/// covering one wins. Its id and status are at the same index of `CampaignIndex::instances`.
#[derive(Debug, Clone, Copy)]
struct InstanceWindow {
    start: i32,
    /// Inclusive; `i32::MAX` when open-ended.
    end: i32,
}

/// A company's campaigns for one programme kind: a span of `entries` (and `starts`) and its longest window.
#[derive(Debug, Clone, Copy, Default)]
struct List {
    entries: Span,
    max_span: i32,
}

/// The catalogue organised for association; see the module documentation.
#[derive(Debug, Clone)]
pub struct CampaignIndex {
    campaigns: Vec<CampaignView>,
    /// Sorted; company `i`'s lists are `lists[i * KINDS..][..KINDS]`.
    companies: Vec<CompanyId>,
    lists: Vec<List>,
    /// Start day of each entry, kept apart so the binary search touches few cache lines.
    starts: Vec<i32>,
    /// One more than there are campaigns in lists: a sentinel closes the last entry's spans.
    entries: Vec<Entry>,
    /// Group tag ids at or above [`MASK_BITS`], laid out in entry order.
    rest_tags: Vec<u32>,
    /// Laid out in entry order, so a scan reads them sequentially.
    windows: Vec<InstanceWindow>,
    /// Parallel to `windows`; only read for the proposal.
    instances: Vec<(InstanceId, InstanceStatus)>,
    dictionary: Dictionary,
    /// Tag of each id. Ids below [`MASK_BITS`] are in tag order, and so are the others, so that tags are named in
    /// order by merging the two runs.
    names: Vec<Tag>,
}

/// A candidate while scanning: enough to rank and explain it.
#[derive(Debug, Clone, Copy)]
struct Scan {
    key: RankKey,
    entry: u32,
    tags: TagMatch,
    /// Index into `CampaignIndex::windows` and `instances`.
    instance: Option<u32>,
}

/// A participant's interned tags.
struct Interned<'b> {
    mask: u64,
    rest: &'b [u32],
}

fn days(d: NaiveDate) -> i32 {
    d.num_days_from_ce()
}

/// Inverse of [`days`] for the dates it produced.
fn date_of(days: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(days).unwrap_or(NaiveDate::MIN)
}

/// The ids present in both ascending lists, ascending.
fn intersect<'s>(a: &'s [u32], b: &'s [u32]) -> impl Iterator<Item = u32> + 's {
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || {
        while let (Some(&x), Some(&y)) = (a.get(i), b.get(j)) {
            match x.cmp(&y) {
                Ordering::Less => i += 1,
                Ordering::Greater => j += 1,
                Ordering::Equal => {
                    i += 1;
                    j += 1;
                    return Some(x);
                }
            }
        }
        None
    })
}

/// The set bits of `mask`, ascending.
fn bits(mut mask: u64) -> impl Iterator<Item = u32> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let b = mask.trailing_zeros();
            mask &= mask - 1;
            b
        })
    })
}

impl CampaignIndex {
    /// Builds the index; `O(n log n)` in the catalogue's size.
    pub fn new(snapshot: CatalogSnapshot) -> Self {
        let campaigns = snapshot.campaigns;
        let eligible = || {
            campaigns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_eligible())
        };

        let names = dictionary_order(eligible().map(|(_, c)| &c.tags));
        let dictionary: Dictionary = names
            .iter()
            .enumerate()
            .map(|(id, t)| (t.clone(), len32(id)))
            .collect();

        let mut companies: Vec<CompanyId> = eligible().map(|(_, c)| c.company).collect();
        companies.sort();
        companies.dedup();

        // (list slot, campaign) pairs, in list order then start date.
        let mut slotted: Vec<(usize, usize)> = Vec::new();
        for (ci, c) in eligible() {
            let Ok(company) = companies.binary_search(&c.company) else {
                continue;
            };
            let base = company * KINDS;
            match c.program_type {
                Some(p) => slotted.push((base + kind_slot(p), ci)),
                None => slotted.extend((0..KINDS).map(|k| (base + k, ci))),
            }
        }
        let start_of = |ci: usize| campaigns.get(ci).map_or(0, |c| days(c.start_date));
        slotted.sort_by_key(|&(slot, ci)| (slot, start_of(ci), ci));

        let mut lists = vec![List::default(); companies.len() * KINDS];
        let mut starts = Vec::with_capacity(slotted.len());
        let mut entries = Vec::with_capacity(slotted.len() + 1);
        let mut rest_tags = Vec::new();
        let mut windows = Vec::new();
        let mut instances = Vec::new();
        let mut chosen: Vec<&InstanceView> = Vec::new();
        for (slot, ci) in slotted {
            let Some(c) = campaigns.get(ci) else { continue };
            let (start, end) = (days(c.start_date), days(c.end_date));
            if let Some(list) = lists.get_mut(slot) {
                if list.entries.len == 0 {
                    list.entries.start = len32(entries.len());
                }
                list.entries.len += 1;
                list.max_span = list.max_span.max(end.saturating_sub(start));
            }
            let rest = len32(rest_tags.len());
            let mut mask = 0u64;
            for id in c
                .tags
                .as_slice()
                .iter()
                .filter_map(|t| dictionary.get(t).copied())
            {
                if id < MASK_BITS {
                    mask |= 1 << id;
                } else {
                    rest_tags.push(id);
                }
            }
            if let Some(own) = rest_tags.get_mut(rest as usize..) {
                own.sort_unstable();
            }
            chosen.clear();
            chosen.extend(c.instances.iter().filter(|i| i.is_selectable()));
            chosen.sort_by(|a, b| a.preference(b));
            let first_instance = len32(windows.len());
            windows.extend(chosen.iter().map(|i| InstanceWindow {
                start: days(i.start_date),
                end: i.end_date.map_or(i32::MAX, days),
            }));
            instances.extend(chosen.iter().map(|i| (i.id, i.status)));
            starts.push(start);
            entries.push(Entry {
                start,
                end,
                mask,
                rest,
                instances: first_instance,
                id: c.id,
                status: c.status,
            });
        }
        entries.push(Entry {
            start: i32::MAX,
            end: i32::MIN,
            mask: 0,
            rest: len32(rest_tags.len()),
            instances: len32(windows.len()),
            id: CampaignId(uuid::Uuid::nil()),
            status: CampaignStatus::Draft,
        });

        CampaignIndex {
            campaigns,
            companies,
            lists,
            starts,
            entries,
            rest_tags,
            windows,
            instances,
            dictionary,
            names,
        }
    }

    /// The snapshot's campaigns, in the order given.
    pub fn campaigns(&self) -> &[CampaignView] {
        &self.campaigns
    }

    /// How many distinct group tags the candidate campaigns have.
    pub fn tag_count(&self) -> usize {
        self.names.len()
    }

    /// Associates one activity: the same [`Outcome`] as [`crate::scoring::associate`] over all the snapshot's
    /// campaigns.
    pub fn associate(&self, facts: &ActivityFacts<'_>, policy: &ScoringPolicy) -> Outcome {
        let Some(company) = facts.company else {
            return no_company();
        };
        let date = policy.activity_date(facts.at);
        let d = days(date);
        let Some(list) = self
            .companies
            .binary_search(&company)
            .ok()
            .and_then(|i| self.lists.get(i * KINDS + kind_slot(facts.program)))
        else {
            return no_candidates(company, facts.program, date);
        };

        // Entries are sorted by start: those starting after the date are out, and so are those starting before
        // `d - max_span`, whose windows cannot reach the date.
        let first = list.entries.start as usize;
        let starts = self
            .starts
            .get(first..first + list.entries.len as usize)
            .unwrap_or(&[]);
        let upper = starts.partition_point(|&s| s <= d);
        let lower = starts
            .get(..upper)
            .unwrap_or(&[])
            .partition_point(|&s| s < d.saturating_sub(list.max_span));
        let window = first + lower..first + upper;

        let mut stack = [0u32; STACK_TAGS];
        let mut heap = Vec::new();
        let participant = self.intern(facts.tags, &mut stack, &mut heap);

        let mut top: [Option<Scan>; 3] = [None; 3];
        for at in window.clone() {
            if let Some(scan) = self.scan(at, &participant, d, policy) {
                insert_top(&mut top, scan);
            }
        }
        let Some(best) = top[0] else {
            return no_candidates(company, facts.program, date);
        };
        let candidates: Vec<CandidateSummary> = top
            .iter()
            .flatten()
            .map(|s| CandidateSummary {
                campaign: s.key.id,
                total: s.key.total,
                confidence: confidence(s.key.total),
            })
            .collect();
        let proposal = Indexed {
            index: self,
            scan: best,
            participant: &participant,
            date,
        };
        match top[1] {
            Some(second) if second.key.total == best.key.total => {
                let mut keys: Vec<RankKey> = window
                    .filter_map(|at| self.scan(at, &participant, d, policy))
                    .map(|s| s.key)
                    .filter(|k| k.total == best.key.total)
                    .collect();
                keys.sort_unstable();
                let tied: Vec<CampaignId> = keys.iter().map(|k| k.id).collect();
                conclude(&proposal, &tied, candidates, policy)
            }
            _ => conclude(
                &proposal,
                std::slice::from_ref(&best.key.id),
                candidates,
                policy,
            ),
        }
    }

    /// Interns a participant's tags; unknown tags are dropped, as they can never match a group.
    fn intern<'b>(
        &self,
        tags: &Tags,
        stack: &'b mut [u32; STACK_TAGS],
        heap: &'b mut Vec<u32>,
    ) -> Interned<'b> {
        let mut mask = 0u64;
        let mut n = 0;
        for id in tags
            .as_slice()
            .iter()
            .filter_map(|t| self.dictionary.get(t).copied())
        {
            if id < MASK_BITS {
                mask |= 1 << id;
            } else if let Some(slot) = stack.get_mut(n) {
                *slot = id;
                n += 1;
            } else {
                heap.push(id);
            }
        }
        let rest: &mut [u32] = if heap.is_empty() {
            stack.get_mut(..n).unwrap_or(&mut [])
        } else {
            heap.extend(stack.iter().take(n));
            heap.as_mut_slice()
        };
        rest.sort_unstable();
        Interned { mask, rest }
    }

    /// The group tags of entry `at` at or above [`MASK_BITS`], ascending.
    fn rest_of(&self, at: usize) -> &[u32] {
        match (self.entries.get(at), self.entries.get(at + 1)) {
            (Some(e), Some(next)) => self
                .rest_tags
                .get(e.rest as usize..next.rest as usize)
                .unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Scores entry number `at` on day `d`, or `None` when its window ends before.
    fn scan(
        &self,
        at: usize,
        participant: &Interned<'_>,
        d: i32,
        policy: &ScoringPolicy,
    ) -> Option<Scan> {
        let (e, next) = (self.entries.get(at)?, self.entries.get(at + 1)?);
        if e.end < d {
            return None;
        }
        let mut group = e.mask.count_ones();
        let mut shared = (participant.mask & e.mask).count_ones();
        if e.rest != next.rest {
            let rest = self.rest_of(at);
            group += len32(rest.len());
            shared += len32(intersect(participant.rest, rest).count());
        }
        let tags = TagMatch::of(shared, group);
        // Instances are sorted by preference, so the first covering one is the chosen one.
        let instance = self
            .windows
            .get(e.instances as usize..next.instances as usize)
            .and_then(|w| w.iter().position(|i| i.start <= d && d <= i.end))
            .map(|k| e.instances + len32(k));
        Some(Scan {
            key: RankKey {
                total: total(&policy.weights, tags, e.status, instance.is_some()),
                status_rank: status_rank(e.status),
                start: e.start,
                id: e.id,
            },
            entry: len32(at),
            tags,
            instance,
        })
    }

    /// Appends the names of the ids `low` (bits, all below [`MASK_BITS`]) and `high` (ascending, the others), in
    /// tag order: each run is in tag order, so this is a merge.
    fn names(&self, d: Detail, low: u64, high: impl Iterator<Item = u32>) -> Detail {
        let name = |id: u32| self.names.get(id as usize).map_or("", Tag::as_str);
        let mut low = bits(low).map(name).peekable();
        let mut high = high.map(name).peekable();
        d.list(std::iter::from_fn(move || {
            match (low.peek(), high.peek()) {
                (Some(a), Some(b)) if b < a => high.next(),
                (Some(_), _) => low.next(),
                (None, _) => high.next(),
            }
        }))
    }
}

/// The dictionary's tags in id order: the 64 most frequent (ties by tag) in tag order, then the others in tag
/// order.
fn dictionary_order<'t>(groups: impl Iterator<Item = &'t Tags>) -> Vec<Tag> {
    let mut freq: HashMap<&Tag, u32> = HashMap::new();
    for t in groups.flat_map(|g| g.as_slice()) {
        *freq.entry(t).or_default() += 1;
    }
    let mut by_freq: Vec<(&Tag, u32)> = freq.into_iter().collect();
    by_freq.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let split = by_freq.len().min(MASK_BITS as usize);
    let (mut frequent, mut others): (Vec<&Tag>, Vec<&Tag>) = (
        by_freq.iter().take(split).map(|(t, _)| *t).collect(),
        by_freq.iter().skip(split).map(|(t, _)| *t).collect(),
    );
    frequent.sort();
    others.sort();
    frequent.into_iter().chain(others).cloned().collect()
}

/// The index's proposal, explained from the index's own data.
struct Indexed<'i> {
    index: &'i CampaignIndex,
    scan: Scan,
    participant: &'i Interned<'i>,
    date: NaiveDate,
}

impl Indexed<'_> {
    fn entry(&self) -> Option<&Entry> {
        self.index.entries.get(self.scan.entry as usize)
    }
}

impl Proposal for Indexed<'_> {
    fn campaign(&self) -> CampaignId {
        self.scan.key.id
    }

    fn status(&self) -> CampaignStatus {
        self.entry().map_or(CampaignStatus::Draft, |e| e.status)
    }

    fn window(&self) -> (NaiveDate, NaiveDate) {
        self.entry().map_or((NaiveDate::MIN, NaiveDate::MIN), |e| {
            (date_of(e.start), date_of(e.end))
        })
    }

    fn date(&self) -> NaiveDate {
        self.date
    }

    fn tags(&self) -> TagMatch {
        self.scan.tags
    }

    fn total(&self) -> u32 {
        self.scan.key.total
    }

    fn instance(&self) -> Option<InstanceFacts> {
        let k = self.scan.instance? as usize;
        let (w, &(id, status)) = (self.index.windows.get(k)?, self.index.instances.get(k)?);
        Some(InstanceFacts {
            id,
            status,
            start: date_of(w.start),
            end: (w.end != i32::MAX).then(|| date_of(w.end)),
        })
    }

    fn shared_tags(&self, d: Detail) -> Detail {
        let at = self.scan.entry as usize;
        let mask = self.entry().map_or(0, |e| e.mask) & self.participant.mask;
        self.index.names(
            d,
            mask,
            intersect(self.participant.rest, self.index.rest_of(at)),
        )
    }

    fn group_tags(&self, d: Detail) -> Detail {
        let at = self.scan.entry as usize;
        let mask = self.entry().map_or(0, |e| e.mask);
        self.index
            .names(d, mask, self.index.rest_of(at).iter().copied())
    }
}

impl From<CatalogSnapshot> for CampaignIndex {
    fn from(snapshot: CatalogSnapshot) -> Self {
        CampaignIndex::new(snapshot)
    }
}

/// Keeps the best three by rank.
fn insert_top(top: &mut [Option<Scan>; 3], s: Scan) {
    let mut cur = s;
    for slot in top.iter_mut() {
        match slot {
            None => {
                *slot = Some(cur);
                return;
            }
            Some(old) if cur.key < old.key => std::mem::swap(old, &mut cur),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_beyond_the_mask_are_merged_in_tag_order() {
        // 70 tags: the 64 most frequent become bits, six go to the merged lists.
        let tags: Vec<String> = (0..70).map(|i| format!("t{i:02}")).collect();
        let groups: Vec<Tags> = (0..70)
            .map(|i| Tags::from_raw(tags.iter().skip(i / 10 * 10)))
            .collect();
        let names = dictionary_order(groups.iter());
        assert_eq!(names.len(), 70);
        let (low, high) = names.split_at(64);
        assert!(low.windows(2).all(|w| w[0] < w[1]));
        assert!(high.windows(2).all(|w| w[0] < w[1]));
        // The least frequent are t00..t09, in one group each of the first ten.
        assert!(high.iter().all(|t| t.as_str() < "t10"));
    }

    #[test]
    fn bit_and_merge_helpers() {
        assert_eq!(bits(0b1010_0001).collect::<Vec<_>>(), [0, 5, 7]);
        assert_eq!(bits(1 << 63).collect::<Vec<_>>(), [63]);
        assert_eq!(
            intersect(&[1, 3, 5, 9], &[2, 3, 9, 10]).collect::<Vec<_>>(),
            [3, 9]
        );
        let mut top = [None; 3];
        for (total, n) in [(70, 1u8), (90, 2), (80, 3), (95, 4)] {
            insert_top(
                &mut top,
                Scan {
                    key: RankKey {
                        total,
                        status_rank: 0,
                        start: 0,
                        id: CampaignId(uuid::Uuid::from_u128(u128::from(n))),
                    },
                    entry: 0,
                    tags: TagMatch::Untargeted,
                    instance: None,
                },
            );
        }
        let totals: Vec<u32> = top.iter().flatten().map(|s| s.key.total).collect();
        assert_eq!(totals, [95, 90, 80]);
    }
}
