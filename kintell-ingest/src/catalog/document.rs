//! The catalogue document walked field by field into draft rows, every problem recorded with its JSON path.
//!
//! References between rows (a campaign's company, an instance's campaign, …) stay keys here; the import resolves
//! them against the document and the store.

use super::Problem;
use crate::domain::{
    BeneficiaryGroup, CampaignStatus, Company, CompanyId, Email, GroupId, GroupType,
    InstanceStatus, Key, Name, PersonName, ProgramSlug, ProgramType, Tags, UserRole,
};
use chrono::NaiveDate;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt::Display;

/// At most this many problems are kept (all are counted): enough to fix a document in a few rounds, short enough
/// to read.
pub const MAX_PROBLEMS: usize = 20;

/// The longest `external_system` the schema stores.
const EXTERNAL_SYSTEM_MAX: usize = 50;

/// The problems found so far: the first [`MAX_PROBLEMS`], and how many in all.
#[derive(Debug, Default)]
pub(super) struct Problems {
    pub(super) kept: Vec<Problem>,
    pub(super) total: usize,
}

impl Problems {
    pub(super) fn add(&mut self, path: impl Into<String>, message: impl Display) {
        self.total += 1;
        if self.kept.len() < MAX_PROBLEMS {
            self.kept.push(Problem {
                path: path.into(),
                message: message.to_string(),
            });
        }
    }
}

/// A reference to another row by its key, with the path of the field that names it.
#[derive(Debug, Clone)]
pub(super) struct Ref {
    pub(super) key: Key,
    pub(super) path: String,
}

/// An optional field: absent, `null`, a valid value, or invalid (already reported).
#[derive(Debug, Clone)]
pub(super) enum Field<T> {
    Absent,
    Null,
    Given(T),
    Invalid,
}

impl<T> Field<T> {
    /// `Some(None)` when absent or null, `Some(Some(v))` when given, `None` when invalid.
    pub(super) fn value(self) -> Option<Option<T>> {
        match self {
            Field::Absent | Field::Null => Some(None),
            Field::Given(v) => Some(Some(v)),
            Field::Invalid => None,
        }
    }
}

/// A campaign entry; `None` fields were invalid (and reported).
#[derive(Debug)]
pub(super) struct DraftCampaign {
    pub(super) key: Option<Key>,
    pub(super) name: Option<Name>,
    pub(super) company: Option<Ref>,
    pub(super) group: Option<Ref>,
    pub(super) program_type: Option<Option<ProgramType>>,
    pub(super) start_date: Option<NaiveDate>,
    pub(super) end_date: Option<NaiveDate>,
    pub(super) status: Option<CampaignStatus>,
    pub(super) is_active: Option<bool>,
    pub(super) target_volunteers: Option<i32>,
    pub(super) target_beneficiaries: Option<i32>,
    pub(super) max_sessions: Option<Option<i32>>,
}

/// A programme instance entry.
#[derive(Debug)]
pub(super) struct DraftInstance {
    pub(super) slug: Option<ProgramSlug>,
    pub(super) campaign: Field<Ref>,
    pub(super) company: Field<Ref>,
    pub(super) program_type: Option<ProgramType>,
    pub(super) program_name: Option<Name>,
    pub(super) start_date: Option<NaiveDate>,
    pub(super) end_date: Option<Option<NaiveDate>>,
    pub(super) status: Option<InstanceStatus>,
    pub(super) external_system: Option<Option<String>>,
}

/// A user entry; absent optional fields keep what the store holds.
#[derive(Debug)]
pub(super) struct DraftUser {
    pub(super) email: Option<Email>,
    pub(super) role: Option<UserRole>,
    pub(super) company: Field<Ref>,
    pub(super) tags: Field<Tags>,
    pub(super) first_name: Field<PersonName>,
    pub(super) last_name: Field<PersonName>,
}

