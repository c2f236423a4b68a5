//! Catalogue import: companies, beneficiary groups, campaigns, programme instances and users from JSON.
//!
//! The document is the "Catalogue file" of `../shared/spec/interfaces.md`:
//!
//! ```json
//! { "companies": [{"key": "acme", "name": "Acme AS"}],
//!   "beneficiary_groups": [{"key": "ua-refugees", "name": "Ukrainian refugees", "group_type": "refugees",
//!                           "tags": ["refugees", "ukrainian"]}],
//!   "campaigns": [{"key": "acme-mentors-2024", "name": "Acme mentors", "company": "acme",
//!                  "beneficiary_group": "ua-refugees", "program_type": "mentors_ukraine",
//!                  "start_date": "2024-01-01", "end_date": "2024-12-31", "status": "active", "max_sessions": 500}],
//!   "program_instances": [{"slug": "mentors-ukraine-2024-q4", "campaign": "acme-mentors-2024",
//!                          "program_type": "mentors_ukraine", "program_name": "Mentors for Ukraine - Q4 2024",
//!                          "start_date": "2024-10-01", "end_date": "2024-12-31", "status": "active"}],
//!   "users": [{"email": "anna@example.com", "role": "participant", "company": null, "tags": ["refugees"]}] }
//! ```
//!
//! Every section is optional. Rows are upserted by key with the stable ids of "Stable ids", so importing the same
//! document twice leaves every row unchanged. Defaults where a field is absent or `null`, as in the schema: a
//! group's `tags` `[]` and `is_active` true; a campaign's `status` `draft`, `is_active` true, targets 0,
//! `program_type` and `max_sessions` none; an instance's `status` `active`, `end_date` none (ongoing), `company`
//! its campaign's. An instance also accepts `external_system`. The document is the truth for companies, groups,
//! campaigns and instances; users are also created by imports, so a user's `company`, `tags`, `first_name` and
//! `last_name` keep their stored values when the document does not name them (`null` clears them), and journey
//! flags are always kept. An instance keeps the `created_at` of the import that first created it.
//!
//! Nothing is written unless the whole document is valid: every entry is checked first (unknown sections and
//! fields, missing or malformed values, duplicate keys, an end before a start, an instance whose `company` is not
//! its campaign's), then every reference is resolved against the document and the store (one look-up per kind),
//! and all problems are reported together with their JSON paths, e.g. `$.campaigns[3].company: unknown company
//! "acme"` (the first [`MAX_PROBLEMS`], with the total). The look-ups and the writes share one unit of work, so a
//! store error also leaves nothing half-written. Rows are written in chunks of a few thousand per call.

mod document;

pub use document::MAX_PROBLEMS;

use crate::domain::{
    Campaign, CampaignId, CompanyId, Email, GroupId, InstanceId, Key, ProgramInstance, Tags, User,
    UserId,
};
use crate::ports::{StoreError, UnitOfWork, UpsertCounts};
use crate::store::Store;
use chrono::{DateTime, Utc};
use document::{Document, DraftCampaign, DraftInstance, DraftUser, Field, Problems, Ref};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fmt;

/// Rows per look-up and per upsert call: large enough that a big catalogue takes a handful of calls, small enough
/// that no single statement grows without bound (the SQL stores split further by bind-parameter limits).
const CHUNK: usize = 5_000;

/// Imports catalogue documents into a store.
#[derive(Debug, Clone)]
pub struct CatalogImport {
    store: Store,
}

/// What an import did, per kind of row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CatalogReport {
    /// Companies.
    pub companies: UpsertCounts,
    /// Beneficiary groups.
    pub beneficiary_groups: UpsertCounts,
    /// Campaigns.
    pub campaigns: UpsertCounts,
    /// Programme instances.
    pub program_instances: UpsertCounts,
    /// Users.
    pub users: UpsertCounts,
}

impl CatalogReport {
    /// The counts of every kind added up.
    pub fn total(&self) -> UpsertCounts {
        let mut t = self.companies;
        t.add(self.beneficiary_groups);
        t.add(self.campaigns);
        t.add(self.program_instances);
        t.add(self.users);
        t
    }
}

/// One thing wrong with a document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    /// JSON path of the offending value, e.g. `$.campaigns[3].company`.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why an import wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The input is not JSON.
    #[error("the catalogue is not valid JSON (line {line}, column {column})")]
    Syntax {
        /// Line of the error, from 1.
        line: usize,
        /// Column of the error, from 1.
        column: usize,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The input could not be read.
    #[error("the catalogue could not be read")]
    Read {
        /// The reader's error.
        #[source]
        source: std::io::Error,
    },
    /// The document is JSON but not a valid catalogue.
    #[error("{}", describe(problems, *total))]
    Invalid {
        /// The first [`MAX_PROBLEMS`] problems, in document order per check.
        problems: Vec<Problem>,
        /// How many problems there are in all.
        total: usize,
    },
    /// The store failed or refused a write.
    #[error("the store refused the catalogue")]
    Store {
        /// The store's error.
        #[source]
        source: StoreError,
    },
}

