//! Turning one record's trimmed values into a domain row, or into every problem it has, in header order.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::domain::{
    CompletionRow, CourseId, DomainRow, DurationMinutes, Email, EndReason, EnrollmentRole,
    FinalScore, FullName, Key, LanguageLevel, MatchRow, MatchStatus, NumberError, ProgramSlug,
    Provider, Rating, SessionId, SessionRow, SessionType, TextError, UserRole, UserRow,
};

use super::errors::{ErrorCode, Problem};
use super::header::{Column, FormatId};
use super::values::{self, TimeError, show};

/// Longest `feedback_text`, in characters.
const FEEDBACK_MAX: usize = 5000;
/// Longest first or last name (`users.first_name`, `users.last_name`).
const NAME_PART_MAX: usize = 100;
/// Longest value of a `VARCHAR(255)` column.
const VARCHAR_255: usize = 255;
/// Longest `buddy_matches.language`.
const LANGUAGE_MAX: usize = 50;
/// Longest `linkedin_url`: kept in `journey_flags`, which has no column size; a bound keeps junk out.
const URL_MAX: usize = 2048;

/// Per-batch settings of validation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context {
    /// Offset east of UTC, in seconds, of naive timestamps.
    pub(crate) zone_secs: i32,
    /// Events later than this (the ingest time plus one day) are out of range.
    pub(crate) latest: DateTime<Utc>,
}

/// A record's values by column, trimmed; `None` when empty or absent.
pub(crate) struct Values<'a> {
    pub(crate) cells: [Option<&'a str>; Column::COUNT],
    /// Columns whose cell holds invalid UTF-8: already reported, never "missing".
    pub(crate) unreadable: u64,
    /// Sort key of each column: its header position, or after every header column when absent.
    pub(crate) order: &'a [u32; Column::COUNT],
}

/// A problem with its sort key.
pub(crate) struct Keyed {
    pub(crate) key: u32,
    pub(crate) problem: Problem,
}

struct Check<'a, 'p> {
    v: &'a Values<'a>,
    ctx: Context,
    out: &'p mut Vec<Keyed>,
}

