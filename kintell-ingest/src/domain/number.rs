//! Exact numbers: integers and decimals as written in a file, and the bounded values built from them.
//!
//! Decimals never pass through binary floating point: a [`Decimal`] is an integer count of units at a decimal
//! scale, and rounding is half away from zero in integer arithmetic.

use std::fmt;

/// Why a number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// Not of the accepted syntax (error code `invalid_number`).
    #[error("{value:?} is not a valid {what}")]
    Invalid {
        /// `integer` or `decimal`.
        what: &'static str,
        /// The input.
        value: String,
    },
    /// Well-formed but outside the allowed range (error code `out_of_range`).
    #[error("{value} is outside the allowed range {min}..={max}")]
    OutOfRange {
        /// The input, trimmed.
        value: String,
        /// The smallest allowed value, rendered.
        min: String,
        /// The largest allowed value, rendered.
        max: String,
    },
}

/// Most digits kept on either side of the point; a longer integer part is out of every column's range, a longer
/// fraction is refused as invalid.
const MAX_DIGITS: usize = 18;

/// An exact decimal as written: `-?digits(.digits)?`, no exponent, no `+`, no leading `.`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    units: i128,
    scale: u32,
}

/// The result of parsing a decimal whose syntax is valid.
enum Parsed {
    Value(Decimal),
    /// More integer digits than any column holds: out of range whatever the bounds.
    Huge,
}

fn parse_decimal(input: &str) -> Result<Parsed, NumberError> {
    let invalid = || NumberError::Invalid {
        what: "decimal",
        value: input.to_owned(),
    };
    let t = input.trim();
    let (negative, body) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let frac = match frac {
        Some(f) if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) => return Err(invalid()),
        Some(f) => f.trim_end_matches('0'),
        None => "",
    };
    let int = int.trim_start_matches('0');
    if frac.len() > MAX_DIGITS {
        return Err(invalid());
    }
    if int.len() > MAX_DIGITS {
        return Ok(Parsed::Huge);
    }
    let mut units: i128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        units = units * 10 + i128::from(b - b'0');
    }
    let units = if negative { -units } else { units };
    Ok(Parsed::Value(Decimal {
        units,
        scale: frac.len() as u32,
    }))
}

impl Decimal {
    /// Parses a decimal and checks it lies within `min..=max` (given in hundredths), exactly, before any rounding.
    ///
    /// # Errors
    /// [`NumberError::Invalid`] for bad syntax, [`NumberError::OutOfRange`] outside the bounds.
    pub fn parse_in_range(
        input: &str,
        min_hundredths: i64,
        max_hundredths: i64,
    ) -> Result<Self, NumberError> {
        let out_of_range = || NumberError::OutOfRange {
            value: input.trim().to_owned(),
            min: render_hundredths(min_hundredths),
            max: render_hundredths(max_hundredths),
        };
        match parse_decimal(input)? {
            Parsed::Huge => Err(out_of_range()),
            Parsed::Value(d) => {
                let lo = Decimal {
                    units: i128::from(min_hundredths),
                    scale: 2,
                };
                let hi = Decimal {
                    units: i128::from(max_hundredths),
                    scale: 2,
                };
                if d.cmp_exact(&lo).is_lt() || d.cmp_exact(&hi).is_gt() {
                    Err(out_of_range())
                } else {
                    Ok(d)
                }
            }
        }
    }

    fn cmp_exact(&self, other: &Decimal) -> std::cmp::Ordering {
        let s = self.scale.max(other.scale);
        let a = self.units * 10i128.pow(s - self.scale);
        let b = other.units * 10i128.pow(s - other.scale);
        a.cmp(&b)
    }

    /// The value in hundredths, rounded half away from zero.
    pub fn to_hundredths(&self) -> i64 {
        Self::round_div(self.units * 100, 10i128.pow(self.scale)) as i64
    }

    /// Divides rounding half away from zero.
    fn round_div(num: i128, den: i128) -> i128 {
        let q = num / den;
        let r = num % den;
        if 2 * r.abs() >= den {
            q + num.signum()
        } else {
            q
        }
    }
}

fn render_hundredths(h: i64) -> String {
    let sign = if h < 0 { "-" } else { "" };
    let a = h.unsigned_abs();
    match a % 100 {
        0 => format!("{sign}{}", a / 100),
        f if f % 10 == 0 => format!("{sign}{}.{}", a / 100, f / 10),
        f => format!("{sign}{}.{f:02}", a / 100),
    }
}