fn describe(problems: &[Problem], total: usize) -> String {
    let mut s = format!(
        "the catalogue has {total} problem{}: ",
        if total == 1 { "" } else { "s" }
    );
    let listed: Vec<String> = problems.iter().map(Problem::to_string).collect();
    s.push_str(&listed.join("; "));
    if total > problems.len() {
        s.push_str(&format!("; and {} more", total - problems.len()));
    }
    s
}

impl CatalogError {
    fn from_json(e: serde_json::Error) -> Self {
        if e.is_io() {
            CatalogError::Read {
                source: std::io::Error::from(e),
            }
        } else {
            CatalogError::Syntax {
                line: e.line(),
                column: e.column(),
                source: e,
            }
        }
    }

    fn store(source: StoreError) -> Self {
        CatalogError::Store { source }
    }
}

impl CatalogImport {
    /// An importer writing to `store`.
    pub fn new(store: Store) -> Self {
        CatalogImport { store }
    }

    /// Imports a document held in a string; `now` becomes the `created_at` of instances it creates.
    ///
    /// # Errors
    /// [`CatalogError::Syntax`] for malformed JSON, [`CatalogError::Invalid`] listing what is wrong with the
    /// document, [`CatalogError::Store`] when the store fails; in every case nothing is written.
    pub async fn run_json(
        &self,
        json: &str,
        now: DateTime<Utc>,
    ) -> Result<CatalogReport, CatalogError> {
        let doc: Value = serde_json::from_str(json).map_err(CatalogError::from_json)?;
        self.run_value(&doc, now).await
    }

    /// Imports a document read from `reader` (buffered here).
    ///
    /// # Errors
    /// As [`CatalogImport::run_json`], plus [`CatalogError::Read`] when reading fails.
    pub async fn run_reader<R: std::io::Read>(
        &self,
        reader: R,
        now: DateTime<Utc>,
    ) -> Result<CatalogReport, CatalogError> {
        let doc: Value = serde_json::from_reader(std::io::BufReader::new(reader))
            .map_err(CatalogError::from_json)?;
        self.run_value(&doc, now).await
    }

    async fn run_value(
        &self,
        doc: &Value,
        now: DateTime<Utc>,
    ) -> Result<CatalogReport, CatalogError> {
        let mut problems = Problems::default();
        let document = document::read(doc, &mut problems);
        let mut unit = self.store.begin().await.map_err(CatalogError::store)?;
        match import(&mut *unit, &document, problems, now).await {
            Ok(report) => {
                unit.commit().await.map_err(CatalogError::store)?;
                Ok(report)
            }
            Err(e) => {
                // The import's error is what the caller needs; a failed rollback discards the writes all the same.
                let _discarded = unit.rollback().await;
                Err(e)
            }
        }
    }
}

/// Stored rows the document refers to but does not contain, by key.
#[derive(Default)]
struct Stored {
    companies: HashMap<String, CompanyId>,
    groups: HashMap<String, GroupId>,
    campaigns: HashMap<String, (CampaignId, CompanyId)>,
    users: HashMap<String, User>,
}

/// Keys the document names but does not define, deduplicated in first-seen order.
fn missing<'a>(refs: impl Iterator<Item = &'a Ref>, known: impl Fn(&str) -> bool) -> Vec<Key> {
    let mut seen = HashSet::new();
    refs.filter(|r| !known(r.key.as_str()) && seen.insert(r.key.as_str()))
        .map(|r| r.key.clone())
        .collect()
}

fn given<T>(f: &Field<T>) -> Option<&T> {
    match f {
        Field::Given(v) => Some(v),
        _ => None,
    }
}

