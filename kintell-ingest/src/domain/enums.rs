//! Closed vocabularies of the schema: statuses, kinds and types, each stored as its canonical lower-case name.

use std::fmt;

/// A value that is not one of an enumeration's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {what} (expected one of: {expected})")]
pub struct EnumError {
    /// What was being parsed, e.g. `program type`.
    pub what: &'static str,
    /// The rejected input, as given.
    pub value: String,
    /// The accepted names, comma-separated.
    pub expected: String,
}

/// Defines a closed enumeration stored by name: `as_str`, case-insensitive `parse`, `ALL`, `Display`, `FromStr`
/// and serde as the canonical name.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The canonical name, as stored.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Parses a name case-insensitively after trimming.
            ///
            /// # Errors
            /// [`EnumError`] when the input is none of the names.
            pub fn parse(input: &str) -> Result<Self, EnumError> {
                let t = input.trim();
                $(if t.eq_ignore_ascii_case($text) { return Ok($name::$variant); })+
                Err(EnumError {
                    what: $what,
                    value: input.to_owned(),
                    expected: [$($text),+].join(", "),
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = EnumError;
            fn from_str(s: &str) -> Result<Self, EnumError> {
                Self::parse(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_enum!(
    /// The kind of programme an instance, campaign or batch belongs to.
    ProgramType, "program type" {
        /// Mentors for Ukraine.
        MentorsUkraine => "mentors_ukraine",
        /// Language for Ukraine.
        LanguageUkraine => "language_ukraine",
        /// Buddy programme.
        Buddy => "buddy",
        /// Upskilling courses.
        Upskilling => "upskilling",
        /// Kintell sessions of mixed kinds.
        Kintell => "kintell",
    }
);

string_enum!(
    /// Status of a programme instance.
    InstanceStatus, "programme instance status" {
        /// Not started yet.
        Planned => "planned",
        /// Running.
        Active => "active",
        /// Temporarily stopped.
        Paused => "paused",
        /// Finished.
        Completed => "completed",
        /// Called off.
        Cancelled => "cancelled",
    }
);

string_enum!(
    /// Status of a campaign.
    CampaignStatus, "campaign status" {
        /// Being prepared; never a candidate for association.
        Draft => "draft",
        /// Scheduled.
        Planned => "planned",
        /// Looking for volunteers and beneficiaries.
        Recruiting => "recruiting",
        /// Running.
        Active => "active",
        /// Temporarily stopped.
        Paused => "paused",
        /// Finished.
        Completed => "completed",
        /// Closed for good.
        Closed => "closed",
    }
);

string_enum!(
    /// Status of an ingestion batch or a backfill run.
    BatchStatus, "batch status" {
        /// Created, not started.
        Pending => "pending",
        /// A worker holds it.
        Running => "running",
        /// Stopped on request or by an interruption; resumable.
        Paused => "paused",
        /// Every row processed. Terminal.
        Completed => "completed",
        /// Stopped by an error; resumable.
        Failed => "failed",
        /// Stopped on request. Terminal.
        Cancelled => "cancelled",
    }
);

string_enum!(
    /// What a batch ingests.
    EntityKind, "entity kind" {
        /// Kintell mentoring and language sessions.
        KintellSessions => "kintell_sessions",
        /// The Kintell users export.
        KintellUsers => "kintell_users",
        /// Buddy matches.
        BuddyMatches => "buddy_matches",
        /// Upskilling course completions.
        CourseCompletions => "course_completions",
    }
);

impl EntityKind {
    /// The name the CLI and the HTTP routes use (`sessions`, `users`, `buddy-matches`, `course-completions`).
    pub const fn cli_name(self) -> &'static str {
        match self {
            EntityKind::KintellSessions => "sessions",
            EntityKind::KintellUsers => "users",
            EntityKind::BuddyMatches => "buddy-matches",
            EntityKind::CourseCompletions => "course-completions",
        }
    }

    /// Parses the CLI name or the stored name.
    ///
    /// # Errors
    /// [`EnumError`] for anything else.
    pub fn from_cli_name(input: &str) -> Result<Self, EnumError> {
        let t = input.trim();
        Self::ALL
            .iter()
            .copied()
            .find(|e| e.cli_name().eq_ignore_ascii_case(t))
            .map_or_else(|| Self::parse(t), Ok)
    }
}

string_enum!(
    /// The kind of a stored activity.
    ActivityKind, "activity kind" {
        /// A row of `kintell_sessions`.
        KintellSession => "kintell_session",
        /// A row of `buddy_matches`.
        BuddyMatch => "buddy_match",
        /// A row of `learning_progress`.
        CourseCompletion => "course_completion",
    }
);

string_enum!(
    /// Kind of a Kintell session.
    SessionType, "session type" {
        /// Language practice.
        Language => "language",
        /// Mentoring.
        Mentorship => "mentorship",
    }
);

impl SessionType {
    /// The programme kind association uses for a session of this type.
    pub const fn program_type(self) -> ProgramType {
        match self {
            SessionType::Language => ProgramType::LanguageUkraine,
            SessionType::Mentorship => ProgramType::MentorsUkraine,
        }
    }
}

string_enum!(
    /// Role of a user.
    UserRole, "user role" {
        /// A beneficiary.
        Participant => "participant",
        /// A volunteer (mentor, tutor, buddy).
        Volunteer => "volunteer",
        /// A company's staff member.
        CompanyUser => "company_user",
        /// An administrator.
        Admin => "admin",
    }
);

string_enum!(
    /// Role of a person in a programme enrolment.
    EnrollmentRole, "enrolment role" {
        /// A beneficiary.
        Participant => "participant",
        /// A volunteer.
        Volunteer => "volunteer",
    }
);

string_enum!(
    /// Status of a programme enrolment.
    EnrollmentStatus, "enrolment status" {
        /// Taking part.
        Active => "active",
        /// Finished.
        Completed => "completed",
        /// Left early.
        Dropped => "dropped",
    }
);

string_enum!(
    /// Status of a buddy match.
    MatchStatus, "match status" {
        /// Ongoing.
        Active => "active",
        /// Dormant.
        Inactive => "inactive",
        /// Over; `ended_at` is set.
        Ended => "ended",
    }
);

string_enum!(
    /// Why a buddy match ended.
    EndReason, "end reason" {
        /// The match ran its course.
        Completed => "completed",
        /// The participant asked.
        ParticipantRequest => "participant_request",
        /// The buddy asked.
        BuddyRequest => "buddy_request",
        /// Both agreed.
        MutualAgreement => "mutual_agreement",
        /// Nobody was active.
        Inactivity => "inactivity",
        /// A rule was broken.
        Violation => "violation",
        /// The programme ended.
        ProgramEnded => "program_ended",
        /// Anything else.
        Other => "other",
    }
);

string_enum!(
    /// Status of a learner's course.
    CourseStatus, "course status" {
        /// Signed up.
        Enrolled => "enrolled",
        /// Under way.
        InProgress => "in_progress",
        /// Finished.
        Completed => "completed",
        /// Gave up.
        Dropped => "dropped",
    }
);

string_enum!(
    /// CEFR language level.
    LanguageLevel, "language level" {
        /// Beginner.
        A1 => "A1",
        /// Elementary.
        A2 => "A2",
        /// Intermediate.
        B1 => "B1",
        /// Upper intermediate.
        B2 => "B2",
        /// Advanced.
        C1 => "C1",
        /// Proficient.
        C2 => "C2",
    }
);

string_enum!(
    /// An association decision.
    Decision, "decision" {
        /// The batch or the row named the programme instance.
        Explicit => "explicit",
        /// Scored with enough confidence and no doubt.
        Auto => "auto",
        /// Waiting for a human.
        Review => "review",
        /// Confidence below the review threshold.
        Ignored => "ignored",
        /// No company or no candidate campaign.
        None => "none",
        /// A human accepted it. Sticky.
        Accepted => "accepted",
        /// A human rejected it. Sticky.
        Rejected => "rejected",
    }
);

impl Decision {
    /// Whether a human made this decision (ingestion and backfill never change it).
    pub const fn is_human(self) -> bool {
        matches!(self, Decision::Accepted | Decision::Rejected)
    }

    /// Whether a stored decision stays when `next` is written over it: a human decision always stays, an `explicit`
    /// one unless `next` is explicit too. Scoring (import or backfill) never replaces such a decision.
    pub const fn stays_over(self, next: Decision) -> bool {
        self.is_human()
            || (matches!(self, Decision::Explicit) && !matches!(next, Decision::Explicit))
    }

    /// Whether the activity's `program_instance_id` is set from this decision.
    pub const fn links(self) -> bool {
        matches!(
            self,
            Decision::Explicit | Decision::Auto | Decision::Accepted
        )
    }
}

string_enum!(
    /// How a batch's rows arrived.
    ImportMethod, "import method" {
        /// A CSV file, from the CLI or an HTTP upload.
        CsvUpload => "csv_upload",
        /// A webhook delivery.
        Webhook => "webhook",
        /// Rows that predate batches, adopted by `lineage adopt-legacy`.
        Legacy => "legacy",
    }
);

string_enum!(
    /// A Kintell webhook event, as named in its route (`POST /v1/webhooks/kintell/{event}`).
    WebhookEvent, "webhook event" {
        /// A session took place.
        SessionCompleted => "session-completed",
        /// A session was booked.
        BookingConfirmed => "booking-confirmed",
        /// A participant or volunteer rated a session.
        RatingCreated => "rating-created",
    }
);

string_enum!(
    /// Which activities a backfill run re-associates.
    BackfillEntity, "backfill entity" {
        /// Kintell sessions.
        Sessions => "sessions",
        /// Buddy matches.
        Matches => "matches",
        /// Course completions.
        Completions => "completions",
        /// All three.
        All => "all",
    }
);

string_enum!(
    /// A request recorded on a batch, honoured by its worker between chunks.
    RequestedAction, "requested action" {
        /// Stop after the current chunk, resumable.
        Pause => "pause",
        /// Stop after the current chunk, for good.
        Cancel => "cancel",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_case_insensitively() {
        for p in ProgramType::ALL {
            assert_eq!(ProgramType::parse(&p.as_str().to_uppercase()), Ok(*p));
        }
        for d in Decision::ALL {
            assert_eq!(d.as_str().parse::<Decision>(), Ok(*d));
        }
        assert_eq!(LanguageLevel::parse(" b2 "), Ok(LanguageLevel::B2));
    }

    #[test]
    fn unknown_name_lists_the_expected_ones() {
        let e = MatchStatus::parse("paused").unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"paused\" is not a valid match status (expected one of: active, inactive, ended)"
        );
    }

    #[test]
    fn entity_cli_names() {
        for e in EntityKind::ALL {
            assert_eq!(EntityKind::from_cli_name(e.cli_name()), Ok(*e));
            assert_eq!(EntityKind::from_cli_name(e.as_str()), Ok(*e));
        }
        assert!(EntityKind::from_cli_name("bogus").is_err());
    }
}