/// The document: complete companies and groups, drafts of the rest.
#[derive(Debug, Default)]
pub(super) struct Document {
    pub(super) companies: Vec<Company>,
    /// Every company key the document names, valid entry or not, so that one bad entry does not also make
    /// every reference to it "unknown".
    pub(super) company_keys: HashMap<String, CompanyId>,
    pub(super) groups: Vec<BeneficiaryGroup>,
    pub(super) group_keys: HashMap<String, GroupId>,
    pub(super) campaigns: Vec<DraftCampaign>,
    pub(super) instances: Vec<DraftInstance>,
    pub(super) users: Vec<DraftUser>,
}

/// The sections a document may have, in the order they are written.
const SECTIONS: [&str; 5] = [
    "companies",
    "beneficiary_groups",
    "campaigns",
    "program_instances",
    "users",
];

/// Walks a parsed document; problems go to `problems`.
pub(super) fn read(doc: &Value, problems: &mut Problems) -> Document {
    let mut out = Document::default();
    let Value::Object(top) = doc else {
        problems.add("$", format!("expected an object, found {}", kind(doc)));
        return out;
    };
    for name in top.keys() {
        if !SECTIONS.contains(&name.as_str()) {
            problems.add(
                member("$", name),
                format!("unknown section (expected one of: {})", SECTIONS.join(", ")),
            );
        }
    }
    let mut seen = Seen::default();
    for_each_entry(top, "companies", problems, |e, p| {
        read_company(e, p, &mut seen, &mut out);
    });
    for_each_entry(top, "beneficiary_groups", problems, |e, p| {
        read_group(e, p, &mut seen, &mut out);
    });
    for_each_entry(top, "campaigns", problems, |e, p| {
        let c = read_campaign(e, p, &mut seen);
        out.campaigns.push(c);
    });
    for_each_entry(top, "program_instances", problems, |e, p| {
        let i = read_instance(e, p, &mut seen);
        out.instances.push(i);
    });
    for_each_entry(top, "users", problems, |e, p| {
        let u = read_user(e, p, &mut seen);
        out.users.push(u);
    });
    out
}

/// Where each key was first seen, per section, to report duplicates.
#[derive(Default)]
struct Seen {
    companies: HashMap<String, String>,
    groups: HashMap<String, String>,
    campaigns: HashMap<String, String>,
    instances: HashMap<String, String>,
    users: HashMap<String, String>,
}

/// Records `key` at `path`; reports it when an earlier entry has it.
fn first_time(
    seen: &mut HashMap<String, String>,
    key: &str,
    what: &str,
    path: &str,
    problems: &mut Problems,
) -> bool {
    match seen.get(key) {
        Some(first) => {
            problems.add(path, format!("duplicate {what} {key:?} (first at {first})"));
            false
        }
        None => {
            seen.insert(key.to_owned(), path.to_owned());
            true
        }
    }
}

fn for_each_entry(
    top: &Map<String, Value>,
    section: &str,
    problems: &mut Problems,
    mut f: impl FnMut(&Entry<'_>, &mut Problems),
) {
    let path = member("$", section);
    match top.get(section) {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let item_path = format!("{path}[{i}]");
                match item {
                    Value::Object(map) => {
                        let entry = Entry {
                            map,
                            path: item_path,
                        };
                        f(&entry, problems);
                    }
                    other => problems.add(
                        item_path,
                        format!("expected an object, found {}", kind(other)),
                    ),
                }
            }
        }
        Some(other) => problems.add(path, format!("expected an array, found {}", kind(other))),
    }
}