async fn look_up(
    unit: &mut dyn UnitOfWork,
    doc: &Document,
    doc_campaigns: &HashMap<&str, &DraftCampaign>,
) -> Result<Stored, StoreError> {
    let company_refs = doc
        .campaigns
        .iter()
        .filter_map(|c| c.company.as_ref())
        .chain(doc.instances.iter().filter_map(|i| given(&i.company)))
        .chain(doc.users.iter().filter_map(|u| given(&u.company)));
    let companies = missing(company_refs, |k| doc.company_keys.contains_key(k));
    let groups = missing(doc.campaigns.iter().filter_map(|c| c.group.as_ref()), |k| {
        doc.group_keys.contains_key(k)
    });
    let campaigns = missing(
        doc.instances.iter().filter_map(|i| given(&i.campaign)),
        |k| doc_campaigns.contains_key(k),
    );
    let emails: Vec<Email> = doc.users.iter().filter_map(|u| u.email.clone()).collect();

    let mut stored = Stored::default();
    for chunk in companies.chunks(CHUNK) {
        for c in unit.companies_by_slug(chunk).await? {
            stored.companies.insert(c.slug.as_str().to_owned(), c.id);
        }
    }
    for chunk in groups.chunks(CHUNK) {
        for g in unit.groups_by_key(chunk).await? {
            stored.groups.insert(g.key.as_str().to_owned(), g.id);
        }
    }
    for chunk in campaigns.chunks(CHUNK) {
        for c in unit.campaigns_by_key(chunk).await? {
            stored
                .campaigns
                .insert(c.key.as_str().to_owned(), (c.id, c.company_id));
        }
    }
    for chunk in emails.chunks(CHUNK) {
        for u in unit.users_by_email(chunk).await? {
            stored.users.insert(u.email.as_str().to_owned(), u);
        }
    }
    Ok(stored)
}

/// Resolves references against the document, then the store; an unknown one is a problem at its path.
struct Resolver<'a> {
    doc: &'a Document,
    doc_campaigns: &'a HashMap<&'a str, &'a DraftCampaign>,
    stored: &'a Stored,
}

impl Resolver<'_> {
    fn company_id(&self, key: &str) -> Option<CompanyId> {
        self.doc
            .company_keys
            .get(key)
            .or_else(|| self.stored.companies.get(key))
            .copied()
    }

    fn company(&self, r: &Ref, problems: &mut Problems) -> Option<CompanyId> {
        let id = self.company_id(r.key.as_str());
        if id.is_none() {
            problems.add(&r.path, format!("unknown company {:?}", r.key.as_str()));
        }
        id
    }

    fn group(&self, r: &Ref, problems: &mut Problems) -> Option<GroupId> {
        let key = r.key.as_str();
        let id = self
            .doc
            .group_keys
            .get(key)
            .or_else(|| self.stored.groups.get(key))
            .copied();
        if id.is_none() {
            problems.add(&r.path, format!("unknown beneficiary group {key:?}"));
        }
        id
    }

    /// The campaign and its company (`None` when the document's campaign names an unknown company, which is
    /// reported there).
    fn campaign(
        &self,
        r: &Ref,
        problems: &mut Problems,
    ) -> Option<(CampaignId, Option<CompanyId>)> {
        let key = r.key.as_str();
        if let Some(c) = self.doc_campaigns.get(key) {
            let company = c
                .company
                .as_ref()
                .and_then(|r| self.company_id(r.key.as_str()));
            return Some((CampaignId::stable(key), company));
        }
        if let Some((id, company)) = self.stored.campaigns.get(key) {
            return Some((*id, Some(*company)));
        }
        problems.add(&r.path, format!("unknown campaign {key:?}"));
        None
    }
}

fn build_campaign(
    d: &DraftCampaign,
    company_id: Option<CompanyId>,
    group_id: Option<GroupId>,
) -> Option<Campaign> {
    let key = d.key.clone()?;
    Some(Campaign {
        id: CampaignId::stable(key.as_str()),
        key,
        name: d.name.clone()?,
        company_id: company_id?,
        beneficiary_group_id: group_id?,
        program_type: d.program_type?,
        start_date: d.start_date?,
        end_date: d.end_date?,
        status: d.status?,
        is_active: d.is_active?,
        target_volunteers: d.target_volunteers?,
        target_beneficiaries: d.target_beneficiaries?,
        max_sessions: d.max_sessions?,
    })
}

fn build_instance(
    d: &DraftInstance,
    r: &Resolver<'_>,
    problems: &mut Problems,
    now: DateTime<Utc>,
) -> Option<ProgramInstance> {
    // Outer `None`: invalid or unknown (reported); inner `None`: not given.
    let campaign = match &d.campaign {
        Field::Given(c) => r.campaign(c, problems).map(Some),
        Field::Absent | Field::Null => Some(None),
        Field::Invalid => None,
    };
    let company = match &d.company {
        Field::Given(c) => r.company(c, problems).map(Some),
        Field::Absent | Field::Null => Some(None),
        Field::Invalid => None,
    };
    // An instance without a company takes its campaign's; one naming both must name the same.
    let company_id = match (campaign, company) {
        (Some(Some((_, Some(theirs)))), Some(Some(ours))) if theirs != ours => {
            if let (Some(c), Some(o)) = (given(&d.campaign), given(&d.company)) {
                problems.add(
                    &o.path,
                    format!(
                        "company {:?} is not the company of campaign {:?}",
                        o.key.as_str(),
                        c.key.as_str()
                    ),
                );
            }
            None
        }
        (_, Some(Some(ours))) => Some(Some(ours)),
        (Some(Some((_, theirs))), Some(None)) => theirs.map(Some),
        (Some(None), Some(None)) => Some(None),
        _ => None,
    };
    let campaign_id = campaign?.map(|(id, _)| id);
    let slug = d.slug.clone()?;
    Some(ProgramInstance {
        id: InstanceId::stable(&slug),
        slug,
        program_name: d.program_name.clone()?,
        program_type: d.program_type?,
        company_id: company_id?,
        campaign_id,
        start_date: d.start_date?,
        end_date: d.end_date?,
        status: d.status?,
        external_system: d.external_system.clone()?,
        created_at: now,
    })
}

