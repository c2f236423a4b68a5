//! The `error_summary` of a batch: rejected rows counted by code, and the first few kept as examples.

use std::collections::BTreeMap;

/// One rejected row as `error_summary.first` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ErrorSample {
    /// 1-based data record number (header excluded).
    pub row: u64,
    /// Physical line where the record starts.
    pub line: u64,
    /// The row's first error code, e.g. `invalid_email`.
    pub code: String,
    /// The field the code is about, if any (`null` in JSON otherwise).
    pub field: Option<String>,
    /// One-line human message.
    pub message: String,
}

impl ErrorSample {
    /// Builds a sample from its parts.
    pub fn new(
        row: u64,
        line: u64,
        code: impl Into<String>,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        ErrorSample {
            row,
            line,
            code: code.into(),
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }
}

/// Accumulates a batch's `error_summary`: `{"by_code": {code: rows, …}, "first": [sample, …]}`.
///
/// `by_code` counts rows by their first code, in a sorted map; `first` keeps the [`ErrorSummary::FIRST_LIMIT`]
/// samples with the smallest row numbers, sorted by row, whatever order rows and chunks arrive in, so a summary
/// merged from chunks (or rebuilt after a resume) equals the one a single pass would give.
///
/// Each row is meant to be recorded once: the pipeline records a chunk's errors into a summary of its own and
/// [`merge`](ErrorSummary::merge)s it only after the chunk commits, so a rolled-back chunk leaves no trace. Recording
/// the same row number twice keeps the later sample in `first` (as a resumed run rewrites a row's error) but counts
/// both in `by_code`, because telling them apart would mean remembering every row.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(from = "RawSummary")]
pub struct ErrorSummary {
    by_code: BTreeMap<String, u64>,
    first: Vec<ErrorSample>,
}

/// The serialised shape, normalised on the way in so that a summary read back keeps the type's invariants.
#[derive(serde::Deserialize)]
struct RawSummary {
    #[serde(default)]
    by_code: BTreeMap<String, u64>,
    #[serde(default)]
    first: Vec<ErrorSample>,
}

impl From<RawSummary> for ErrorSummary {
    fn from(raw: RawSummary) -> Self {
        ErrorSummary::from_parts(raw.by_code, raw.first)
    }
}

impl ErrorSummary {
    /// How many samples `first` keeps.
    pub const FIRST_LIMIT: usize = 10;

    /// An empty summary.
    pub fn new() -> Self {
        ErrorSummary::default()
    }

    /// A summary rebuilt from stored counts and samples (e.g. from `ingestion_row_errors`); the samples are sorted,
    /// deduplicated by row and cut to [`ErrorSummary::FIRST_LIMIT`].
    pub fn from_parts(
        by_code: BTreeMap<String, u64>,
        first: impl IntoIterator<Item = ErrorSample>,
    ) -> Self {
        let mut summary = ErrorSummary {
            by_code,
            first: Vec::new(),
        };
        for sample in first {
            summary.keep_sample(sample);
        }
        summary
    }

    /// Records one rejected row.
    pub fn record(&mut self, sample: ErrorSample) {
        let count = self.by_code.entry(sample.code.clone()).or_insert(0);
        *count = count.saturating_add(1);
        self.keep_sample(sample);
    }

    /// Adds another summary (a committed chunk's) into this one.
    pub fn merge(&mut self, other: &ErrorSummary) {
        for (code, n) in &other.by_code {
            let count = self.by_code.entry(code.clone()).or_insert(0);
            *count = count.saturating_add(*n);
        }
        for sample in &other.first {
            self.keep_sample(sample.clone());
        }
    }

    /// Rows counted per code, sorted by code.
    pub fn by_code(&self) -> &BTreeMap<String, u64> {
        &self.by_code
    }

    /// The samples with the smallest row numbers, sorted by row, at most [`ErrorSummary::FIRST_LIMIT`].
    pub fn first(&self) -> &[ErrorSample] {
        &self.first
    }

    /// All rows counted.
    pub fn total(&self) -> u64 {
        self.by_code
            .values()
            .fold(0u64, |sum, n| sum.saturating_add(*n))
    }

    /// Whether no row was recorded.
    pub fn is_empty(&self) -> bool {
        self.by_code.is_empty() && self.first.is_empty()
    }

    /// The JSON document stored in `ingestion_batches.error_summary`.
    pub fn to_json(&self) -> serde_json::Value {
        let first: Vec<serde_json::Value> = self
            .first
            .iter()
            .map(|s| {
                serde_json::json!({
                    "row": s.row,
                    "line": s.line,
                    "code": s.code,
                    "field": s.field,
                    "message": s.message,
                })
            })
            .collect();
        serde_json::json!({ "by_code": self.by_code, "first": first })
    }

