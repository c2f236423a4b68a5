//! Formats, their columns and aliases, header normalisation, delimiter sniffing and format detection.

use std::fmt;

use crate::domain::{EntityKind, ProgramType};

use super::errors::{FileError, FileErrorCode};

/// One of the accepted input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FormatId {
    /// The Kintell connector's live export (`date`, `duration_min`, 1–5 ratings).
    KintellSessions,
    /// "Mentors for Ukraine" sessions.
    MentorsV1,
    /// "Language for Ukraine" sessions.
    LanguageV1,
    /// "Language for Ukraine" sessions with a `metadata` column.
    LanguageV1_1,
    /// The Kintell users export.
    KintellUsers,
    /// Buddy matches.
    BuddyMatches,
    /// Upskilling course completions.
    CourseCompletions,
}

impl FormatId {
    /// Every format, in detection order.
    pub const ALL: &'static [FormatId] = &[
        FormatId::KintellSessions,
        FormatId::MentorsV1,
        FormatId::LanguageV1,
        FormatId::LanguageV1_1,
        FormatId::KintellUsers,
        FormatId::BuddyMatches,
        FormatId::CourseCompletions,
    ];

    /// The id stored in `ingestion_batches.format`.
    pub const fn as_str(self) -> &'static str {
        match self {
            FormatId::KintellSessions => "kintell-sessions",
            FormatId::MentorsV1 => "mentors-v1",
            FormatId::LanguageV1 => "language-v1",
            FormatId::LanguageV1_1 => "language-v1.1",
            FormatId::KintellUsers => "kintell-users",
            FormatId::BuddyMatches => "buddy-matches",
            FormatId::CourseCompletions => "course-completions",
        }
    }

    /// Parses an id (case-insensitive, trimmed).
    ///
    /// # Errors
    /// [`UnknownFormatId`] naming the accepted ids.
    pub fn parse(input: &str) -> Result<Self, UnknownFormatId> {
        let t = input.trim();
        Self::ALL
            .iter()
            .copied()
            .find(|f| f.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| UnknownFormatId(input.to_owned()))
    }

    /// The entity its rows belong to.
    pub const fn entity(self) -> EntityKind {
        match self {
            FormatId::KintellSessions
            | FormatId::MentorsV1
            | FormatId::LanguageV1
            | FormatId::LanguageV1_1 => EntityKind::KintellSessions,
            FormatId::KintellUsers => EntityKind::KintellUsers,
            FormatId::BuddyMatches => EntityKind::BuddyMatches,
            FormatId::CourseCompletions => EntityKind::CourseCompletions,
        }
    }

    /// The batch's `program_type` when neither the import nor its programme instance gives one.
    pub const fn default_program_type(self) -> ProgramType {
        match self {
            FormatId::KintellSessions | FormatId::KintellUsers => ProgramType::Kintell,
            FormatId::MentorsV1 => ProgramType::MentorsUkraine,
            FormatId::LanguageV1 | FormatId::LanguageV1_1 => ProgramType::LanguageUkraine,
            FormatId::BuddyMatches => ProgramType::Buddy,
            FormatId::CourseCompletions => ProgramType::Upskilling,
        }
    }

    /// The formats of an entity, in detection order.
    pub fn of_entity(entity: EntityKind) -> impl Iterator<Item = FormatId> {
        Self::ALL
            .iter()
            .copied()
            .filter(move |f| f.entity() == entity)
    }

    /// The required columns, by canonical name.
    pub fn required_columns(self) -> impl Iterator<Item = &'static str> {
        spec(self)
            .iter()
            .filter(|c| c.required)
            .map(|c| c.column.name())
    }

    /// Every column, by canonical name, in the order this document's specification lists them.
    pub fn columns(self) -> impl Iterator<Item = &'static str> {
        spec(self).iter().map(|c| c.column.name())
    }
}

impl fmt::Display for FormatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for FormatId {
    type Err = UnknownFormatId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for FormatId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for FormatId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A format id that names no format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a format (expected one of: kintell-sessions, mentors-v1, language-v1, language-v1.1, kintell-users, buddy-matches, course-completions)"
)]
pub struct UnknownFormatId(pub String);

/// The field delimiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delimiter {
    /// `,`
    Comma,
    /// `;`
    Semicolon,
    /// TAB
    Tab,
}

impl Delimiter {
    /// Candidates in tie-break order.
    pub const ALL: &'static [Delimiter] = &[Delimiter::Comma, Delimiter::Semicolon, Delimiter::Tab];

    /// The byte.
    pub const fn byte(self) -> u8 {
        match self {
            Delimiter::Comma => b',',
            Delimiter::Semicolon => b';',
            Delimiter::Tab => b'\t',
        }
    }