/// An optional field of a user: absent keeps the stored value, `null` clears it.
fn kept<T: Clone>(field: &Field<T>, stored: Option<&Option<T>>) -> Option<Option<T>> {
    match field {
        Field::Absent => Some(stored.cloned().flatten()),
        Field::Null => Some(None),
        Field::Given(v) => Some(Some(v.clone())),
        Field::Invalid => None,
    }
}

fn build_user(d: &DraftUser, r: &Resolver<'_>, problems: &mut Problems) -> Option<User> {
    // Resolved first, so that an unknown company is reported whatever else is wrong with the entry.
    let named_company = given(&d.company).map(|c| r.company(c, problems));
    let email = d.email.clone()?;
    let stored = r.stored.users.get(email.as_str());
    let company_id = match (&d.company, named_company) {
        (_, Some(found)) => Some(found?),
        (Field::Absent, None) => stored.and_then(|u| u.company_id),
        _ => None,
    };
    if matches!(d.company, Field::Invalid) {
        return None;
    }
    let tags = match &d.tags {
        Field::Absent => stored.map(|u| u.tags.clone()).unwrap_or_default(),
        Field::Null => Tags::default(),
        Field::Given(t) => t.clone(),
        Field::Invalid => return None,
    };
    Some(User {
        id: stored.map_or_else(|| UserId::stable(&email), |u| u.id),
        email,
        role: d.role?,
        first_name: kept(&d.first_name, stored.map(|u| &u.first_name))?,
        last_name: kept(&d.last_name, stored.map(|u| &u.last_name))?,
        company_id,
        tags,
        journey_flags: stored.map(|u| u.journey_flags.clone()).unwrap_or_default(),
    })
}

/// Validates the references, then writes everything, or nothing when there is any problem.
async fn import(
    unit: &mut dyn UnitOfWork,
    doc: &Document,
    mut problems: Problems,
    now: DateTime<Utc>,
) -> Result<CatalogReport, CatalogError> {
    let doc_campaigns: HashMap<&str, &DraftCampaign> = doc
        .campaigns
        .iter()
        .filter_map(|c| c.key.as_ref().map(|k| (k.as_str(), c)))
        .collect();
    let stored = look_up(unit, doc, &doc_campaigns)
        .await
        .map_err(CatalogError::store)?;
    let r = Resolver {
        doc,
        doc_campaigns: &doc_campaigns,
        stored: &stored,
    };

    let campaigns: Vec<Campaign> = doc
        .campaigns
        .iter()
        .filter_map(|c| {
            let company = c.company.as_ref().and_then(|x| r.company(x, &mut problems));
            let group = c.group.as_ref().and_then(|x| r.group(x, &mut problems));
            build_campaign(c, company, group)
        })
        .collect();
    let instances: Vec<ProgramInstance> = doc
        .instances
        .iter()
        .filter_map(|i| build_instance(i, &r, &mut problems, now))
        .collect();
    let users: Vec<User> = doc
        .users
        .iter()
        .filter_map(|u| build_user(u, &r, &mut problems))
        .collect();
    if problems.total > 0 {
        return Err(CatalogError::Invalid {
            problems: problems.kept,
            total: problems.total,
        });
    }

    let mut report = CatalogReport::default();
    for chunk in doc.companies.chunks(CHUNK) {
        report.companies.add(
            unit.upsert_companies(chunk)
                .await
                .map_err(CatalogError::store)?,
        );
    }
    for chunk in doc.groups.chunks(CHUNK) {
        report.beneficiary_groups.add(
            unit.upsert_groups(chunk)
                .await
                .map_err(CatalogError::store)?,
        );
    }
    for chunk in campaigns.chunks(CHUNK) {
        report.campaigns.add(
            unit.upsert_campaigns(chunk)
                .await
                .map_err(CatalogError::store)?,
        );
    }
    for chunk in instances.chunks(CHUNK) {
        report.program_instances.add(
            unit.upsert_instances(chunk)
                .await
                .map_err(CatalogError::store)?,
        );
    }
    for chunk in users.chunks(CHUNK) {
        report.users.add(
            unit.upsert_users(chunk)
                .await
                .map_err(CatalogError::store)?,
        );
    }
    Ok(report)
}
