//! The scoring policy: component weights, decision thresholds, the time zone of activity dates, a version.

use crate::domain::{Confidence, TimeZoneOffset};
use chrono::{DateTime, NaiveDate, Utc};

/// How associations are scored and decided. `Default` is the specification's policy `v1`.
///
/// Deserialisation accepts partial documents (missing fields take their defaults) and checks the version with
/// [`ScoringPolicy::validate`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "RawPolicy")]
pub struct ScoringPolicy {
    /// Stored with every association (`policy_version`), so a re-scoring under new weights is traceable.
    pub version: String,
    /// The offset in which an activity's time becomes its calendar date (`--policy-timezone`). Independent of the
    /// import's offset for naive timestamps.
    pub timezone: TimeZoneOffset,
    /// Points of each score component.
    pub weights: Weights,
    /// Confidence thresholds of the decisions.
    pub thresholds: Thresholds,
}

/// Points of each score component (see `spec/association.md`, "Score of one candidate").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    /// Same company as the activity (always, a hard filter). Default 30.
    pub company_match: u16,
    /// Activity date within the campaign's window (always, a hard filter). Default 30.
    pub date_in_window: u16,
    /// Every group tag among the participant's tags. Default 40.
    pub tags_full: u16,
    /// Scale of a partial tag match, `round_half_up(tags_partial × |U∩G| / |G|)`. Default 20.
    pub tags_partial: u16,
    /// The group has no tags. Default 10.
    pub tags_untargeted: u16,
    /// Campaign status `active`. Default 10.
    pub status_active: u16,
    /// Campaign status `recruiting`. Default 5.
    pub status_recruiting: u16,
    /// An `active` or `planned` instance covers the activity date. Default 10.
    pub instance_on_date: u16,
}

/// Confidence thresholds: `auto` at or above `auto` (when nothing casts doubt), `review` at or above `review`,
/// `ignored` below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Default 80.
    pub auto: u8,
    /// Default 40.
    pub review: u8,
}

/// A policy that cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The version must fit `activity_associations.policy_version` (1 to 20 characters, trimmed).
    #[error("policy version {0:?} must be 1 to 20 characters")]
    Version(String),
}

/// The longest version `activity_associations.policy_version` holds.
const MAX_VERSION_CHARS: usize = 20;

impl Default for Weights {
    fn default() -> Self {
        Weights {
            company_match: 30,
            date_in_window: 30,
            tags_full: 40,
            tags_partial: 20,
            tags_untargeted: 10,
            status_active: 10,
            status_recruiting: 5,
            instance_on_date: 10,
        }
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            auto: 80,
            review: 40,
        }
    }
}

impl Default for ScoringPolicy {
    fn default() -> Self {
        ScoringPolicy {
            version: "v1".to_owned(),
            timezone: TimeZoneOffset::UTC,
            weights: Weights::default(),
            thresholds: Thresholds::default(),
        }
    }
}

impl ScoringPolicy {
    /// The default policy with another time zone for activity dates.
    pub fn with_timezone(timezone: TimeZoneOffset) -> Self {
        ScoringPolicy {
            timezone,
            ..Self::default()
        }
    }

    /// Checks what the store cannot hold.
    ///
    /// # Errors
    /// [`PolicyError::Version`] when the version is empty or longer than 20 characters.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let v = self.version.trim();
        if v.is_empty() || v != self.version || v.chars().count() > MAX_VERSION_CHARS {
            return Err(PolicyError::Version(self.version.clone()));
        }
        Ok(())
    }

    /// The activity date: the calendar date of `at` in the policy's offset.
    pub fn activity_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.timezone.fixed()).date_naive()
    }

    /// The decision a confidence earns when nothing casts doubt on the proposal (`doubt` = ambiguous, no instance
    /// or no tag evidence, which exclude `auto`).
    pub(crate) fn decide(&self, confidence: Confidence, doubt: bool) -> crate::domain::Decision {
        use crate::domain::Decision;
        let c = confidence.get();
        if c >= self.thresholds.auto && !doubt {
            Decision::Auto
        } else if c >= self.thresholds.review {
            Decision::Review
        } else {
            Decision::Ignored
        }
    }
}

/// The wire shape, checked before it becomes a [`ScoringPolicy`].
#[derive(serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawPolicy {
    version: String,
    timezone: TimeZoneOffset,
    weights: Weights,
    thresholds: Thresholds,
}

impl Default for RawPolicy {
    fn default() -> Self {
        let p = ScoringPolicy::default();
        RawPolicy {
            version: p.version,
            timezone: p.timezone,
            weights: p.weights,
            thresholds: p.thresholds,
        }
    }
}

impl TryFrom<RawPolicy> for ScoringPolicy {
    type Error = PolicyError;

    fn try_from(raw: RawPolicy) -> Result<Self, PolicyError> {
        let p = ScoringPolicy {
            version: raw.version,
            timezone: raw.timezone,
            weights: raw.weights,
            thresholds: raw.thresholds,
        };
        p.validate()?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_json() {
        let p = ScoringPolicy::default();
        let json = serde_json::to_value(&p).expect("serialises");
        assert_eq!(
            json,
            serde_json::json!({
                "version": "v1",
                "timezone": "+00:00",
                "weights": {
                    "company_match": 30, "date_in_window": 30, "tags_full": 40, "tags_partial": 20,
                    "tags_untargeted": 10, "status_active": 10, "status_recruiting": 5, "instance_on_date": 10
                },
                "thresholds": {"auto": 80, "review": 40}
            })
        );
        let back: ScoringPolicy = serde_json::from_value(json).expect("deserialises");
        assert_eq!(back, p);
    }

    #[test]
    fn partial_documents_take_defaults() {
        let p: ScoringPolicy =
            serde_json::from_str(r#"{"timezone": "+02:00", "weights": {"tags_full": 50}}"#)
                .expect("deserialises");
        assert_eq!(p.timezone.to_string(), "+02:00");
        assert_eq!(p.weights.tags_full, 50);
        assert_eq!(p.weights.tags_partial, 20);
        assert_eq!(p.version, "v1");
        assert_eq!(p.thresholds, Thresholds::default());
    }

    #[test]
    fn bad_versions_and_unknown_fields_are_refused() {
        for bad in [
            r#"{"version": ""}"#,
            r#"{"version": " v2"}"#,
            r#"{"version": "a-version-name-that-is-too-long"}"#,
            r#"{"weights": {"tags_ful": 1}}"#,
            r#"{"timezone": "+25:00"}"#,
        ] {
            assert!(
                serde_json::from_str::<ScoringPolicy>(bad).is_err(),
                "{bad} should be refused"
            );
        }
    }
}