/// One object of a section.
struct Entry<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Entry<'a> {
    fn field_path(&self, name: &str) -> String {
        member(&self.path, name)
    }

    /// Reports every field not in `known`.
    fn only(&self, known: &[&str], problems: &mut Problems) {
        for name in self.map.keys() {
            if !known.contains(&name.as_str()) {
                problems.add(
                    self.field_path(name),
                    format!("unknown field (expected one of: {})", known.join(", ")),
                );
            }
        }
    }

    /// A field that must be given and not null.
    fn required<T>(
        &self,
        name: &str,
        problems: &mut Problems,
        parse: impl FnOnce(&'a Value) -> Result<T, String>,
    ) -> Option<T> {
        match self.map.get(name) {
            None | Some(Value::Null) => {
                problems.add(self.field_path(name), "is required");
                None
            }
            Some(v) => match parse(v) {
                Ok(t) => Some(t),
                Err(m) => {
                    problems.add(self.field_path(name), m);
                    None
                }
            },
        }
    }

    /// A field that may be absent or null.
    fn optional<T>(
        &self,
        name: &str,
        problems: &mut Problems,
        parse: impl FnOnce(&'a Value) -> Result<T, String>,
    ) -> Field<T> {
        match self.map.get(name) {
            None => Field::Absent,
            Some(Value::Null) => Field::Null,
            Some(v) => match parse(v) {
                Ok(t) => Field::Given(t),
                Err(m) => {
                    problems.add(self.field_path(name), m);
                    Field::Invalid
                }
            },
        }
    }

    /// An optional field with a default for absent and null.
    fn defaulted<T>(
        &self,
        name: &str,
        default: T,
        problems: &mut Problems,
        parse: impl FnOnce(&'a Value) -> Result<T, String>,
    ) -> Option<T> {
        self.optional(name, problems, parse)
            .value()
            .map(|v| v.unwrap_or(default))
    }

    /// A reference to another row by key.
    fn reference(&self, name: &str, problems: &mut Problems) -> Option<Ref> {
        self.required(name, problems, |v| text(v, Key::parse))
            .map(|key| Ref {
                key,
                path: self.field_path(name),
            })
    }

    fn optional_reference(&self, name: &str, problems: &mut Problems) -> Field<Ref> {
        match self.optional(name, problems, |v| text(v, Key::parse)) {
            Field::Given(key) => Field::Given(Ref {
                key,
                path: self.field_path(name),
            }),
            Field::Absent => Field::Absent,
            Field::Null => Field::Null,
            Field::Invalid => Field::Invalid,
        }
    }
}

fn read_company(e: &Entry<'_>, problems: &mut Problems, seen: &mut Seen, out: &mut Document) {
    e.only(&["key", "name"], problems);
    let key = e.required("key", problems, |v| text(v, Key::parse));
    let name = e.required("name", problems, |v| text(v, Name::parse));
    let Some(key) = key else { return };
    if !first_time(
        &mut seen.companies,
        key.as_str(),
        "company",
        &e.field_path("key"),
        problems,
    ) {
        return;
    }
    let id = CompanyId::stable(key.as_str());
    out.company_keys.insert(key.as_str().to_owned(), id);
    if let Some(name) = name {
        out.companies.push(Company {
            id,
            slug: key,
            name,
        });
    }
}

fn read_group(e: &Entry<'_>, problems: &mut Problems, seen: &mut Seen, out: &mut Document) {
    e.only(
        &["key", "name", "group_type", "tags", "is_active"],
        problems,
    );
    let key = e.required("key", problems, |v| text(v, Key::parse));
    let name = e.required("name", problems, |v| text(v, Name::parse));
    let group_type = e.required("group_type", problems, |v| text(v, GroupType::parse));
    let tags = e.defaulted("tags", Tags::default(), problems, tags);
    let is_active = e.defaulted("is_active", true, problems, boolean);
    let Some(key) = key else { return };
    if !first_time(
        &mut seen.groups,
        key.as_str(),
        "beneficiary group",
        &e.field_path("key"),
        problems,
    ) {
        return;
    }
    let id = GroupId::stable(key.as_str());
    out.group_keys.insert(key.as_str().to_owned(), id);
    if let (Some(name), Some(group_type), Some(tags), Some(is_active)) =
        (name, group_type, tags, is_active)
    {
        out.groups.push(BeneficiaryGroup {
            id,
            key,
            name,
            group_type,
            tags,
            is_active,
        });
    }
}

fn read_campaign(e: &Entry<'_>, problems: &mut Problems, seen: &mut Seen) -> DraftCampaign {
    e.only(
        &[
            "key",
            "name",
            "company",
            "beneficiary_group",
            "program_type",
            "start_date",
            "end_date",
            "status",
            "is_active",
            "target_volunteers",
            "target_beneficiaries",
            "max_sessions",
        ],
        problems,
    );
    let key = e
        .required("key", problems, |v| text(v, Key::parse))
        .filter(|k| {
            first_time(
                &mut seen.campaigns,
                k.as_str(),
                "campaign",
                &e.field_path("key"),
                problems,
            )
        });
    let name = e.required("name", problems, |v| text(v, Name::parse));
    let company = e.reference("company", problems);
    let group = e.reference("beneficiary_group", problems);
    let program_type = e
        .optional("program_type", problems, |v| text(v, ProgramType::parse))
        .value();
    let start_date = e.required("start_date", problems, date);
    let end_date = e.required("end_date", problems, date);
    let end_date = match (start_date, end_date) {
        (Some(start), Some(end)) if end < start => {
            problems.add(
                e.field_path("end_date"),
                format!("{end} is before start_date {start}"),
            );
            None
        }
        (_, end) => end,
    };
    DraftCampaign {
        key,
        name,
        company,
        group,
        program_type,
        start_date,
        end_date,
        status: e.defaulted("status", CampaignStatus::Draft, problems, |v| {
            text(v, CampaignStatus::parse)
        }),
        is_active: e.defaulted("is_active", true, problems, boolean),
        target_volunteers: e.defaulted("target_volunteers", 0, problems, count),
        target_beneficiaries: e.defaulted("target_beneficiaries", 0, problems, count),
        max_sessions: e.optional("max_sessions", problems, count).value(),
    }
}

fn read_instance(e: &Entry<'_>, problems: &mut Problems, seen: &mut Seen) -> DraftInstance {
    e.only(
        &[
            "slug",
            "campaign",
            "company",
            "program_type",
            "program_name",
            "start_date",
            "end_date",
            "status",
            "external_system",
        ],
        problems,
    );
    let slug = e
        .required("slug", problems, |v| text(v, ProgramSlug::parse))
        .filter(|s| {
            first_time(
                &mut seen.instances,
                s.as_str(),
                "programme instance",
                &e.field_path("slug"),
                problems,
            )
        });
    let campaign = e.optional_reference("campaign", problems);
    let company = e.optional_reference("company", problems);
    let program_type = e.required("program_type", problems, |v| text(v, ProgramType::parse));
    let program_name = e.required("program_name", problems, |v| text(v, Name::parse));
    let start_date = e.required("start_date", problems, date);
    let end_date = e.optional("end_date", problems, date).value();
    let end_date = match (start_date, end_date) {
        (Some(start), Some(Some(end))) if end < start => {
            problems.add(
                e.field_path("end_date"),
                format!("{end} is before start_date {start}"),
            );
            None
        }
        (_, end) => end,
    };
    DraftInstance {
        slug,
        campaign,
        company,
        program_type,
        program_name,
        start_date,
        end_date,
        status: e.defaulted("status", InstanceStatus::Active, problems, |v| {
            text(v, InstanceStatus::parse)
        }),
        external_system: e
            .optional("external_system", problems, external_system)
            .value(),
    }
}

fn read_user(e: &Entry<'_>, problems: &mut Problems, seen: &mut Seen) -> DraftUser {
    e.only(
        &[
            "email",
            "role",
            "company",
            "tags",
            "first_name",
            "last_name",
        ],
        problems,
    );
    let email = e
        .required("email", problems, |v| text(v, Email::parse))
        .filter(|m| {
            first_time(
                &mut seen.users,
                m.as_str(),
                "user",
                &e.field_path("email"),
                problems,
            )
        });
    DraftUser {
        email,
        role: e.required("role", problems, |v| text(v, UserRole::parse)),
        company: e.optional_reference("company", problems),
        tags: e.optional("tags", problems, tags),
        first_name: e.optional("first_name", problems, |v| text(v, PersonName::parse)),
        last_name: e.optional("last_name", problems, |v| text(v, PersonName::parse)),
    }
}

/// `$.a.b`, or `$.a["odd name"]` when the name is not a plain identifier.
fn member(path: &str, name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!("{path}.{name}")
    } else {
        format!("{path}[{}]", Value::String(name.to_owned()))
    }
}

/// What a JSON value is, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn text<T, E: Display>(v: &Value, parse: impl FnOnce(&str) -> Result<T, E>) -> Result<T, String> {
    match v {
        Value::String(s) => parse(s).map_err(|e| e.to_string()),
        other => Err(format!("expected a string, found {}", kind(other))),
    }
}

