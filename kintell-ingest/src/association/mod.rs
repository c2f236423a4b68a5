//! The campaign index: the catalogue loaded once per batch or run, so associating a row needs no query.
//!
//! [`CampaignIndex`] organises a [`CatalogSnapshot`] by company and programme kind, with each list sorted by start
//! date, group tags interned to integers and instances pre-sorted by preference. Associating one activity is then a
//! binary search, a short scan and integer comparisons; it allocates only the [`Outcome`] it returns. The results
//! are exactly those of [`crate::scoring::associate`] over the same campaigns.

use crate::domain::{CampaignId, CampaignStatus, CompanyId, ProgramType, Tag, Tags};
use crate::scoring::{
    ActivityFacts, CampaignView, CandidateScore, CandidateSummary, Outcome, RankKey, ScoringPolicy,
    TagMatch, conclude, confidence, len32, no_candidates, no_company, status_rank, total,
};
use chrono::{Datelike, NaiveDate};
use std::cmp::Ordering;

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

/// Participant tag sets up to this size are interned on the stack.
const STACK_TAGS: usize = 16;

/// A contiguous range of an arena.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn of<T>(self, arena: &[T]) -> &[T] {
        let s = self.start as usize;
        arena.get(s..s + self.len as usize).unwrap_or(&[])
    }
}

/// One candidate campaign in a company's list for a programme kind.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Window, as days from the common era; `end` inclusive.
    start: i32,
    end: i32,
    start_date: NaiveDate,
    id: CampaignId,
    /// Index into `CampaignIndex::campaigns`.
    campaign: u32,
    tags: Span,
    instances: Span,
    status: CampaignStatus,
}

/// An `active` or `planned` instance, its campaign's list sorted by preference so the first covering one wins.
#[derive(Debug, Clone, Copy)]
struct Inst {
    start: i32,
    /// Inclusive; `i32::MAX` when open-ended.
    end: i32,
    /// Index into the campaign's `instances`.
    index: u32,
}

/// Per company: one list per programme kind, as a span of `entries`, and the longest window in it.
#[derive(Debug, Clone, Copy, Default)]
struct List {
    entries: Span,
    max_span: i32,
}

/// The catalogue organised for association; see the module documentation.
#[derive(Debug, Clone)]
pub struct CampaignIndex {
    campaigns: Vec<CampaignView>,
    /// Sorted; a company's lists are at `lists[i * KINDS ..]`.
    companies: Vec<CompanyId>,
    lists: Vec<List>,
    entries: Vec<Entry>,
    /// Interned group tags, each group's ids ascending.
    group_tags: Vec<u32>,
    instances: Vec<Inst>,
    /// Tag `i` is `dictionary[i]`; sorted, so interned ids keep the tags' order.
    dictionary: Vec<Tag>,
}

/// A candidate while scanning: enough to rank it and to rebuild its [`CandidateScore`].
#[derive(Debug, Clone, Copy)]
struct Scan {
    key: RankKey,
    entry: u32,
    tags: TagMatch,
    instance: Option<u32>,
}

fn days(d: NaiveDate) -> i32 {
    d.num_days_from_ce()
}

