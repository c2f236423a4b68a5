//! Domain types: one newtype per constrained value, parsed once at the edge and trusted afterwards.
//!
//! Every type here has a private field and a `parse` (or `new`) that returns a typed error, so a value that exists
//! is valid. Decimals are exact (see [`Decimal`]); nothing passes through binary floating point.

mod enums;
mod ids;
mod number;
mod records;
mod rows;
mod runs;
mod text;
mod time;
mod writes;

pub use enums::{
    ActivityKind, BackfillEntity, BatchStatus, CampaignStatus, CourseStatus, Decision, EndReason,
    EnrollmentRole, EnrollmentStatus, EntityKind, EnumError, ImportMethod, InstanceStatus,
    LanguageLevel, MatchStatus, ProgramType, RequestedAction, SessionType, UserRole, WebhookEvent,
};
pub use ids::{
    ActivityId, AssociationId, BatchId, CampaignId, CompanyId, GroupId, InstanceId, RunId,
    StableKind, UserId, stable_id,
};
pub use number::{
    Confidence, Decimal, DurationMinutes, FinalScore, NumberError, ProgressPercent, Rating,
    parse_integer,
};
pub use records::{
    ActivityLineage, Association, BatchRecord, BeneficiaryGroup, Campaign, Company, NewBatch,
    ProgramInstance, User,
};
pub use rows::{CompletionRow, DomainRow, FullName, MatchRow, SessionRow, UserRow};
pub use runs::{
    AssociationState, InvalidStats, NewRun, RunCheckpoint, RunGuard, RunRecord, RunStats,
    SAMPLE_LIMIT, SampleChange, Tally,
};
pub use text::{
    CourseId, DeliveryId, Email, GroupType, Key, Name, PersonName, ProgramSlug, Provider,
    SessionId, Tag, Tags, TextError,
};
pub use time::{OffsetError, TimeZoneOffset};
pub use writes::{
    CompletionKey, CompletionWrite, DeliveryRecord, Enrollment, MatchKey, MatchWrite,
    RowErrorRecord, RowOutcome, RowSource, SessionWrite, StoredRow, StoredSession, UserWrite,
    Written,
};