impl<'a> Check<'a, '_> {
    fn get(&self, c: Column) -> Option<&'a str> {
        self.v.cells.get(c as usize).copied().flatten()
    }

    fn push(&mut self, c: Column, code: ErrorCode, message: String) {
        let key = self.v.order.get(c as usize).copied().unwrap_or(u32::MAX);
        self.out.push(Keyed {
            key,
            problem: Problem::new(code, Some(c.name()), message),
        });
    }

    fn unreadable(&self, c: Column) -> bool {
        self.v.unreadable & (1 << c as u64) != 0
    }

    fn required(&mut self, c: Column) -> Option<&'a str> {
        let v = self.get(c);
        if v.is_none() && !self.unreadable(c) {
            self.push(
                c,
                ErrorCode::MissingField,
                format!("{} is required but empty", c.name()),
            );
        }
        v
    }

    fn value(&mut self, c: Column, required: bool) -> Option<&'a str> {
        if required {
            self.required(c)
        } else {
            self.get(c)
        }
    }

    fn email(&mut self, c: Column) -> Option<Email> {
        let s = self.required(c)?;
        match Email::parse(s) {
            Ok(e) => Some(e),
            Err(e) => {
                let why = match e {
                    TextError::TooLong { len, max, .. } => {
                        format!("{len} characters, more than the {max} an address may have")
                    }
                    TextError::Invalid { why, .. } => why.to_owned(),
                    TextError::Empty { .. } => "it is empty".to_owned(),
                };
                self.push(
                    c,
                    ErrorCode::InvalidEmail,
                    format!("{}: {} is not a valid email: {why}", c.name(), show(s)),
                );
                None
            }
        }
    }

    /// A timestamp; `event` marks times of things that happened, which may not lie in the future.
    fn time(&mut self, c: Column, required: bool, event: bool) -> Option<DateTime<Utc>> {
        let s = self.value(c, required)?;
        self.time_of(c, s, event, false)
    }

    fn time_of(
        &mut self,
        c: Column,
        s: &str,
        event: bool,
        export_dates: bool,
    ) -> Option<DateTime<Utc>> {
        let parsed = match values::timestamp(s, self.ctx.zone_secs) {
            Err(TimeError::Invalid) if export_dates => {
                values::month_day_year(s, self.ctx.zone_secs)
            }
            other => other,
        };
        match parsed {
            Ok(t) if event && t > self.ctx.latest => {
                self.push(
                    c,
                    ErrorCode::OutOfRange,
                    format!(
                        "{}: {} is in the future (later than one day after the import, {})",
                        c.name(),
                        show(s),
                        self.ctx.latest.format("%Y-%m-%dT%H:%M:%SZ")
                    ),
                );
                None
            }
            Ok(t) => Some(t),
            Err(TimeError::TooEarly) => {
                self.push(
                    c,
                    ErrorCode::OutOfRange,
                    format!(
                        "{}: {} is earlier than 2000-01-01T00:00Z",
                        c.name(),
                        show(s)
                    ),
                );
                None
            }
            Err(TimeError::Invalid) => {
                let expected = if export_dates {
                    "YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS[.fraction]] with an optional Z or ±HH:MM, or Mon D, YYYY"
                } else {
                    "YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS[.fraction]] with an optional Z or ±HH:MM"
                };
                self.push(
                    c,
                    ErrorCode::InvalidDatetime,
                    format!(
                        "{}: {} is not a valid timestamp (expected {expected})",
                        c.name(),
                        show(s)
                    ),
                );
                None
            }
        }
    }

    fn number<T>(
        &mut self,
        c: Column,
        required: bool,
        parse: impl FnOnce(&str) -> Result<T, NumberError>,
    ) -> Option<T> {
        let s = self.value(c, required)?;
        match parse(s) {
            Ok(v) => Some(v),
            Err(e) => {
                let code = match e {
                    NumberError::Invalid { .. } => ErrorCode::InvalidNumber,
                    NumberError::OutOfRange { .. } => ErrorCode::OutOfRange,
                };
                let message = match e {
                    NumberError::Invalid { what, .. } => {
                        format!("{}: {} is not a valid {what}", c.name(), show(s))
                    }
                    other => format!("{}: {other}", c.name()),
                };
                self.push(c, code, message);
                None
            }
        }
    }

    /// Checks a string's length in characters.
    fn fits(&mut self, c: Column, s: &str, max: usize) -> bool {
        if s.len() > max {
            let len = s.chars().count();
            if len > max {
                self.push(
                    c,
                    ErrorCode::TooLong,
                    format!(
                        "{}: {len} characters, more than the {max} allowed",
                        c.name()
                    ),
                );
                return false;
            }
        }
        true
    }

    fn text(&mut self, c: Column, max: usize) -> Option<String> {
        let s = self.get(c)?;
        self.fits(c, s, max).then(|| s.to_owned())
    }

    fn bounded<T>(
        &mut self,
        c: Column,
        required: bool,
        parse: impl FnOnce(&str) -> Result<T, TextError>,
    ) -> Option<T> {
        let s = self.value(c, required)?;
        match parse(s) {
            Ok(v) => Some(v),
            Err(TextError::TooLong { len, max, .. }) => {
                self.push(
                    c,
                    ErrorCode::TooLong,
                    format!(
                        "{}: {len} characters, more than the {max} allowed",
                        c.name()
                    ),
                );
                None
            }
            Err(e) => {
                self.push(c, ErrorCode::InvalidEnum, format!("{}: {e}", c.name()));
                None
            }
        }
    }

    fn choice<T, E>(&mut self, c: Column, parse: impl FnOnce(&str) -> Result<T, E>) -> Option<T> {
        let s = self.get(c)?;
        match parse(s) {
            Ok(v) => Some(v),
            Err(_) => {
                let e = parse_error_message(c, s);
                self.push(c, ErrorCode::InvalidEnum, e);
                None
            }
        }
    }

    fn program_ref(&mut self) -> Option<ProgramSlug> {
        let s = self.get(Column::ProgramRef)?;
        match ProgramSlug::parse(s) {
            Ok(slug) => Some(slug),
            Err(TextError::TooLong { len, max, .. }) => {
                self.push(
                    Column::ProgramRef,
                    ErrorCode::TooLong,
                    format!("program_ref: {len} characters, more than the {max} allowed"),
                );
                None
            }
            Err(_) => {
                // No stored instance can carry a slug of this shape.
                self.push(
                    Column::ProgramRef,
                    ErrorCode::UnknownProgramInstance,
                    format!(
                        "program_ref: {} is not a programme-instance slug (letters, digits, '-', '_', '.')",
                        show(s)
                    ),
                );
                None
            }
        }
    }

    fn cross(&mut self, c: Column, code: ErrorCode, message: String) {
        self.push(c, code, message);
    }

    /// The cross-field rule of a session: it cannot be completed before it was scheduled.
    fn completed_not_before_scheduled(
        &mut self,
        scheduled: Option<DateTime<Utc>>,
        completed: Option<DateTime<Utc>>,
    ) {
        if let (Some(s), Some(done)) = (scheduled, completed)
            && done < s
        {
            self.cross(
                Column::CompletedAt,
                ErrorCode::CompletedBeforeScheduled,
                format!(
                    "completed_at {} is earlier than scheduled_at {}",
                    rfc3339(done),
                    rfc3339(s)
                ),
            );
        }
    }
}

