//! Value rules shared by the formats: timestamps (parsed by hand, they are on the hot path), lists and flags.

use chrono::{DateTime, Utc};

/// 2000-01-01T00:00:00Z: every earlier timestamp is out of range.
pub(crate) const EARLIEST: i64 = 946_684_800;

/// Why a timestamp was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeError {
    /// Not an accepted form, or an impossible date or time.
    Invalid,
    /// Earlier than 2000-01-01T00:00Z.
    TooEarly,
}

const fn digit(b: u8) -> Option<u32> {
    if b.is_ascii_digit() {
        Some((b - b'0') as u32)
    } else {
        None
    }
}

fn two(b: &[u8], at: usize) -> Option<u32> {
    Some(digit(*b.get(at)?)? * 10 + digit(*b.get(at + 1)?)?)
}

fn four(b: &[u8], at: usize) -> Option<u32> {
    Some(two(b, at)? * 100 + two(b, at + 2)?)
}

const fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// The number of days in a month (1..=12) of a year.
pub(crate) const fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
const fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Checks a calendar date and returns its day number.
fn date_days(year: u32, month: u32, day: u32) -> Option<i64> {
    let y = i64::from(year);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(y, month) {
        return None;
    }
    Some(days_from_civil(y, month, day))
}

/// Parses `YYYY-MM-DD` at the start of `b`.
fn ymd(b: &[u8]) -> Option<i64> {
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    date_days(four(b, 0)?, two(b, 5)?, two(b, 8)?)
}

