//! Domain rows: one validated record of an input file, typed with the domain newtypes, ready for the pipeline.
//!
//! Empty optional cells are `None`. Lists are never `Some(vec![])`: a cell whose items all trim to nothing is
//! `None`, so "absent" has one spelling.

use chrono::{DateTime, Utc};

use super::{
    CourseId, DurationMinutes, Email, EndReason, EntityKind, FinalScore, Key, LanguageLevel,
    MatchStatus, ProgramSlug, Provider, Rating, SessionId, SessionType, UserRole,
};

/// A Kintell session, whichever of the four session formats it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    /// The external session id (`external_session_id`); with `kintell` it is the idempotency key.
    pub session_id: SessionId,
    /// Language or mentorship.
    pub session_type: SessionType,
    /// The beneficiary.
    pub participant_email: Email,
    /// The volunteer (mentor or language partner).
    pub volunteer_email: Email,
    /// When the session was planned (the `date` of the live export).
    pub scheduled_at: DateTime<Utc>,
    /// When it took place, if it did (the `date` of the live export).
    pub completed_at: Option<DateTime<Utc>>,
    /// Length in minutes.
    pub duration_minutes: Option<DurationMinutes>,
    /// Rating normalised to 0..=1.
    pub rating: Option<Rating>,
    /// Free-text feedback, at most 5000 characters.
    pub feedback_text: Option<String>,
    /// CEFR level of a language session.
    pub language_level: Option<LanguageLevel>,
    /// Topics (`topics`, or the mentors' `goals_discussed`).
    pub topics: Option<Vec<String>>,
    /// Extra data: the `metadata` object of language-v1.1, or the mentors' `focus_area` and `goals_discussed`.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// A programme-instance slug named by the row (`program_ref`).
    pub program_ref: Option<ProgramSlug>,
}

impl SessionRow {
    /// The part of the idempotency key (`kintell`, `session_id`) that varies.
    pub fn idempotency_key(&self) -> &SessionId {
        &self.session_id
    }
}

/// A person's display name, split at the first whitespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullName {
    /// Everything before the first whitespace (at most 100 characters).
    pub first: String,
    /// Everything after it, trimmed; `None` for a one-word name (at most 100 characters).
    pub last: Option<String>,
}

/// A row of the Kintell users export. `None` means "leave the stored value as it is" (a new user gets the
/// defaults: role `participant`, `grant_access` false, no company, no tags).
#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    /// The address, lower-cased; the idempotency key.
    pub email: Email,
    /// First and last name.
    pub name: Option<FullName>,
    /// The LinkedIn profile address.
    pub linkedin_url: Option<String>,
    /// The export's verification status, as written.
    pub verification_status: Option<String>,
    /// The export's role description, as written.
    pub role_when_joined: Option<String>,
    /// The role implied by `role_when_joined` (advisor, mentor or tutor → volunteer; otherwise participant).
    pub role: Option<UserRole>,
    /// Whether the user granted access.
    pub grant_access: Option<bool>,
    /// When the user joined; also the `created_at` of a user the import creates.
    pub joined_kg_at: Option<DateTime<Utc>>,
    /// Slug of the user's company.
    pub company: Option<Key>,
    /// Beneficiary-profile tags, lower-cased, first occurrence kept.
    pub tags: Option<Vec<String>>,
}

impl UserRow {
    /// The idempotency key.
    pub fn idempotency_key(&self) -> &Email {
        &self.email
    }
}

/// A buddy match.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchRow {
    /// The beneficiary.
    pub participant_email: Email,
    /// The buddy (a volunteer).
    pub buddy_email: Email,
    /// When the match was made.
    pub matched_at: DateTime<Utc>,
    /// Status, `active` when the cell is empty.
    pub status: MatchStatus,
    /// Language of the match.
    pub language: Option<String>,
    /// Shared interests.
    pub interests: Option<Vec<String>>,
    /// Where the pair meets.
    pub location: Option<String>,
    /// The export's own match id (`match_id`).
    pub external_match_id: Option<String>,
    /// When the match ended (always set when the status is `ended`).
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it ended.
    pub end_reason: Option<EndReason>,
}

impl MatchRow {
    /// The emails and time of the idempotency key (`participant`, `buddy`, `matched_at`); the pipeline resolves the
    /// emails to user ids.
    pub fn idempotency_key(&self) -> (&Email, &Email, DateTime<Utc>) {
        (&self.participant_email, &self.buddy_email, self.matched_at)
    }
}

/// A completed course.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRow {
    /// The learner.
    pub user_email: Email,
    /// The course provider, lower-cased.
    pub provider: Provider,
    /// The provider's course id (case-sensitive).
    pub course_id: CourseId,
    /// The course's name.
    pub course_name: Option<String>,
    /// When the course was completed.
    pub completed_at: DateTime<Utc>,
    /// Final score, 0..=100.
    pub final_score: Option<FinalScore>,
    /// Reference of the credential issued.
    pub credential_ref: Option<String>,
}

impl CompletionRow {
    /// The email and course of the idempotency key (`user`, `provider`, `course_id`); the pipeline resolves the
    /// email to a user id.
    pub fn idempotency_key(&self) -> (&Email, &Provider, &CourseId) {
        (&self.user_email, &self.provider, &self.course_id)
    }
}

/// One validated row of any format.
#[derive(Debug, Clone, PartialEq)]
pub enum DomainRow {
    /// A session (`kintell-sessions`, `mentors-v1`, `language-v1`, `language-v1.1`).
    Session(SessionRow),
    /// A user (`kintell-users`).
    User(UserRow),
    /// A buddy match (`buddy-matches`).
    Match(MatchRow),
    /// A course completion (`course-completions`).
    Completion(CompletionRow),
}

impl DomainRow {
    /// The entity the row belongs to.
    pub fn entity(&self) -> EntityKind {
        match self {
            DomainRow::Session(_) => EntityKind::KintellSessions,
            DomainRow::User(_) => EntityKind::KintellUsers,
            DomainRow::Match(_) => EntityKind::BuddyMatches,
            DomainRow::Completion(_) => EntityKind::CourseCompletions,
        }
    }
}