    fn keep_sample(&mut self, sample: ErrorSample) {
        match self.first.binary_search_by_key(&sample.row, |s| s.row) {
            Ok(at) => {
                if let Some(slot) = self.first.get_mut(at) {
                    *slot = sample;
                }
            }
            Err(at) if at < Self::FIRST_LIMIT => {
                self.first.insert(at, sample);
                self.first.truncate(Self::FIRST_LIMIT);
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(row: u64, code: &str) -> ErrorSample {
        ErrorSample::new(row, row + 1, code, Some("email"), format!("row {row}"))
    }

    #[test]
    fn json_has_the_documented_shape() {
        let mut s = ErrorSummary::new();
        s.record(ErrorSample::new(
            5,
            6,
            "invalid_email",
            Some("participant_email"),
            "not an email",
        ));
        s.record(ErrorSample::new(
            2,
            3,
            "missing_field",
            None,
            "date is required",
        ));
        s.record(ErrorSample::new(
            9,
            12,
            "invalid_email",
            Some("volunteer_email"),
            "not an email",
        ));
        let expected = serde_json::json!({
            "by_code": {"invalid_email": 2, "missing_field": 1},
            "first": [
                {"row": 2, "line": 3, "code": "missing_field", "field": null, "message": "date is required"},
                {"row": 5, "line": 6, "code": "invalid_email", "field": "participant_email", "message": "not an email"},
                {"row": 9, "line": 12, "code": "invalid_email", "field": "volunteer_email", "message": "not an email"},
            ],
        });
        assert_eq!(s.to_json(), expected);
        assert_eq!(s.total(), 3);
        assert_eq!(serde_json::to_value(&s).expect("serialises"), s.to_json());
    }

    #[test]
    fn first_keeps_the_ten_smallest_rows() {
        let mut s = ErrorSummary::new();
        for row in (1..=30).rev() {
            s.record(sample(row, "bad"));
        }
        let rows: Vec<u64> = s.first().iter().map(|x| x.row).collect();
        assert_eq!(rows, (1..=10).collect::<Vec<_>>());
        assert_eq!(s.by_code().get("bad"), Some(&30));
    }

    #[test]
    fn a_row_recorded_again_replaces_its_sample() {
        let mut s = ErrorSummary::new();
        s.record(sample(3, "old"));
        s.record(sample(3, "new"));
        assert_eq!(s.first().len(), 1);
        assert_eq!(s.first().first().map(|x| x.code.as_str()), Some("new"));
    }

    #[test]
    fn reading_back_normalises() {
        let json = r#"{"by_code":{"b":1,"a":2},"first":[{"row":9,"line":9,"code":"a","field":null,"message":"m"},
            {"row":1,"line":1,"code":"a","field":null,"message":"m"},{"row":4,"line":5,"code":"b","field":"x","message":"m"}]}"#;
        let s: ErrorSummary = serde_json::from_str(json).expect("parses");
        let rows: Vec<u64> = s.first().iter().map(|x| x.row).collect();
        assert_eq!(rows, [1, 4, 9]);
        assert_eq!(
            serde_json::from_value::<ErrorSummary>(s.to_json()).expect("parses"),
            s
        );
        assert!(
            serde_json::from_str::<ErrorSummary>("{}")
                .expect("parses")
                .is_empty()
        );
    }

    proptest! {
        #[test]
        fn merging_chunks_equals_one_pass(
            rows in proptest::collection::btree_set(1u64..500, 0..60),
            cut in 0usize..60,
            codes in proptest::collection::vec(prop_oneof!["a", "b", "c"], 60),
        ) {
            let samples: Vec<ErrorSample> = rows
                .iter()
                .zip(codes.iter())
                .map(|(r, c)| sample(*r, c))
                .collect();
            let mut one = ErrorSummary::new();
            for s in &samples {
                one.record(s.clone());
            }
            let (a, b) = samples.split_at(cut.min(samples.len()));
            let mut left = ErrorSummary::new();
            let mut right = ErrorSummary::new();
            // Chunks arrive in any order: record the second half first and backwards.
            for s in b.iter().rev() {
                right.record(s.clone());
            }
            for s in a {
                left.record(s.clone());
            }
            let mut merged = ErrorSummary::new();
            merged.merge(&right);
            merged.merge(&left);
            prop_assert_eq!(&merged, &one);
            prop_assert_eq!(one.total(), samples.len() as u64);
            prop_assert!(one.first().len() <= ErrorSummary::FIRST_LIMIT);
            prop_assert!(one.first().windows(2).all(|w| w[0].row < w[1].row));
        }
    }
}