/// Parses what follows the date: returns seconds of the day, nanoseconds and the offset (east of UTC) to apply.
fn time_part(b: &[u8]) -> Option<(u32, u32, i32)> {
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let hour = two(b, 11)?;
    if b.get(13) != Some(&b':') {
        return None;
    }
    let minute = two(b, 14)?;
    let mut i = 16;
    let mut second = 0;
    let mut nanos = 0;
    if b.get(i) == Some(&b':') {
        second = two(b, i + 1)?;
        i += 3;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            let mut scale = 100_000_000u32;
            while let Some(d) = b.get(i).and_then(|c| digit(*c)) {
                nanos += d * scale;
                scale /= 10;
                i += 1;
            }
            if i == start {
                return None;
            }
        }
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let offset = match b.get(i) {
        None => NAIVE,
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) => {
            let oh = two(b, i + 1)?;
            let om = match (b.get(i + 3), b.len() - i) {
                (Some(b':'), 6) => two(b, i + 4)?,
                (_, 5) => two(b, i + 3)?,
                _ => return None,
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let secs = (oh * 3600 + om * 60) as i32;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    Some((hour * 3600 + minute * 60 + second, nanos, offset))
}

/// Marks a time without a zone: replaced by the batch's zone.
const NAIVE: i32 = i32::MIN;

/// Parses a timestamp of any accepted form; naive ones are in `zone_secs` east of UTC.
///
/// Accepted: `YYYY-MM-DD`, then optionally `T`/`t`/space, `HH:MM`, optionally `:SS`, optionally `.fraction`
/// (seconds required before a fraction), then optionally `Z`/`z` or `±HH:MM` / `±HHMM`.
pub(crate) fn timestamp(s: &str, zone_secs: i32) -> Result<DateTime<Utc>, TimeError> {
    let b = s.as_bytes();
    let days = ymd(b).ok_or(TimeError::Invalid)?;
    let (secs_of_day, nanos, offset) = if b.len() == 10 {
        (0, 0, zone_secs)
    } else {
        time_part(b).ok_or(TimeError::Invalid)?
    };
    let offset = if offset == NAIVE { zone_secs } else { offset };
    let utc = days * 86_400 + i64::from(secs_of_day) - i64::from(offset);
    if utc < EARLIEST {
        return Err(TimeError::TooEarly);
    }
    DateTime::from_timestamp(utc, nanos).ok_or(TimeError::Invalid)
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Parses the users export's `Mon D, YYYY` (also a full month name, and without the comma) as midnight in the
/// batch's zone.
pub(crate) fn month_day_year(s: &str, zone_secs: i32) -> Result<DateTime<Utc>, TimeError> {
    let mut parts = s.split_whitespace();
    let (Some(month), Some(day), Some(year), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TimeError::Invalid);
    };
    let month = month.trim_end_matches('.').to_ascii_lowercase();
    let m = MONTHS
        .iter()
        .position(|name| month.len() >= 3 && name.starts_with(month.as_str()))
        .ok_or(TimeError::Invalid)?;
    let day = day.strip_suffix(',').unwrap_or(day);
    if day.is_empty() || day.len() > 2 || !day.bytes().all(|c| c.is_ascii_digit()) {
        return Err(TimeError::Invalid);
    }
    if year.len() != 4 || !year.bytes().all(|c| c.is_ascii_digit()) {
        return Err(TimeError::Invalid);
    }
    let d: u32 = day.parse().map_err(|_| TimeError::Invalid)?;
    let y: u32 = year.parse().map_err(|_| TimeError::Invalid)?;
    let days = date_days(y, m as u32 + 1, d).ok_or(TimeError::Invalid)?;
    let utc = days * 86_400 - i64::from(zone_secs);
    if utc < EARLIEST {
        return Err(TimeError::TooEarly);
    }
    DateTime::from_timestamp(utc, 0).ok_or(TimeError::Invalid)
}

/// Splits a list cell at commas; items trimmed, empty ones dropped; `None` when nothing is left.
pub(crate) fn list(s: &str) -> Option<Vec<String>> {
    let v: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    (!v.is_empty()).then_some(v)
}

/// Parses a flag: true/yes/1 or false/no/0, any case.
pub(crate) fn flag(s: &str) -> Option<bool> {
    const TRUE: [&str; 3] = ["true", "yes", "1"];
    const FALSE: [&str; 3] = ["false", "no", "0"];
    if TRUE.iter().any(|t| s.eq_ignore_ascii_case(t)) {
        Some(true)
    } else if FALSE.iter().any(|t| s.eq_ignore_ascii_case(t)) {
        Some(false)
    } else {
        None
    }
}

/// Quotes a value for a one-line message, cut to a readable length.
pub(crate) fn show(s: &str) -> String {
    const MAX: usize = 60;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{:?}…", s.get(..i).unwrap_or_default()),
        None => format!("{s:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Result<String, TimeError> {
        timestamp(s, 3600).map(|t| t.to_rfc3339())
    }

    #[test]
    fn timestamp_forms() {
        assert_eq!(
            ts("2025-11-01T15:00:00Z").unwrap(),
            "2025-11-01T15:00:00+00:00"
        );
        assert_eq!(
            ts("2025-11-01t15:00z").unwrap(),
            "2025-11-01T15:00:00+00:00"
        );
        assert_eq!(ts("2025-11-01 15:00").unwrap(), "2025-11-01T14:00:00+00:00");
        assert_eq!(
            ts("2025-11-01T15:00:30.5").unwrap(),
            "2025-11-01T14:00:30.500+00:00"
        );
        assert_eq!(
            ts("2025-11-01T15:00+02:00").unwrap(),
            "2025-11-01T13:00:00+00:00"
        );
        assert_eq!(
            ts("2025-11-01T15:00:00-0130").unwrap(),
            "2025-11-01T16:30:00+00:00"
        );
        assert_eq!(ts("2025-11-01").unwrap(), "2025-10-31T23:00:00+00:00");
        assert_eq!(ts("2024-02-29").unwrap(), "2024-02-28T23:00:00+00:00");
        for bad in [
            "2025-02-29",
            "2025-13-01",
            "2025-00-10",
            "2025-11-31",
            "2025-11-01T24:00",
            "2025-11-01T10:60",
            "2025-11-01T10:00:60",
            "2025-11-01T10",
            "2025-11-01T10:00:00.",
            "2025-11-01T10:00.5",
            "2025-11-01X10:00",
            "2025/11/01",
            "25-11-01",
            "2025-11-01T10:00Z1",
            "2025-11-01T10:00+2",
            "2025-11-01T10:00+24:00",
            "2025-11-01T10:00 +01:00",
            "",
            "now",
        ] {
            assert_eq!(ts(bad), Err(TimeError::Invalid), "{bad:?}");
        }
        assert_eq!(ts("1999-12-31T23:59:59Z"), Err(TimeError::TooEarly));
        assert_eq!(ts("2000-01-01T00:30:00+01:00"), Err(TimeError::TooEarly));
        assert!(ts("2000-01-01T00:00:00Z").is_ok());
    }

    #[test]
    fn export_dates() {
        let d = |s| month_day_year(s, 0).map(|t| t.to_rfc3339());
        assert_eq!(d("Dec 14, 2025").unwrap(), "2025-12-14T00:00:00+00:00");
        assert_eq!(d("december 1 2025").unwrap(), "2025-12-01T00:00:00+00:00");
        for bad in [
            "Dec 32, 2025",
            "Feb 29, 2025",
            "De 14, 2025",
            "Dec, 2025",
            "Dec 14, 25",
            "Foo 1, 2025",
        ] {
            assert_eq!(d(bad), Err(TimeError::Invalid), "{bad:?}");
        }
        assert_eq!(d("Jan 1, 1999"), Err(TimeError::TooEarly));
    }

    #[test]
    fn lists_and_flags() {
        assert_eq!(
            list(" a, ,b ,,"),
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(list(" , "), None);
        assert_eq!(flag("YES"), Some(true));
        assert_eq!(flag("0"), Some(false));
        assert_eq!(flag("maybe"), None);
    }
}
