//! The programme instance a file name announces (`mentors_for_ukraine_2024_q4.csv`, `kintell-lang-2025.csv`).

use std::sync::LazyLock;

use chrono::NaiveDate;
use regex::Regex;

use crate::domain::{ProgramSlug, ProgramType};

use super::values::days_in_month;

/// A programme instance derived from a file name: what the pipeline finds or creates.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileNameInstance {
    /// The slug, e.g. `mentors-ukraine-2024-q4`.
    pub slug: ProgramSlug,
    /// The display name, e.g. `Mentors for Ukraine - Q4 2024`.
    pub name: String,
    /// `mentors_ukraine` or `language_ukraine`.
    pub program_type: ProgramType,
    /// First day of the quarter, month or year.
    pub start_date: NaiveDate,
    /// Last day of the quarter, month or year.
    pub end_date: NaiveDate,
}

// Matched against the ASCII-lower-cased base name, which makes them case-insensitive without Unicode case folding
// (the Kelvin sign must not match `k`); `[0-9]` rather than `\d`, which would accept any script's digits.
static PERIODIC: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(mentors|language)[-_](for[-_])?ukraine[-_]([0-9]{4})[-_](q[1-4]|[0-9]{2})").ok()
});
static YEARLY: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"kintell[-_](mentor|mentorship|language|lang)[-_]([0-9]{4})").ok()
});

const MONTH_NAMES: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Resolves the programme instance a file name announces, if any.
///
/// Only the base name counts (after the last `/` or `\`). The two patterns are tried in order, each from its
/// leftmost match on: a match whose month is outside 01–12 fails at that position and the search resumes one
/// character further, so a later valid match can still win.
pub fn instance_from_file_name(file_name: &str) -> Option<FileNameInstance> {
    let base = file_name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(file_name)
        .to_ascii_lowercase();
    periodic(&base).or_else(|| yearly(&base))
}

fn kind(word: &str) -> (ProgramType, &'static str, &'static str) {
    if word.starts_with("mentor") {
        (
            ProgramType::MentorsUkraine,
            "mentors",
            "Mentors for Ukraine",
        )
    } else {
        (
            ProgramType::LanguageUkraine,
            "language",
            "Language for Ukraine",
        )
    }
}

fn periodic(base: &str) -> Option<FileNameInstance> {
    let re = PERIODIC.as_ref()?;
    let mut from = 0;
    while from <= base.len() {
        let caps = re.captures_at(base, from)?;
        let whole = caps.get(0)?;
        if let Some(found) = periodic_instance(&caps) {
            return Some(found);
        }
        // The next candidate starts after this one's first character (matches may overlap).
        from = whole.start() + base.get(whole.start()..)?.chars().next()?.len_utf8();
    }
    None
}

fn periodic_instance(caps: &regex::Captures<'_>) -> Option<FileNameInstance> {
    let (program_type, slug_word, title) = kind(caps.get(1)?.as_str());
    let year_text = caps.get(3)?.as_str();
    let year: i32 = year_text.parse().ok()?;
    let period = caps.get(4)?.as_str();
    let (start_month, end_month, label, slug_period) = if let Some(q) = period.strip_prefix('q') {
        let q: u32 = q.parse().ok()?;
        (
            3 * q - 2,
            3 * q,
            format!("Q{q} {year_text}"),
            format!("q{q}"),
        )
    } else {
        let m: u32 = period.parse().ok()?;
        if !(1..=12).contains(&m) {
            return None;
        }
        let name = MONTH_NAMES.get(m as usize - 1)?;
        (m, m, format!("{name} {year_text}"), format!("{m:02}"))
    };
    let start_date = NaiveDate::from_ymd_opt(year, start_month, 1)?;
    let end_date =
        NaiveDate::from_ymd_opt(year, end_month, days_in_month(i64::from(year), end_month))?;
    Some(FileNameInstance {
        slug: ProgramSlug::parse(&format!("{slug_word}-ukraine-{year_text}-{slug_period}")).ok()?,
        name: format!("{title} - {label}"),
        program_type,
        start_date,
        end_date,
    })
}

