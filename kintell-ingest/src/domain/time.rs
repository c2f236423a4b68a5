//! Time-zone offsets given on the command line or over HTTP (`±HH:MM`).

use chrono::FixedOffset;
use std::fmt;

/// A fixed offset from UTC, written `±HH:MM` (or `Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeZoneOffset(FixedOffset);

/// An offset that is not `±HH:MM` within ±23:59.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a time-zone offset (expected ±HH:MM, e.g. +01:00)")]
pub struct OffsetError(pub String);

impl TimeZoneOffset {
    /// UTC.
    pub const UTC: TimeZoneOffset = TimeZoneOffset(match FixedOffset::east_opt(0) {
        Some(o) => o,
        None => unreachable!(),
    });

    /// Parses `±HH:MM`, `±HHMM` or `Z`.
    ///
    /// # Errors
    /// [`OffsetError`] for anything else.
    pub fn parse(input: &str) -> Result<Self, OffsetError> {
        let err = || OffsetError(input.to_owned());
        let t = input.trim();
        if t.eq_ignore_ascii_case("z") || t.eq_ignore_ascii_case("utc") {
            return Ok(Self::UTC);
        }
        let (sign, rest) = match t.as_bytes().first() {
            Some(b'+') => (1, &t[1..]),
            Some(b'-') => (-1, &t[1..]),
            _ => return Err(err()),
        };
        let digits: String = rest.chars().filter(|c| *c != ':').collect();
        if digits.len() != 4
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || (rest.len() == 5 && &rest[2..3] != ":")
        {
            return Err(err());
        }
        let h: i32 = digits[..2].parse().map_err(|_| err())?;
        let m: i32 = digits[2..].parse().map_err(|_| err())?;
        if h > 23 || m > 59 {
            return Err(err());
        }
        FixedOffset::east_opt(sign * (h * 3600 + m * 60))
            .map(TimeZoneOffset)
            .ok_or_else(err)
    }

    /// The chrono offset.
    pub fn fixed(self) -> FixedOffset {
        self.0
    }
}

impl Default for TimeZoneOffset {
    fn default() -> Self {
        Self::UTC
    }
}

impl fmt::Display for TimeZoneOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.local_minus_utc();
        let sign = if s < 0 { '-' } else { '+' };
        let a = s.abs();
        write!(f, "{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60)
    }
}

impl serde::Serialize for TimeZoneOffset {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TimeZoneOffset {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn offsets() {
        assert_eq!(
            TimeZoneOffset::parse("+01:00")
                .unwrap()
                .fixed()
                .local_minus_utc(),
            3600
        );
        assert_eq!(
            TimeZoneOffset::parse("-05:30")
                .unwrap()
                .fixed()
                .local_minus_utc(),
            -19800
        );
        assert_eq!(TimeZoneOffset::parse("Z").unwrap(), TimeZoneOffset::UTC);
        for bad in ["", "01:00", "+1:00", "+24:00", "+01:60", "+01-00", "+0100x"] {
            assert!(TimeZoneOffset::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn offsets_round_trip(h in 0i32..24, m in 0i32..60, neg in any::<bool>()) {
            let s = format!("{}{h:02}:{m:02}", if neg { '-' } else { '+' });
            let o = TimeZoneOffset::parse(&s).unwrap();
            prop_assert_eq!(TimeZoneOffset::parse(&o.to_string()).unwrap(), o);
        }
    }
}