    /// The option's spelling: `,`, `;` or `tab`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Delimiter::Comma => ",",
            Delimiter::Semicolon => ";",
            Delimiter::Tab => "tab",
        }
    }

    /// Parses `,`, `;`, `tab` (any case) or a TAB character.
    ///
    /// # Errors
    /// [`UnknownDelimiter`] for anything else.
    pub fn parse(input: &str) -> Result<Self, UnknownDelimiter> {
        match input {
            "," | "comma" => Ok(Delimiter::Comma),
            ";" | "semicolon" => Ok(Delimiter::Semicolon),
            "\t" => Ok(Delimiter::Tab),
            t if t.trim().eq_ignore_ascii_case("tab") => Ok(Delimiter::Tab),
            _ => Err(UnknownDelimiter(input.to_owned())),
        }
    }
}

impl fmt::Display for Delimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Delimiter {
    type Err = UnknownDelimiter;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for Delimiter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Delimiter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A delimiter option that is not `,`, `;` or `tab`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a delimiter (expected `,`, `;` or `tab`)")]
pub struct UnknownDelimiter(pub String);

/// Defines the canonical columns of all formats.
macro_rules! columns {
    ($($variant:ident => $name:literal),+ $(,)?) => {
        /// A canonical column of some format.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub(crate) enum Column {
            $($variant),+
        }

        impl Column {
            /// How many columns there are.
            pub(crate) const COUNT: usize = [$($name),+].len();

            /// The canonical name.
            pub(crate) const fn name(self) -> &'static str {
                match self {
                    $(Column::$variant => $name),+
                }
            }
        }
    };
}

columns! {
    SessionId => "session_id",
    SessionType => "session_type",
    ParticipantEmail => "participant_email",
    VolunteerEmail => "volunteer_email",
    MentorEmail => "mentor_email",
    Date => "date",
    DurationMin => "duration_min",
    ScheduledAt => "scheduled_at",
    CompletedAt => "completed_at",
    DurationMinutes => "duration_minutes",
    Rating => "rating",
    FeedbackText => "feedback_text",
    LanguageLevel => "language_level",
    Topics => "topics",
    Metadata => "metadata",
    FocusArea => "focus_area",
    GoalsDiscussed => "goals_discussed",
    ProgramRef => "program_ref",
    Email => "email",
    Name => "name",
    LinkedinUrl => "linkedin_url",
    VerificationStatus => "verification_status",
    RoleWhenJoined => "role_when_joined",
    GrantAccess => "grant_access",
    JoinedKgAt => "joined_kg_at",
    Company => "company",
    Tags => "tags",
    BuddyEmail => "buddy_email",
    MatchedAt => "matched_at",
    Status => "status",
    Language => "language",
    Interests => "interests",
    Location => "location",
    MatchId => "match_id",
    EndedAt => "ended_at",
    EndReason => "end_reason",
    UserEmail => "user_email",
    Provider => "provider",
    CourseId => "course_id",
    CourseName => "course_name",
    FinalScore => "final_score",
    CredentialRef => "credential_ref",
    // Fields of the webhook bodies only (no file format has them).
    BookingId => "booking_id",
    RatingId => "rating_id",
    FromRole => "from_role",
    CreatedAt => "created_at",
}

/// A column of a format.
pub(crate) struct ColumnSpec {
    pub(crate) column: Column,
    pub(crate) required: bool,
    pub(crate) aliases: &'static [&'static str],
}

const fn req(column: Column) -> ColumnSpec {
    ColumnSpec {
        column,
        required: true,
        aliases: &[],
    }
}

const fn opt(column: Column) -> ColumnSpec {
    ColumnSpec {
        column,
        required: false,
        aliases: &[],
    }
}

const PROGRAM_REF: ColumnSpec = ColumnSpec {
    column: Column::ProgramRef,
    required: false,
    aliases: &["program_instance", "cohort_ref"],
};

const KINTELL_SESSIONS: &[ColumnSpec] = &[
    req(Column::SessionId),
    req(Column::SessionType),
    req(Column::ParticipantEmail),
    req(Column::VolunteerEmail),
    req(Column::Date),
    req(Column::DurationMin),
    opt(Column::Rating),
    opt(Column::FeedbackText),
    opt(Column::LanguageLevel),
    PROGRAM_REF,
];

const MENTORS_V1: &[ColumnSpec] = &[
    req(Column::SessionId),
    req(Column::ParticipantEmail),
    ColumnSpec {
        column: Column::MentorEmail,
        required: true,
        aliases: &["volunteer_email"],
    },
    req(Column::ScheduledAt),
    opt(Column::CompletedAt),
    opt(Column::DurationMinutes),
    opt(Column::Rating),
    opt(Column::FeedbackText),
    opt(Column::FocusArea),
    opt(Column::GoalsDiscussed),
    PROGRAM_REF,
];

