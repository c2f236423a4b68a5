//! What association decides for one activity: decision, confidence, campaign, instance, reasons, top candidates.

use crate::domain::{CampaignId, Confidence, Decision, InstanceId};
use std::borrow::Cow;
use std::fmt;

/// Why an association came out as it did; stored as `code` in `activity_associations.reasons`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// The campaign belongs to the activity's company.
    CompanyMatch,
    /// The activity date is within the campaign's window.
    DateInWindow,
    /// Every group tag is among the participant's tags.
    TagsFull,
    /// Some, not all, group tags are among the participant's tags.
    TagsPartial,
    /// The group has no tags.
    TagsUntargeted,
    /// Campaign status `active`.
    StatusActive,
    /// Campaign status `recruiting`.
    StatusRecruiting,
    /// An `active` or `planned` instance covers the date.
    InstanceOnDate,
    /// The total exceeded 100; the confidence is 100.
    Capped,
    /// Another candidate has the same uncapped total; excludes `auto`.
    Ambiguous,
    /// The proposal has no instance covering the date; excludes `auto`.
    NoInstance,
    /// The proposal's group has tags and the participant shares none; excludes `auto`.
    NoTagEvidence,
    /// Neither the volunteer nor the participant has a company: decision `none`.
    NoCompany,
    /// No campaign passed the filter: decision `none`.
    NoCandidates,
    /// The import named the programme instance: decision `explicit`.
    ExplicitInstance,
}

impl ReasonCode {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReasonCode::CompanyMatch => "company_match",
            ReasonCode::DateInWindow => "date_in_window",
            ReasonCode::TagsFull => "tags_full",
            ReasonCode::TagsPartial => "tags_partial",
            ReasonCode::TagsUntargeted => "tags_untargeted",
            ReasonCode::StatusActive => "status_active",
            ReasonCode::StatusRecruiting => "status_recruiting",
            ReasonCode::InstanceOnDate => "instance_on_date",
            ReasonCode::Capped => "capped",
            ReasonCode::Ambiguous => "ambiguous",
            ReasonCode::NoInstance => "no_instance",
            ReasonCode::NoTagEvidence => "no_tag_evidence",
            ReasonCode::NoCompany => "no_company",
            ReasonCode::NoCandidates => "no_candidates",
            ReasonCode::ExplicitInstance => "explicit_instance",
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason: a code, its contribution to the confidence, and a human detail.
///
/// `points` is what the reason adds to the confidence, so the points of an outcome's reasons always sum to its
/// confidence: score components are positive, `capped` is minus the points cut, `explicit_instance` is 100, and the
/// reasons that only cast doubt or explain a `none` are 0.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reason {
    /// What happened.
    pub code: ReasonCode,
    /// Contribution to the confidence.
    pub points: i32,
    /// For a reviewer: the matched tags, the window, the tied campaigns, …
    pub detail: Cow<'static, str>,
}

impl Reason {
    pub(crate) fn new(code: ReasonCode, points: i32, detail: impl Into<Cow<'static, str>>) -> Self {
        Reason {
            code,
            points,
            detail: detail.into(),
        }
    }
}

/// One of the top three candidates kept for the reviewer (`activity_associations.candidates`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CandidateSummary {
    /// The campaign.
    pub campaign: CampaignId,
    /// Its uncapped total, which ranks it.
    pub total: u32,
    /// `min(100, total)`.
    pub confidence: Confidence,
}

/// The association of one activity.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    /// `explicit`, `auto`, `review`, `ignored` or `none`.
    pub decision: Decision,
    /// 0 for `none`, 100 for `explicit`, else the proposal's capped total.
    pub confidence: Confidence,
    /// The proposal (or the explicit instance's campaign); `None` for `none`.
    pub campaign: Option<CampaignId>,
    /// The proposal's instance covering the date, kept whatever the decision; `None` when there is none.
    pub instance: Option<InstanceId>,
    /// Every contributing component, then the doubts (`ambiguous`, `no_instance`, `no_tag_evidence`).
    pub reasons: Vec<Reason>,
    /// The top three candidates, best first; empty for `none` and `explicit`.
    pub candidates: Vec<CandidateSummary>,
}

impl Outcome {
    /// An instance named by the batch or the row: scoring is skipped. `campaign` is the instance's campaign
    /// (`None` for an instance without one).
    pub fn explicit(instance: InstanceId, campaign: Option<CampaignId>) -> Self {
        Outcome {
            decision: Decision::Explicit,
            confidence: confidence(100),
            campaign,
            instance: Some(instance),
            reasons: vec![Reason::new(
                ReasonCode::ExplicitInstance,
                100,
                format!("programme instance {instance} named by the import"),
            )],
            candidates: Vec::new(),
        }
    }

    pub(crate) fn none(reason: Reason) -> Self {
        Outcome {
            decision: Decision::None,
            confidence: confidence(0),
            campaign: None,
            instance: None,
            reasons: vec![reason],
            candidates: Vec::new(),
        }
    }

    /// The reasons as stored in `activity_associations.reasons`.
    pub fn reasons_json(&self) -> serde_json::Value {
        serde_json::Value::Array(self.reasons.iter().map(Reason::to_json).collect())
    }