/// Parses `-?digits` within `min..=max`.
///
/// # Errors
/// [`NumberError::Invalid`] for bad syntax (fractions, exponents, hex, `+`), [`NumberError::OutOfRange`] outside.
pub fn parse_integer(input: &str, min: i64, max: i64) -> Result<i64, NumberError> {
    let t = input.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumberError::Invalid {
            what: "integer",
            value: input.to_owned(),
        });
    }
    let out_of_range = || NumberError::OutOfRange {
        value: t.to_owned(),
        min: min.to_string(),
        max: max.to_string(),
    };
    let v: i64 = t.parse().map_err(|_| out_of_range())?;
    if v < min || v > max {
        Err(out_of_range())
    } else {
        Ok(v)
    }
}

/// A session rating normalised to 0..=1, held in hundredths (column `NUMERIC(3,2)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rating(u8);

impl Rating {
    /// Parses a rating on the 0–1 scale, stored as is (rounded to hundredths).
    ///
    /// # Errors
    /// See [`NumberError`].
    pub fn parse_unit(input: &str) -> Result<Self, NumberError> {
        let d = Decimal::parse_in_range(input, 0, 100)?;
        Ok(Rating(d.to_hundredths() as u8))
    }

    /// Parses a rating on the 1–5 scale, stored as `(r − 1) / 4` rounded half away from zero to hundredths.
    ///
    /// # Errors
    /// See [`NumberError`].
    pub fn parse_five_point(input: &str) -> Result<Self, NumberError> {
        let d = Decimal::parse_in_range(input, 100, 500)?;
        let one = 10i128.pow(d.scale);
        let h = Decimal::round_div((d.units - one) * 100, 4 * one);
        Ok(Rating(h as u8))
    }

    /// Builds a rating from hundredths.
    ///
    /// # Errors
    /// [`NumberError::OutOfRange`] above 100.
    pub fn from_hundredths(h: i64) -> Result<Self, NumberError> {
        u8::try_from(h)
            .ok()
            .filter(|v| *v <= 100)
            .map(Rating)
            .ok_or_else(|| NumberError::OutOfRange {
                value: render_hundredths(h),
                min: "0".into(),
                max: "1".into(),
            })
    }

    /// The rating in hundredths (0..=100).
    pub fn hundredths(self) -> u8 {
        self.0
    }
}

impl fmt::Display for Rating {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// A course's final score, 0..=100 with two decimals (column `NUMERIC(6,2)`), held in hundredths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FinalScore(u16);

impl FinalScore {
    /// Parses a decimal 0..=100, rounded half away from zero to hundredths.
    ///
    /// # Errors
    /// See [`NumberError`].
    pub fn parse(input: &str) -> Result<Self, NumberError> {
        let d = Decimal::parse_in_range(input, 0, 10_000)?;
        Ok(FinalScore(d.to_hundredths() as u16))
    }

    /// Builds a score from hundredths.
    ///
    /// # Errors
    /// [`NumberError::OutOfRange`] outside 0..=10000.
    pub fn from_hundredths(h: i64) -> Result<Self, NumberError> {
        u16::try_from(h)
            .ok()
            .filter(|v| *v <= 10_000)
            .map(FinalScore)
            .ok_or_else(|| NumberError::OutOfRange {
                value: render_hundredths(h),
                min: "0".into(),
                max: "100".into(),
            })
    }