fn date(v: &Value) -> Result<NaiveDate, String> {
    text(v, |s| {
        NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .map_err(|_| format!("{s:?} is not a date (expected YYYY-MM-DD)"))
    })
}

fn boolean(v: &Value) -> Result<bool, String> {
    v.as_bool()
        .ok_or_else(|| format!("expected true or false, found {}", kind(v)))
}

/// A whole number from 0 to `i32::MAX` (targets and capacities).
fn count(v: &Value) -> Result<i32, String> {
    let n = match v {
        Value::Number(n) => n,
        other => return Err(format!("expected a whole number, found {}", kind(other))),
    };
    match n.as_i64() {
        Some(i) if i < 0 => Err(format!("{i} is negative")),
        Some(i) => i32::try_from(i).map_err(|_| format!("{i} is too large")),
        None if n.is_u64() => Err(format!("{n} is too large")),
        None => Err(format!("{n} is not a whole number")),
    }
}

fn tags(v: &Value) -> Result<Tags, String> {
    let Value::Array(items) = v else {
        return Err(format!("expected an array of strings, found {}", kind(v)));
    };
    let mut raw = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::String(s) => raw.push(s.as_str()),
            other => return Err(format!("tag {i} is {}, not a string", kind(other))),
        }
    }
    Ok(Tags::from_raw(raw))
}