const LANGUAGE_V1: &[ColumnSpec] = &[
    req(Column::SessionId),
    req(Column::ParticipantEmail),
    req(Column::VolunteerEmail),
    req(Column::ScheduledAt),
    opt(Column::CompletedAt),
    opt(Column::DurationMinutes),
    opt(Column::Rating),
    opt(Column::FeedbackText),
    opt(Column::LanguageLevel),
    opt(Column::Topics),
    PROGRAM_REF,
];

const LANGUAGE_V1_1: &[ColumnSpec] = &[
    req(Column::SessionId),
    req(Column::ParticipantEmail),
    req(Column::VolunteerEmail),
    req(Column::ScheduledAt),
    opt(Column::CompletedAt),
    opt(Column::DurationMinutes),
    opt(Column::Rating),
    opt(Column::FeedbackText),
    opt(Column::LanguageLevel),
    opt(Column::Topics),
    opt(Column::Metadata),
    PROGRAM_REF,
];

const KINTELL_USERS: &[ColumnSpec] = &[
    req(Column::Email),
    opt(Column::Name),
    opt(Column::LinkedinUrl),
    opt(Column::VerificationStatus),
    opt(Column::RoleWhenJoined),
    opt(Column::GrantAccess),
    opt(Column::JoinedKgAt),
    ColumnSpec {
        column: Column::Company,
        required: false,
        aliases: &["company_slug"],
    },
    opt(Column::Tags),
];

const BUDDY_MATCHES: &[ColumnSpec] = &[
    req(Column::ParticipantEmail),
    req(Column::BuddyEmail),
    req(Column::MatchedAt),
    opt(Column::Status),
    opt(Column::Language),
    opt(Column::Interests),
    opt(Column::Location),
    opt(Column::MatchId),
    opt(Column::EndedAt),
    opt(Column::EndReason),
];

const COURSE_COMPLETIONS: &[ColumnSpec] = &[
    req(Column::UserEmail),
    req(Column::Provider),
    req(Column::CourseId),
    opt(Column::CourseName),
    req(Column::CompletedAt),
    opt(Column::FinalScore),
    opt(Column::CredentialRef),
];

/// The columns of a format.
pub(crate) const fn spec(format: FormatId) -> &'static [ColumnSpec] {
    match format {
        FormatId::KintellSessions => KINTELL_SESSIONS,
        FormatId::MentorsV1 => MENTORS_V1,
        FormatId::LanguageV1 => LANGUAGE_V1,
        FormatId::LanguageV1_1 => LANGUAGE_V1_1,
        FormatId::KintellUsers => KINTELL_USERS,
        FormatId::BuddyMatches => BUDDY_MATCHES,
        FormatId::CourseCompletions => COURSE_COMPLETIONS,
    }
}

/// The column of `format` that the normalised header name `name` denotes.
pub(crate) fn lookup(format: FormatId, name: &str) -> Option<Column> {
    spec(format)
        .iter()
        .find(|c| c.column.name() == name || c.aliases.contains(&name))
        .map(|c| c.column)
}

/// Normalises a header name: trimmed, lower-cased, spaces and hyphens turned into `_`.
pub fn normalise_header_name(name: &str) -> String {
    name.trim_start_matches('\u{feff}')
        .trim()
        .chars()
        .map(|c| if c == ' ' || c == '-' { '_' } else { c })
        .flat_map(char::to_lowercase)
        .collect()
}

/// The formats an import may use, given its options.
pub(crate) fn candidates(entity: Option<EntityKind>, format: Option<FormatId>) -> Vec<FormatId> {
    match (format, entity) {
        (Some(f), _) => vec![f],
        (None, Some(e)) => FormatId::of_entity(e).collect(),
        (None, None) => FormatId::ALL.to_vec(),
    }
}

/// How many of `names` some candidate format recognises.
pub(crate) fn recognised(names: &[String], formats: &[FormatId]) -> usize {
    names
        .iter()
        .filter(|n| formats.iter().any(|f| lookup(*f, n).is_some()))
        .count()
}

/// The required columns of `format` that `names` lack.
fn missing(format: FormatId, names: &[String]) -> Vec<&'static str> {
    spec(format)
        .iter()
        .filter(|c| c.required && !names.iter().any(|n| lookup(format, n) == Some(c.column)))
        .map(|c| c.column.name())
        .collect()
}

/// The markers that decide between session shapes, in the order they are read.
const MARKERS: &[(&[&str], FormatId)] = &[
    (&["date", "duration_min"], FormatId::KintellSessions),
    (&["metadata"], FormatId::LanguageV1_1),
    (&["language_level", "topics"], FormatId::LanguageV1),
    (
        &["mentor_email", "focus_area", "goals_discussed"],
        FormatId::MentorsV1,
    ),
];

