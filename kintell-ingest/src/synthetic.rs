//! Deterministic synthetic input for tests, benchmarks and examples: a Kintell sessions export shaped like the
//! shared benchmark generator (`../shared/bench/gen_sessions.py`), streamed without holding the file in memory.
//!
//! The same seed always gives the same bytes. The values follow the shared generator's distributions (people,
//! dates over 700 days from 2024-01-01, durations, ratings, feedback with quotes, commas and Cyrillic, CRLF line
//! ends), and `bad_every` makes every K-th row invalid in one of four ways, in the same rotation: an invalid date,
//! an email without `@`, a rating of 9, a duration of -5. The random stream is our own (SplitMix64), so the rows
//! are not byte-identical to the Python script's.

use std::io::{self, Read, Write};

use chrono::{DateTime, TimeZone, Utc};

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionsSpec {
    /// Number of data rows.
    pub rows: u64,
    /// Seed of the random stream (the shared generator's default is 7).
    pub seed: u64,
    /// Every `bad_every`-th row is invalid; 0 for none.
    pub bad_every: u64,
}

impl SessionsSpec {
    /// `rows` valid rows with the default seed.
    pub fn new(rows: u64) -> Self {
        SessionsSpec {
            rows,
            seed: 7,
            bad_every: 0,
        }
    }

    /// Makes every `k`-th row invalid.
    pub fn bad_every(mut self, k: u64) -> Self {
        self.bad_every = k;
        self
    }

    /// Uses another seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// A reader streaming the CSV.
    pub fn reader(self) -> SyntheticSessions {
        SyntheticSessions::new(self)
    }

    /// The whole CSV in memory.
    pub fn to_bytes(self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut r = self.reader();
        // Reading from this generator cannot fail.
        let _ = r.read_to_end(&mut out);
        out
    }

    /// Whether row `i` (1-based) is one of the invalid ones.
    pub fn is_bad(&self, i: u64) -> bool {
        self.bad_every != 0 && i.is_multiple_of(self.bad_every)
    }
}

/// The header the generator writes (the connector's live export).
pub const SESSIONS_HEADER: &str = "session_id,session_type,participant_email,volunteer_email,date,duration_min,rating,feedback_text,language_level";

/// The latest session time the generator can produce; an ingest time after it keeps every date in range.
pub fn latest_session_time() -> DateTime<Utc> {
    start() + chrono::TimeDelta::minutes(MINUTES_SPAN as i64)
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

const MINUTES_SPAN: u64 = 60 * 24 * 700;
const LEVELS: [&str; 7] = ["A1", "A2", "B1", "B2", "C1", "C2", ""];
const FEEDBACK: [&str; 5] = [
    "Great session! Very helpful with grammar",
    "Good career advice",
    "Excellent progress, with \"quotes\" and, commas",
    "",
    "Дякую за допомогу",
];
const DURATIONS: [u32; 4] = [30, 45, 60, 90];

/// A small, fast, deterministic random stream (SplitMix64).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A stream from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len() as u64) as usize)
    }
}

/// Streams a synthetic sessions CSV; see [`SessionsSpec`].
#[derive(Debug, Clone)]
pub struct SyntheticSessions {
    spec: SessionsSpec,
    rng: SplitMix64,
    next_row: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl SyntheticSessions {
    /// A generator for `spec`.
    pub fn new(spec: SessionsSpec) -> Self {
        let mut buf = Vec::with_capacity(16 * 1024);
        buf.extend_from_slice(SESSIONS_HEADER.as_bytes());
        buf.extend_from_slice(b"\r\n");
        SyntheticSessions {
            spec,
            rng: SplitMix64::new(spec.seed),
            next_row: 1,
            buf,
            pos: 0,
        }
    }

    fn write_row(&mut self, i: u64) {
        let rng = &mut self.rng;
        let language = rng.below(2) == 0;
        let kind = if language {
            "Language Connect"
        } else {
            "Mentorship"
        };
        let mut participant = format!("participant{}@example.com", rng.below(20_000));
        let volunteer = format!("volunteer{}@volunteer.org", rng.below(5_000));
        let when = start() + chrono::TimeDelta::minutes(rng.below(MINUTES_SPAN) as i64);
        let mut date = when.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let mut duration = rng.pick(&DURATIONS).copied().unwrap_or(60).to_string();
        let mut rating = (1 + rng.below(5)).to_string();
        let feedback = rng.pick(&FEEDBACK).copied().unwrap_or_default();
        let level = if language {
            rng.pick(&LEVELS).copied().unwrap_or_default()
        } else {
            ""
        };
        if self.spec.is_bad(i) {
            match (i / self.spec.bad_every) % 4 {
                0 => date = "not-a-date".to_owned(),
                1 => participant = "no-at-sign".to_owned(),
                2 => rating = "9".to_owned(),
                _ => duration = "-5".to_owned(),
            }
        }
        let id = format!("KINTELL-{i:08}");
        let fields = [
            id.as_str(),
            kind,
            &participant,
            &volunteer,
            &date,
            &duration,
            &rating,
            feedback,
            level,
        ];
        for (n, f) in fields.iter().enumerate() {
            if n > 0 {
                self.buf.push(b',');
            }
            write_field(&mut self.buf, f);
        }
        self.buf.extend_from_slice(b"\r\n");
    }
}

/// Writes a field with minimal RFC 4180 quoting (as Python's `csv` module does).
pub fn write_field(out: &mut Vec<u8>, field: &str) {
    if field
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
    {
        out.push(b'"');
        for b in field.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(field.as_bytes());
    }
}

impl Read for SyntheticSessions {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() && self.next_row <= self.spec.rows {
            self.buf.clear();
            self.pos = 0;
            // Batch rows so each refill is worth it.
            while self.buf.len() < 8 * 1024 && self.next_row <= self.spec.rows {
                let i = self.next_row;
                self.write_row(i);
                self.next_row += 1;
            }
        }
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let n = rest.len().min(out.len());
        out.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(rest.get(..n).unwrap_or_default());
        self.pos += n;
        Ok(n)
    }
}

/// Writes a synthetic sessions CSV to `out`.
///
/// # Errors
/// Whatever `out` returns.
pub fn write_sessions<W: Write>(spec: SessionsSpec, mut out: W) -> io::Result<u64> {
    io::copy(&mut spec.reader(), &mut out)
}