fn external_system(v: &Value) -> Result<String, String> {
    text(v, |s| {
        let t = s.trim();
        match t.chars().count() {
            0 => Err("external system is empty".to_owned()),
            n if n > EXTERNAL_SYSTEM_MAX => Err(format!(
                "external system is {n} characters long, more than the {EXTERNAL_SYSTEM_MAX} allowed"
            )),
            _ => Ok(t.to_owned()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths_quote_odd_names() {
        assert_eq!(member("$", "companies"), "$.companies");
        assert_eq!(member("$.a[0]", "max sessions"), "$.a[0][\"max sessions\"]");
        assert_eq!(member("$", "9lives"), "$[\"9lives\"]");
        assert_eq!(member("$", ""), "$[\"\"]");
    }

    #[test]
    fn counts_are_whole_and_not_negative() {
        assert_eq!(count(&serde_json::json!(500)), Ok(500));
        assert_eq!(count(&serde_json::json!(0)), Ok(0));
        for (v, msg) in [
            (serde_json::json!(-1), "-1 is negative"),
            (serde_json::json!(2.5), "2.5 is not a whole number"),
            (
                serde_json::json!(3_000_000_000u64),
                "3000000000 is too large",
            ),
            (
                serde_json::json!(u64::MAX),
                "18446744073709551615 is too large",
            ),
            (
                serde_json::json!("5"),
                "expected a whole number, found a string",
            ),
        ] {
            assert_eq!(count(&v), Err(msg.to_owned()));
        }
    }

    #[test]
    fn problems_keep_the_first_twenty_and_count_all() {
        let mut p = Problems::default();
        for i in 0..25 {
            p.add(format!("$[{i}]"), "bad");
        }
        assert_eq!(p.total, 25);
        assert_eq!(p.kept.len(), MAX_PROBLEMS);
        assert_eq!(p.kept.last().map(|x| x.path.as_str()), Some("$[19]"));
    }
}