/// The message of an `invalid_enum` problem, listing the accepted values.
fn parse_error_message(c: Column, s: &str) -> String {
    let expected = match c {
        Column::LanguageLevel => "A1, A2, B1, B2, C1, C2",
        Column::Status => "active, inactive, ended",
        Column::EndReason => {
            "completed, participant_request, buddy_request, mutual_agreement, inactivity, violation, \
             program_ended, other"
        }
        Column::GrantAccess => "true, yes, 1, false, no, 0",
        Column::FromRole => "participant, volunteer",
        _ => "",
    };
    format!(
        "{}: {} is not one of the accepted values ({expected})",
        c.name(),
        show(s)
    )
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Validates the values of one record of `format`; `problems` receives every problem, unsorted.
pub(crate) fn row(
    format: FormatId,
    v: &Values<'_>,
    ctx: Context,
    problems: &mut Vec<Keyed>,
) -> Option<DomainRow> {
    let mut c = Check {
        v,
        ctx,
        out: problems,
    };
    match format {
        FormatId::KintellSessions => kintell_session(&mut c).map(DomainRow::Session),
        FormatId::MentorsV1 | FormatId::LanguageV1 | FormatId::LanguageV1_1 => {
            scheduled_session(format, &mut c).map(DomainRow::Session)
        }
        FormatId::KintellUsers => user(&mut c).map(DomainRow::User),
        FormatId::BuddyMatches => buddy_match(&mut c).map(DomainRow::Match),
        FormatId::CourseCompletions => completion(&mut c).map(DomainRow::Completion),
    }
}

fn session_type(c: &mut Check<'_, '_>) -> Option<SessionType> {
    let s = c.required(Column::SessionType)?;
    if contains_word(s, "language") {
        Some(SessionType::Language)
    } else if contains_word(s, "mentor") {
        Some(SessionType::Mentorship)
    } else {
        c.push(
            Column::SessionType,
            ErrorCode::UnknownSessionType,
            format!(
                "session_type: {} names neither a language nor a mentoring session",
                show(s)
            ),
        );
        None
    }
}

/// Whether `s`, lower-cased, contains `needle` (lower-case ASCII); allocates only for non-ASCII text.
fn contains_word(s: &str, needle: &str) -> bool {
    if s.is_ascii() {
        let (h, n) = (s.as_bytes(), needle.as_bytes());
        let first = n.first().copied().unwrap_or_default();
        h.windows(n.len()).any(|w| {
            w.first().is_some_and(|b| b.to_ascii_lowercase() == first) && w.eq_ignore_ascii_case(n)
        })
    } else {
        s.to_lowercase().contains(needle)
    }
}

/// A 1–5 rating; the common single-digit case skips decimal parsing (same result).
fn five_point(s: &str) -> Result<Rating, NumberError> {
    match s.as_bytes() {
        [d @ b'1'..=b'5'] => Rating::from_hundredths(i64::from(d - b'1') * 25),
        _ => Rating::parse_five_point(s),
    }
}

fn kintell_session(c: &mut Check<'_, '_>) -> Option<SessionRow> {
    let session_id = c.bounded(Column::SessionId, true, SessionId::parse);
    let session_type = session_type(c);
    let participant = c.email(Column::ParticipantEmail);
    let volunteer = c.email(Column::VolunteerEmail);
    let date = c.time(Column::Date, true, true);
    let duration = c.number(Column::DurationMin, true, DurationMinutes::parse);
    let rating = c.number(Column::Rating, false, five_point);
    let feedback = c.text(Column::FeedbackText, FEEDBACK_MAX);
    let level = c.choice(Column::LanguageLevel, LanguageLevel::parse);
    let program_ref = c.program_ref();
    if !c.out.is_empty() {
        return None;
    }
    let date = date?;
    Some(SessionRow {
        session_id: session_id?,
        session_type: session_type?,
        participant_email: participant?,
        volunteer_email: volunteer?,
        scheduled_at: date,
        completed_at: Some(date),
        duration_minutes: Some(duration?),
        rating,
        feedback_text: feedback,
        language_level: level,
        topics: None,
        metadata: None,
        program_ref,
    })
}

fn scheduled_session(format: FormatId, c: &mut Check<'_, '_>) -> Option<SessionRow> {
    let mentors = format == FormatId::MentorsV1;
    let session_id = c.bounded(Column::SessionId, true, SessionId::parse);
    let participant = c.email(Column::ParticipantEmail);
    let volunteer = c.email(if mentors {
        Column::MentorEmail
    } else {
        Column::VolunteerEmail
    });
    let scheduled = c.time(Column::ScheduledAt, true, false);
    let completed = c.time(Column::CompletedAt, false, true);
    let duration = c.number(Column::DurationMinutes, false, DurationMinutes::parse);
    let rating = c.number(Column::Rating, false, Rating::parse_unit);
    let feedback = c.text(Column::FeedbackText, FEEDBACK_MAX);
    let topics;
    let mut metadata = None;
    let mut level = None;
    if mentors {
        let focus = c.get(Column::FocusArea);
        let goals = c.get(Column::GoalsDiscussed).and_then(values::list);
        if focus.is_some() || goals.is_some() {
            let mut m = Map::new();
            if let Some(f) = focus {
                m.insert("focus_area".to_owned(), Value::String(f.to_owned()));
            }
            if let Some(g) = &goals {
                m.insert(
                    "goals_discussed".to_owned(),
                    Value::Array(g.iter().cloned().map(Value::String).collect()),
                );
            }
            metadata = Some(m);
        }
        topics = goals;
    } else {
        level = c.choice(Column::LanguageLevel, LanguageLevel::parse);
        topics = c.get(Column::Topics).and_then(values::list);
        if format == FormatId::LanguageV1_1
            && let Some(s) = c.get(Column::Metadata)
        {
            match serde_json::from_str::<Map<String, Value>>(s) {
                Ok(m) => metadata = Some(m),
                Err(e) => {
                    let message = if serde_json::from_str::<Value>(s).is_ok() {
                        format!("metadata: {} is JSON but not an object", show(s))
                    } else {
                        format!("metadata: {} is not valid JSON ({e})", show(s))
                    };
                    c.push(Column::Metadata, ErrorCode::InvalidJson, message);
                }
            }
        }
    }
    let program_ref = c.program_ref();
    c.completed_not_before_scheduled(scheduled, completed);
    if !c.out.is_empty() {
        return None;
    }
    Some(SessionRow {
        session_id: session_id?,
        session_type: if mentors {
            SessionType::Mentorship
        } else {
            SessionType::Language
        },
        participant_email: participant?,
        volunteer_email: volunteer?,
        scheduled_at: scheduled?,
        completed_at: completed,
        duration_minutes: duration,
        rating,
        feedback_text: feedback,
        language_level: level,
        topics,
        metadata,
        program_ref,
    })
}

fn user(c: &mut Check<'_, '_>) -> Option<UserRow> {
    let email = c.email(Column::Email);
    let name = c.get(Column::Name).and_then(|n| {
        let (first, last) = match n.split_once(char::is_whitespace) {
            Some((f, l)) => (f, Some(l.trim()).filter(|l| !l.is_empty())),
            None => (n, None),
        };
        let ok = c.fits(Column::Name, first, NAME_PART_MAX)
            && last.is_none_or(|l| c.fits(Column::Name, l, NAME_PART_MAX));
        ok.then(|| FullName {
            first: first.to_owned(),
            last: last.map(str::to_owned),
        })
    });
    let linkedin_url = c.text(Column::LinkedinUrl, URL_MAX);
    let verification_status = c.text(Column::VerificationStatus, VARCHAR_255);
    let role_when_joined = c.text(Column::RoleWhenJoined, VARCHAR_255);
    let role = role_when_joined.as_deref().map(|r| {
        let r = r.to_lowercase();
        if ["advisor", "mentor", "tutor"].iter().any(|k| r.contains(k)) {
            UserRole::Volunteer
        } else {
            UserRole::Participant
        }
    });
    let grant_access = c.choice(Column::GrantAccess, |s| values::flag(s).ok_or(()));
    let joined = c
        .get(Column::JoinedKgAt)
        .and_then(|s| c.time_of(Column::JoinedKgAt, s, true, true));
    let company = c.bounded(Column::Company, false, Key::parse);
    let tags = c.get(Column::Tags).and_then(values::list).map(|v| {
        let mut seen: Vec<String> = Vec::with_capacity(v.len());
        for t in v {
            let t = t.to_lowercase();
            if !seen.contains(&t) {
                seen.push(t);
            }
        }
        seen
    });
    if !c.out.is_empty() {
        return None;
    }
    Some(UserRow {
        email: email?,
        name,
        linkedin_url,
        verification_status,
        role_when_joined,
        role,
        grant_access,
        joined_kg_at: joined,
        company,
        tags,
    })
}

fn buddy_match(c: &mut Check<'_, '_>) -> Option<MatchRow> {
    let participant = c.email(Column::ParticipantEmail);
    let buddy = c.email(Column::BuddyEmail);
    let matched = c.time(Column::MatchedAt, true, true);
    let status = c.choice(Column::Status, MatchStatus::parse);
    let language = c.text(Column::Language, LANGUAGE_MAX);
    let interests = c.get(Column::Interests).and_then(values::list);
    let location = c.text(Column::Location, VARCHAR_255);
    let match_id = c.text(Column::MatchId, VARCHAR_255);
    let ended = c.time(Column::EndedAt, false, true);
    let end_reason = c.choice(Column::EndReason, EndReason::parse);
    if let (Some(p), Some(b)) = (&participant, &buddy)
        && p == b
    {
        c.cross(
            Column::BuddyEmail,
            ErrorCode::SamePerson,
            format!("buddy_email is the participant ({p}); a person cannot be their own buddy"),
        );
    }
    if status == Some(MatchStatus::Ended)
        && c.get(Column::EndedAt).is_none()
        && !c.unreadable(Column::EndedAt)
    {
        c.push(
            Column::EndedAt,
            ErrorCode::MissingField,
            "ended_at is required when status is ended".to_owned(),
        );
    }
    if let (Some(m), Some(e)) = (matched, ended)
        && e < m
    {
        c.cross(
            Column::EndedAt,
            ErrorCode::EndedBeforeMatched,
            format!(
                "ended_at {} is earlier than matched_at {}",
                rfc3339(e),
                rfc3339(m)
            ),
        );
    }
    if !c.out.is_empty() {
        return None;
    }
    Some(MatchRow {
        participant_email: participant?,
        buddy_email: buddy?,
        matched_at: matched?,
        status: status.unwrap_or(MatchStatus::Active),
        language,
        interests,
        location,
        external_match_id: match_id,
        ended_at: ended,
        end_reason,
    })
}

fn completion(c: &mut Check<'_, '_>) -> Option<CompletionRow> {
    let user = c.email(Column::UserEmail);
    let provider = c.bounded(Column::Provider, true, Provider::parse);
    let course_id = c.bounded(Column::CourseId, true, CourseId::parse);
    let course_name = c.text(Column::CourseName, VARCHAR_255);
    let completed = c.time(Column::CompletedAt, true, true);
    let score = c.number(Column::FinalScore, false, FinalScore::parse);
    let credential = c.text(Column::CredentialRef, VARCHAR_255);
    if !c.out.is_empty() {
        return None;
    }
    Some(CompletionRow {
        user_email: user?,
        provider: provider?,
        course_id: course_id?,
        course_name,
        completed_at: completed?,
        final_score: score,
        credential_ref: credential,
    })
}

/// A `rating-created` webhook body, validated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RatingEvent {
    /// The platform's id of the rating.
    pub(crate) rating_id: SessionId,
    /// The rated session's external id.
    pub(crate) session_id: SessionId,
    /// Who rated.
    pub(crate) from_role: EnrollmentRole,
    /// The rating, normalised from 1–5 to 0–1 as the CSV `rating` column of `kintell-sessions` is.
    pub(crate) rating: Rating,
    /// The feedback, at most 5000 characters.
    pub(crate) feedback_text: Option<String>,
    /// When the rating was given.
    pub(crate) created_at: DateTime<Utc>,
}