fn yearly(base: &str) -> Option<FileNameInstance> {
    let caps = YEARLY.as_ref()?.captures(base)?;
    let (program_type, slug_word, title) = kind(caps.get(1)?.as_str());
    let year_text = caps.get(2)?.as_str();
    let year: i32 = year_text.parse().ok()?;
    Some(FileNameInstance {
        slug: ProgramSlug::parse(&format!("{slug_word}-ukraine-{year_text}")).ok()?,
        name: format!("{title} - {year_text}"),
        program_type,
        start_date: NaiveDate::from_ymd_opt(year, 1, 1)?,
        end_date: NaiveDate::from_ymd_opt(year, 12, 31)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str) -> String {
        match instance_from_file_name(name) {
            Some(i) => format!(
                "{} | {} | {} | {}..{}",
                i.slug, i.name, i.program_type, i.start_date, i.end_date
            ),
            None => "none".to_owned(),
        }
    }

    #[test]
    fn spec_examples() {
        assert_eq!(
            check("mentors_for_ukraine_2024_q4.csv"),
            "mentors-ukraine-2024-q4 | Mentors for Ukraine - Q4 2024 | mentors_ukraine | 2024-10-01..2024-12-31"
        );
        assert_eq!(
            check("mentors-ukraine-2024-q4.csv"),
            "mentors-ukraine-2024-q4 | Mentors for Ukraine - Q4 2024 | mentors_ukraine | 2024-10-01..2024-12-31"
        );
        assert_eq!(
            check("language_for_ukraine_2024_11.csv"),
            "language-ukraine-2024-11 | Language for Ukraine - Nov 2024 | language_ukraine | 2024-11-01..2024-11-30"
        );
        assert_eq!(
            check("kintell-lang-2025.csv"),
            "language-ukraine-2025 | Language for Ukraine - 2025 | language_ukraine | 2025-01-01..2025-12-31"
        );
        assert_eq!(
            check("kintell-mentor-2025"),
            "mentors-ukraine-2025 | Mentors for Ukraine - 2025 | mentors_ukraine | 2025-01-01..2025-12-31"
        );
    }

    #[test]
    fn months_quarters_and_search() {
        assert_eq!(
            check("/data/exports/Language_For_Ukraine_2024_02.CSV"),
            "language-ukraine-2024-02 | Language for Ukraine - Feb 2024 | language_ukraine | 2024-02-01..2024-02-29"
        );
        assert_eq!(
            check("export-MENTORS-ukraine-2023-Q1-final.csv"),
            "mentors-ukraine-2023-q1 | Mentors for Ukraine - Q1 2023 | mentors_ukraine | 2023-01-01..2023-03-31"
        );
        assert_eq!(check("language_for_ukraine_2024_13.csv"), "none");
        assert_eq!(check("language_for_ukraine_2024_00.csv"), "none");
        // The first position fails on its month; a later one succeeds.
        assert_eq!(
            check("language_ukraine_2024_13_language_ukraine_2024_05.csv"),
            "language-ukraine-2024-05 | Language for Ukraine - May 2024 | language_ukraine | 2024-05-01..2024-05-31"
        );
        // The first pattern wins over the second even when the second matches further left.
        assert_eq!(
            check("kintell-lang-2025_mentors_ukraine_2024_q2.csv"),
            "mentors-ukraine-2024-q2 | Mentors for Ukraine - Q2 2024 | mentors_ukraine | 2024-04-01..2024-06-30"
        );
        // A bad month leaves the second pattern its chance.
        assert_eq!(
            check("language_ukraine_2024_13-kintell-mentorship-2026.csv"),
            "mentors-ukraine-2026 | Mentors for Ukraine - 2026 | mentors_ukraine | 2026-01-01..2026-12-31"
        );
        assert_eq!(check("sessions.csv"), "none");
        assert_eq!(check("mentors_ukraine/other.csv"), "none");
        assert_eq!(check("\u{212a}intell-lang-2025.csv"), "none");
        assert_eq!(check("language_ukraine_٢٠٢٤_11.csv"), "none");
    }
}