    /// The candidates as stored in `activity_associations.candidates`.
    pub fn candidates_json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.candidates
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "campaign": c.campaign,
                        "total": c.total,
                        "confidence": c.confidence.get(),
                    })
                })
                .collect(),
        )
    }
}

impl Outcome {
    /// [`Self::reasons_json`] as JSON text: the text `serde_json` writes for that document, written from the
    /// reasons without building it (what a store writes for each association).
    pub fn reasons_text(&self) -> String {
        let mut out = String::with_capacity(
            2 + self
                .reasons
                .iter()
                .map(|r| 48 + r.detail.len())
                .sum::<usize>(),
        );
        out.push('[');
        for (i, r) in self.reasons.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // The keys in `serde_json`'s order (sorted); the codes are snake_case ASCII, nothing to escape.
            out.push_str("{\"code\":\"");
            out.push_str(r.code.as_str());
            out.push_str("\",\"detail\":");
            push_json_string(&mut out, &r.detail);
            out.push_str(",\"points\":");
            out.push_str(itoa::Buffer::new().format(r.points));
            out.push('}');
        }
        out.push(']');
        out
    }

    /// [`Self::candidates_json`] as JSON text, written likewise.
    pub fn candidates_text(&self) -> String {
        let mut out = String::with_capacity(2 + 90 * self.candidates.len());
        out.push('[');
        for (i, c) in self.candidates.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"campaign\":\"");
            out.push_str(
                c.campaign
                    .uuid()
                    .hyphenated()
                    .encode_lower(&mut uuid::Uuid::encode_buffer()),
            );
            out.push_str("\",\"confidence\":");
            out.push_str(itoa::Buffer::new().format(c.confidence.get()));
            out.push_str(",\"total\":");
            out.push_str(itoa::Buffer::new().format(c.total));
            out.push('}');
        }
        out.push(']');
        out
    }
}

/// Appends `s` as a JSON string, escaped exactly as `serde_json` escapes it: `"` and `\\`, the short escapes of
/// backspace, form feed, newline, carriage return and tab, `\\u00XX` (lower-case hex) for the other control
/// characters, everything else as it is.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        // Every byte escaped is ASCII, so `i` and `i + 1` are character boundaries.
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

impl Reason {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "code": self.code.as_str(),
            "points": self.points,
            "detail": self.detail,
        })
    }
}

/// `min(100, total)` as a confidence.
pub(crate) fn confidence(total: u32) -> Confidence {
    let capped = total.min(u32::from(Confidence::MAX));
    match Confidence::new(i64::from(capped)) {
        Ok(c) => c,
        // `capped` is at most `Confidence::MAX` and never negative.
        Err(_) => unreachable!("{capped} is a confidence"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scored(details: &[&str]) -> Outcome {
        Outcome {
            decision: Decision::Review,
            confidence: confidence(70),
            campaign: Some(CampaignId(uuid::Uuid::from_u128(7))),
            instance: None,
            reasons: details
                .iter()
                .zip(
                    [
                        ReasonCode::CompanyMatch,
                        ReasonCode::Ambiguous,
                        ReasonCode::Capped,
                    ]
                    .iter()
                    .cycle(),
                )
                .enumerate()
                .map(|(i, (d, code))| {
                    Reason::new(
                        *code,
                        i32::try_from(i).unwrap_or(0) * 37 - 20,
                        (*d).to_owned(),
                    )
                })
                .collect(),
            candidates: (0..3)
                .map(|i| CandidateSummary {
                    campaign: CampaignId(uuid::Uuid::from_u128(u128::MAX / 3 * i)),
                    total: 140 - u32::try_from(i).unwrap_or(0) * 50,
                    confidence: confidence(140 - u32::try_from(i).unwrap_or(0) * 50),
                })
                .collect(),
        }
    }

    /// The text is byte for byte what `serde_json` writes for the document, so stores that write either read back
    /// the same, and SQLite's stored text does not depend on the path that wrote it.
    #[test]
    fn explanation_text_is_serde_jsons_text_of_the_document() {
        let cases = [
            scored(&[]),
            scored(&[
                "company acme",
                "tied with \"b\" and c\\d",
                "a\tb\nc\r\u{8}\u{c}\u{0}\u{1f}\u{7f}é…✓",
            ]),
            Outcome::explicit(InstanceId(uuid::Uuid::from_u128(9)), None),
        ];
        for o in cases {
            let reasons = serde_json::to_string(&o.reasons_json()).expect("reasons");
            let candidates = serde_json::to_string(&o.candidates_json()).expect("candidates");
            assert_eq!(o.reasons_text(), reasons);
            assert_eq!(o.candidates_text(), candidates);
        }
    }

    proptest! {
        #[test]
        fn any_detail_is_written_as_serde_json_writes_it(detail in any::<String>(), points in any::<i32>()) {
            let mut o = scored(&[]);
            o.reasons.push(Reason::new(ReasonCode::TagsPartial, points, detail));
            prop_assert_eq!(o.reasons_text(), serde_json::to_string(&o.reasons_json()).expect("reasons"));
        }
    }
}