/// Validates the values of a `session-completed` body (`booking` false) or a `booking-confirmed` body (`booking`
/// true, its id in `booking_id`), by the rules of the CSV columns of the same names: a completion needs
/// `completed_at` (not before `scheduled_at`) and `duration_minutes`; a booking has neither. `topics` arrives
/// already as a list.
pub(crate) fn session_event(
    v: &Values<'_>,
    ctx: Context,
    booking: bool,
    topics: Option<Vec<String>>,
    problems: &mut Vec<Keyed>,
) -> Option<SessionRow> {
    let mut c = Check {
        v,
        ctx,
        out: problems,
    };
    let id_column = if booking {
        Column::BookingId
    } else {
        Column::SessionId
    };
    let session_id = c.bounded(id_column, true, SessionId::parse);
    let session_type = session_type(&mut c);
    let participant = c.email(Column::ParticipantEmail);
    let volunteer = c.email(Column::VolunteerEmail);
    let scheduled = c.time(Column::ScheduledAt, true, false);
    let (completed, duration, level) = if booking {
        (None, None, None)
    } else {
        (
            c.time(Column::CompletedAt, true, true),
            c.number(Column::DurationMinutes, true, DurationMinutes::parse),
            c.choice(Column::LanguageLevel, LanguageLevel::parse),
        )
    };
    c.completed_not_before_scheduled(scheduled, completed);
    if !c.out.is_empty() {
        return None;
    }
    Some(SessionRow {
        session_id: session_id?,
        session_type: session_type?,
        participant_email: participant?,
        volunteer_email: volunteer?,
        scheduled_at: scheduled?,
        completed_at: completed,
        duration_minutes: duration,
        rating: None,
        feedback_text: None,
        language_level: level,
        topics,
        metadata: None,
        program_ref: None,
    })
}

/// Validates the values of a `rating-created` body: `rating` on the 1–5 scale as in `kintell-sessions`,
/// `feedback_text` as in every session format, `from_role` one of `participant` and `volunteer`, `created_at` a
/// time that has happened.
pub(crate) fn rating_event(
    v: &Values<'_>,
    ctx: Context,
    problems: &mut Vec<Keyed>,
) -> Option<RatingEvent> {
    let mut c = Check {
        v,
        ctx,
        out: problems,
    };
    let rating_id = c.bounded(Column::RatingId, true, SessionId::parse);
    let session_id = c.bounded(Column::SessionId, true, SessionId::parse);
    let from_role = match c.required(Column::FromRole) {
        Some(_) => c.choice(Column::FromRole, EnrollmentRole::parse),
        None => None,
    };
    let rating = c.number(Column::Rating, true, five_point);
    let feedback = c.text(Column::FeedbackText, FEEDBACK_MAX);
    let created_at = c.time(Column::CreatedAt, true, true);
    if !c.out.is_empty() {
        return None;
    }
    Some(RatingEvent {
        rating_id: rating_id?,
        session_id: session_id?,
        from_role: from_role?,
        rating: rating?,
        feedback_text: feedback,
        created_at: created_at?,
    })
}
