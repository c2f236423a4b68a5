//! Building the human details of reasons without the formatting machinery: one outcome is built per activity, so
//! these strings are on the association's hot path.

use chrono::{Datelike, NaiveDate};
use std::fmt::Write as _;
use uuid::Uuid;

/// A reason's detail under construction.
pub(crate) struct Detail(String);

impl Detail {
    pub(crate) fn new(capacity: usize) -> Self {
        Detail(String::with_capacity(capacity))
    }

    pub(crate) fn text(mut self, s: &str) -> Self {
        self.0.push_str(s);
        self
    }

    /// `YYYY-MM-DD`, as chrono displays it.
    pub(crate) fn date(mut self, d: NaiveDate) -> Self {
        let y = d.year();
        if (0..=9999).contains(&y) {
            let y = y.unsigned_abs();
            self.digits(y / 100, 2).digits(y % 100, 2);
            self.0.push('-');
            self.digits(d.month(), 2);
            self.0.push('-');
            self.digits(d.day(), 2);
        } else {
            let _ = write!(self.0, "{d}");
        }
        self
    }

    /// The hyphenated lower-case form, as `Uuid` displays it.
    pub(crate) fn uuid(mut self, u: Uuid) -> Self {
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        self.0.push_str(u.hyphenated().encode_lower(&mut buf));
        self
    }

    pub(crate) fn num(mut self, n: u32) -> Self {
        if n < 10 {
            self.0.push(char::from(b'0' + (n as u8)));
        } else {
            let _ = write!(self.0, "{n}");
        }
        self
    }

    /// Items separated by `", "`.
    pub(crate) fn list<'t>(mut self, items: impl Iterator<Item = &'t str>) -> Self {
        for (i, t) in items.enumerate() {
            if i > 0 {
                self.0.push_str(", ");
            }
            self.0.push_str(t);
        }
        self
    }

    /// `n` zero-padded to `width` digits (`n` < 10^width).
    fn digits(&mut self, n: u32, width: u32) -> &mut Self {
        let mut p = 10u32.pow(width.saturating_sub(1));
        while p > 0 {
            self.0.push(char::from(b'0' + ((n / p) % 10) as u8));
            p /= 10;
        }
        self
    }

    pub(crate) fn done(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_display() {
        for d in ["2024-01-01", "0999-12-31", "2025-10-09"] {
            let date: NaiveDate = d.parse().expect("a date");
            assert_eq!(Detail::new(0).date(date).done(), date.to_string());
        }
        let far = NaiveDate::from_ymd_opt(12345, 1, 2).expect("a date");
        assert_eq!(Detail::new(0).date(far).done(), far.to_string());
        let u = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(Detail::new(0).uuid(u).done(), u.to_string());
        for n in [0, 7, 10, 120, u32::MAX] {
            assert_eq!(Detail::new(0).num(n).done(), n.to_string());
        }
        assert_eq!(
            Detail::new(0).list(["a", "b", "c"].into_iter()).done(),
            "a, b, c"
        );
    }
}