/// Picks the format of a header (names already normalised; duplicates already refused).
///
/// Only formats that fit (every required column present) are considered; between session shapes the markers
/// decide, read in order, each counting only when its format fits; a tie between mentors-v1 and language-v1 is
/// settled by the programme type.
pub(crate) fn detect(
    names: &[String],
    entity: Option<EntityKind>,
    format: Option<FormatId>,
    program_type: Option<ProgramType>,
) -> Result<FormatId, FileError> {
    if let (Some(f), Some(e)) = (format, entity)
        && f.entity() != e
    {
        return Err(FileError::new(
            FileErrorCode::UnknownFormat,
            format!("format {f} holds {} rows, not {} rows", f.entity(), e),
        ));
    }
    let tried = candidates(entity, format);
    let fitting: Vec<FormatId> = tried
        .iter()
        .copied()
        .filter(|f| missing(*f, names).is_empty())
        .collect();
    match fitting.as_slice() {
        [] => Err(no_fit(names, &tried, entity.is_some() || format.is_some())),
        [only] => Ok(*only),
        several => {
            for (markers, f) in MARKERS {
                if several.contains(f) && markers.iter().any(|m| names.iter().any(|n| n == m)) {
                    return Ok(*f);
                }
            }
            let sessions_only = several
                .iter()
                .all(|f| f.entity() == EntityKind::KintellSessions);
            if sessions_only
                && several.contains(&FormatId::MentorsV1)
                && several.contains(&FormatId::LanguageV1)
            {
                match program_type {
                    Some(ProgramType::LanguageUkraine) => return Ok(FormatId::LanguageV1),
                    Some(ProgramType::MentorsUkraine) => return Ok(FormatId::MentorsV1),
                    _ => {
                        return Err(FileError::new(
                            FileErrorCode::AmbiguousFormat,
                            "the header fits both mentors-v1 and language-v1 and has none of their marker \
                             columns (mentor_email, focus_area, goals_discussed; language_level, topics); \
                             choose with the format option (mentors-v1 or language-v1) or the programme type \
                             (mentors_ukraine or language_ukraine)",
                        ));
                    }
                }
            }
            if sessions_only {
                // Only language-v1 and language-v1.1 can remain: without `metadata` the plain shape is meant.
                if let Some(f) = several.iter().find(|f| **f == FormatId::LanguageV1) {
                    return Ok(*f);
                }
            }
            let list: Vec<&str> = several.iter().map(|f| f.as_str()).collect();
            Err(FileError::new(
                FileErrorCode::AmbiguousFormat,
                format!(
                    "the header fits several formats ({}); choose one with the format option or the entity",
                    list.join(", ")
                ),
            ))
        }
    }
}

fn no_fit(names: &[String], tried: &[FormatId], restricted: bool) -> FileError {
    let found = if names.is_empty() {
        "no columns".to_owned()
    } else {
        names.join(", ")
    };
    if restricted {
        // The format with the most required columns present, the first on a tie.
        let mut best: Option<(usize, FormatId, Vec<&'static str>)> = None;
        for f in tried {
            let lacks = missing(*f, names);
            let present = f.required_columns().count() - lacks.len();
            if best.as_ref().is_none_or(|(p, _, _)| present > *p) {
                best = Some((present, *f, lacks));
            }
        }
        let (_, f, lacks) = best.unwrap_or((0, FormatId::KintellSessions, Vec::new()));
        FileError::new(
            FileErrorCode::MissingColumns,
            format!(
                "the header does not fit format {f}: missing column{} {} (found: {found})",
                if lacks.len() == 1 { "" } else { "s" },
                lacks.join(", ")
            ),
        )
    } else {
        let each: Vec<String> = tried
            .iter()
            .map(|f| format!("{f} lacks {}", missing(*f, names).join(", ")))
            .collect();
        FileError::new(
            FileErrorCode::UnknownFormat,
            format!(
                "no known format fits the header (found: {found}); tried {}",
                each.join("; ")
            ),
        )
    }
}

/// The header of an opened file, as recorded in `csv_metadata`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeaderInfo {
    /// The detected (or given) format.
    pub format: FormatId,
    /// The sniffed (or given) delimiter.
    pub delimiter: Delimiter,
    /// The header names as found, in file order.
    pub header: Vec<String>,
    /// The canonical column of each header name (`None` for unknown columns), in file order.
    pub columns: Vec<Option<String>>,
    /// The header names no column of the format recognises, as found.
    pub unknown_columns: Vec<String>,
    /// The `#` lines before the header, without their line endings.
    pub comments: Vec<String>,
    /// The physical line of the header.
    pub header_line: u64,
}