/// |U ∩ G| of two ascending id lists.
fn count_shared(u: &[u32], g: &[u32]) -> u32 {
    let (mut i, mut j, mut n) = (0, 0, 0u32);
    while let (Some(a), Some(b)) = (u.get(i), g.get(j)) {
        match a.cmp(b) {
            Ordering::Less => i += 1,
            Ordering::Greater => j += 1,
            Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

impl CampaignIndex {
    /// Builds the index; linear in the catalogue's size up to the sorts.
    pub fn new(snapshot: CatalogSnapshot) -> Self {
        let campaigns = snapshot.campaigns;

        let mut dictionary: Vec<Tag> = campaigns
            .iter()
            .flat_map(|c| c.tags.as_slice().iter().cloned())
            .collect();
        dictionary.sort();
        dictionary.dedup();
        let intern = |t: &Tag| dictionary.binary_search(t).ok().map(len32);

        let mut companies: Vec<CompanyId> = campaigns
            .iter()
            .filter(|c| c.is_eligible())
            .map(|c| c.company)
            .collect();
        companies.sort();
        companies.dedup();

        let mut group_tags = Vec::new();
        let mut instances = Vec::new();
        // (list slot, entry) pairs, grouped below.
        let mut slotted: Vec<(usize, Entry)> = Vec::new();
        for (ci, c) in campaigns.iter().enumerate() {
            let Ok(company) = companies.binary_search(&c.company) else {
                continue;
            };
            if !c.is_eligible() {
                continue;
            }
            let tags = Span {
                start: len32(group_tags.len()),
                len: len32(c.tags.len()),
            };
            // Group tags are sorted and the dictionary keeps their order, so the ids come out ascending.
            group_tags.extend(c.tags.as_slice().iter().filter_map(intern));
            let mut own: Vec<(u32, &crate::scoring::InstanceView)> = c
                .instances
                .iter()
                .enumerate()
                .filter(|(_, i)| i.is_selectable())
                .map(|(k, i)| (len32(k), i))
                .collect();
            own.sort_by(|a, b| a.1.preference(b.1));
            let inst = Span {
                start: len32(instances.len()),
                len: len32(own.len()),
            };
            instances.extend(own.iter().map(|(k, i)| Inst {
                start: days(i.start_date),
                end: i.end_date.map_or(i32::MAX, days),
                index: *k,
            }));
            let entry = Entry {
                start: days(c.start_date),
                end: days(c.end_date),
                start_date: c.start_date,
                id: c.id,
                campaign: len32(ci),
                tags,
                instances: inst,
                status: c.status,
            };
            let base = company * KINDS;
            match c.program_type {
                Some(p) => slotted.push((base + kind_slot(p), entry)),
                None => slotted.extend((0..KINDS).map(|k| (base + k, entry))),
            }
        }
        slotted.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.start.cmp(&b.1.start)));

        let mut lists = vec![List::default(); companies.len() * KINDS];
        let mut entries = Vec::with_capacity(slotted.len());
        for (slot, e) in slotted {
            if let Some(list) = lists.get_mut(slot) {
                if list.entries.len == 0 {
                    list.entries.start = len32(entries.len());
                }
                list.entries.len += 1;
                list.max_span = list.max_span.max(e.end.saturating_sub(e.start));
            }
            entries.push(e);
        }

        CampaignIndex {
            campaigns,
            companies,
            lists,
            entries,
            group_tags,
            instances,
            dictionary,
        }
    }

    /// The snapshot's campaigns, in the order given.
    pub fn campaigns(&self) -> &[CampaignView] {
        &self.campaigns
    }

    /// How many distinct group tags the catalogue has.
    pub fn tag_count(&self) -> usize {
        self.dictionary.len()
    }

    /// Associates one activity: the same [`Outcome`] as [`crate::scoring::associate`] over all the snapshot's
    /// campaigns.
    pub fn associate(&self, facts: &ActivityFacts<'_>, policy: &ScoringPolicy) -> Outcome {
        let Some(company) = facts.company else {
            return no_company();
        };
        let date = policy.activity_date(facts.at);
        let d = days(date);
        let (list, max_span) = self
            .companies
            .binary_search(&company)
            .ok()
            .and_then(|i| self.lists.get(i * KINDS + kind_slot(facts.program)))
            .map_or((&[][..], 0), |l| (l.entries.of(&self.entries), l.max_span));

        let mut stack = [0u32; STACK_TAGS];
        let heap: Vec<u32>;
        let participant: &[u32] = if facts.tags.len() <= STACK_TAGS {
            let mut n = 0;
            for (slot, id) in stack.iter_mut().zip(self.intern(facts.tags)) {
                *slot = id;
                n += 1;
            }
            stack.get(..n).unwrap_or(&[])
        } else {
            heap = self.intern(facts.tags).collect();
            &heap
        };

        // Entries are sorted by start: those starting after the date are out, and so are those starting before
        // `d - max_span`, whose windows cannot reach the date.
        let upper = list.partition_point(|e| e.start <= d);
        let lower = list.partition_point(|e| e.start < d.saturating_sub(max_span));
        let window = list.get(lower..upper).unwrap_or(&[]);

        let mut top: [Option<Scan>; 3] = [None; 3];
        for (k, e) in window.iter().enumerate() {
            if let Some(scan) = self.scan(e, lower + k, participant, d, policy) {
                insert_top(&mut top, scan);
            }
        }

        let Some(best) = top[0] else {
            return no_candidates(company, facts.program, date);
        };
        let Some(best_score) = self.rebuild(list, &best, date) else {
            return no_candidates(company, facts.program, date);
        };
        let tied: Vec<CampaignId> = match top[1] {
            Some(second) if second.key.total == best.key.total => {
                let mut keys: Vec<RankKey> = window
                    .iter()
                    .filter_map(|e| self.scan(e, 0, participant, d, policy))
                    .map(|s| s.key)
                    .filter(|k| k.total == best.key.total)
                    .collect();
                keys.sort();
                keys.iter().map(|k| k.id).collect()
            }
            _ => vec![best.key.id],
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
        conclude(facts.tags, &best_score, &tied, candidates, policy)
    }

    /// Scores entry number `at` of its list on day `d`, or `None` when its window ends before.
    fn scan(
        &self,
        e: &Entry,
        at: usize,
        participant: &[u32],
        d: i32,
        policy: &ScoringPolicy,
    ) -> Option<Scan> {
        if e.end < d {
            return None;
        }
        let tags = TagMatch::of(
            count_shared(participant, e.tags.of(&self.group_tags)),
            e.tags.len,
        );
        // Instances are sorted by preference, so the first covering one is the chosen one.
        let instance = e
            .instances
            .of(&self.instances)
            .iter()
            .find(|i| i.start <= d && d <= i.end)
            .map(|i| i.index);
        Some(Scan {
            key: RankKey {
                total: total(&policy.weights, tags, e.status, instance.is_some()),
                status_rank: status_rank(e.status),
                start_date: e.start_date,
                id: e.id,
            },
            entry: len32(at),
            tags,
            instance,
        })
    }

    /// The ids of `tags` known to the dictionary, ascending; unknown tags can never match a group.
    fn intern<'s>(&'s self, tags: &'s Tags) -> impl Iterator<Item = u32> + 's {
        tags.as_slice()
            .iter()
            .filter_map(|t| self.dictionary.binary_search(t).ok().map(len32))
    }

    /// The [`CandidateScore`] of a scanned candidate, over the snapshot's own views.
    fn rebuild(&self, list: &[Entry], s: &Scan, date: NaiveDate) -> Option<CandidateScore<'_>> {
        let e = list.get(s.entry as usize)?;
        let campaign = self.campaigns.get(e.campaign as usize)?;
        let instance = match s.instance {
            Some(i) => Some(campaign.instances.get(i as usize)?),
            None => None,
        };
        Some(CandidateScore {
            campaign,
            date,
            tags: s.tags,
            instance,
            total: s.key.total,
        })
    }
}

impl From<CatalogSnapshot> for CampaignIndex {
    fn from(snapshot: CatalogSnapshot) -> Self {
        CampaignIndex::new(snapshot)
    }
}

/// Keeps the best three by rank.
fn insert_top(top: &mut [Option<Scan>; 3], s: Scan) {
    let mut cur = Some(s);
    for slot in top.iter_mut() {
        match (*slot, cur) {
            (_, None) => return,
            (None, _) => {
                *slot = cur;
                return;
            }
            (Some(old), Some(new)) if new.key < old.key => {
                *slot = Some(new);
                cur = Some(old);
            }
            _ => {}
        }
    }
}