    /// The score in hundredths (0..=10000).
    pub fn hundredths(self) -> u16 {
        self.0
    }
}

impl fmt::Display for FinalScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// Defines an integer newtype with inclusive bounds.
macro_rules! bounded_int {
    ($(#[$meta:meta])* $name:ident($inner:ty), $min:expr, $max:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name($inner);

        impl $name {
            /// The smallest value.
            pub const MIN: $inner = $min;
            /// The largest value.
            pub const MAX: $inner = $max;

            /// Parses `-?digits` within the bounds.
            ///
            /// # Errors
            /// See [`NumberError`].
            pub fn parse(input: &str) -> Result<Self, NumberError> {
                parse_integer(input, Self::MIN as i64, Self::MAX as i64).map(|v| $name(v as $inner))
            }

            /// Checks a value against the bounds.
            ///
            /// # Errors
            /// [`NumberError::OutOfRange`].
            pub fn new(v: i64) -> Result<Self, NumberError> {
                if v < Self::MIN as i64 || v > Self::MAX as i64 {
                    Err(NumberError::OutOfRange {
                        value: v.to_string(),
                        min: Self::MIN.to_string(),
                        max: Self::MAX.to_string(),
                    })
                } else {
                    Ok($name(v as $inner))
                }
            }

            /// The value.
            pub fn get(self) -> $inner {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = <i64 as serde::Deserialize>::deserialize(d)?;
                Self::new(v).map_err(serde::de::Error::custom)
            }
        }
    };
}

bounded_int!(
    /// A session's length in minutes, 1..=480.
    DurationMinutes(u16), 1, 480
);
bounded_int!(
    /// A course's progress in percent, 0..=100.
    ProgressPercent(u8), 0, 100
);
bounded_int!(
    /// An association's confidence, 0..=100.
    Confidence(u8), 0, 100
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn five_point_ratings_round_half_away_from_zero() {
        let r = |s| Rating::parse_five_point(s).map(|r| r.to_string());
        assert_eq!(r("1.5").unwrap(), "0.13");
        assert_eq!(r("5").unwrap(), "1.00");
        assert_eq!(r("1").unwrap(), "0.00");
        assert_eq!(r("4").unwrap(), "0.75");
        assert_eq!(r("2.02").unwrap(), "0.26"); // 0.255 → 0.26
        assert!(matches!(
            Rating::parse_five_point("5.0001"),
            Err(NumberError::OutOfRange { .. })
        ));
        assert!(matches!(
            Rating::parse_five_point("0.99"),
            Err(NumberError::OutOfRange { .. })
        ));
        assert!(matches!(
            Rating::parse_five_point("9"),
            Err(NumberError::OutOfRange { .. })
        ));
    }

    #[test]
    fn unit_ratings_check_range_before_rounding() {
        assert_eq!(Rating::parse_unit("0.995").unwrap().to_string(), "1.00");
        assert!(matches!(
            Rating::parse_unit("1.001"),
            Err(NumberError::OutOfRange { .. })
        ));
        assert_eq!(Rating::parse_unit("-0").unwrap().hundredths(), 0);
        assert!(matches!(
            Rating::parse_unit("-0.01"),
            Err(NumberError::OutOfRange { .. })
        ));
    }

    #[test]
    fn decimal_syntax() {
        for bad in [
            "", "1e3", "+1", ".5", "5.", "1,5", "0x10", "- 1", "NaN", "1.2.3",
        ] {
            assert!(
                matches!(FinalScore::parse(bad), Err(NumberError::Invalid { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(FinalScore::parse("92.5").unwrap().to_string(), "92.50");
        assert_eq!(FinalScore::parse("0099.999").unwrap().to_string(), "100.00");
        assert!(matches!(
            FinalScore::parse("100000000000000000000000000000"),
            Err(NumberError::OutOfRange { .. })
        ));
        let e = FinalScore::parse("100.5").unwrap_err();
        assert_eq!(e.to_string(), "100.5 is outside the allowed range 0..=100");
    }

    #[test]
    fn integers() {
        assert_eq!(DurationMinutes::parse("60").unwrap().get(), 60);
        for bad in ["6.0", "1e2", "0x1", "+5", "", "-"] {
            assert!(
                matches!(
                    DurationMinutes::parse(bad),
                    Err(NumberError::Invalid { .. })
                ),
                "{bad:?}"
            );
        }
        for out in ["0", "-5", "481", "99999999999999999999999"] {
            assert!(
                matches!(
                    DurationMinutes::parse(out),
                    Err(NumberError::OutOfRange { .. })
                ),
                "{out:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn durations_round_trip(v in 1i64..=480) {
            let d = DurationMinutes::parse(&v.to_string()).unwrap();
            prop_assert_eq!(DurationMinutes::parse(&d.to_string()).unwrap(), d);
        }

        #[test]
        fn scores_round_trip(h in 0u16..=10_000) {
            let s = FinalScore::from_hundredths(i64::from(h)).unwrap();
            prop_assert_eq!(FinalScore::parse(&s.to_string()).unwrap(), s);
        }

        #[test]
        fn unit_ratings_round_trip(h in 0u8..=100) {
            let r = Rating::from_hundredths(i64::from(h)).unwrap();
            prop_assert_eq!(Rating::parse_unit(&r.to_string()).unwrap(), r);
        }

        #[test]
        fn five_point_rating_stays_in_unit_range(i in 1u32..=5, f in 0u32..100) {
            let s = if i == 5 { "5".to_owned() } else { format!("{i}.{f:02}") };
            let r = Rating::parse_five_point(&s).unwrap();
            prop_assert!(r.hundredths() <= 100);
        }

        #[test]
        fn arbitrary_text_never_panics(s in any::<String>()) {
            let _ = FinalScore::parse(&s);
            let _ = Rating::parse_five_point(&s);
            let _ = DurationMinutes::parse(&s);
        }
    }
}
