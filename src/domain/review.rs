//! A review: what a reviewer found on listening to a call. Reviews are kept append-only: a
//! later review of the same call adds to the earlier ones, never replaces them.
use chrono::{DateTime, Utc};

use crate::error::AppError;

/// Longest note kept, in characters.
pub const MAX_NOTE_CHARS: usize = 4000;

/// What the review found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReviewVerdict {
    /// Nothing wrong.
    Ok,
    /// Something was wrong (a disclosure skipped, a rude answer...), noted.
    Issue,
    /// Needs someone senior (compliance, a manager).
    Escalate,
}

impl ReviewVerdict {
    pub const ALL: [ReviewVerdict; 3] = [
        ReviewVerdict::Ok,
        ReviewVerdict::Issue,
        ReviewVerdict::Escalate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReviewVerdict::Ok => "OK",
            ReviewVerdict::Issue => "ISSUE",
            ReviewVerdict::Escalate => "ESCALATE",
        }
    }

    pub fn parse(text: &str) -> Option<ReviewVerdict> {
        ReviewVerdict::ALL.into_iter().find(|v| v.as_str() == text)
    }
}

/// A review to record: its call, verdict and note, checked ([`NewReview::new`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewReview {
    pub call_id: String,
    pub verdict: ReviewVerdict,
    pub note: String,
}

impl NewReview {
    /// The review, its note trimmed; refused (naming `note`) when the note is longer than
    /// [`MAX_NOTE_CHARS`] or holds control characters other than line breaks and tabs. A
    /// verdict other than `OK` needs a note: what was wrong.
    pub fn new(call_id: &str, verdict: ReviewVerdict, note: &str) -> Result<NewReview, AppError> {
        let note = note.trim();
        if note.chars().count() > MAX_NOTE_CHARS {
            return Err(AppError::bad_input(
                "note",
                format!("a note is at most {MAX_NOTE_CHARS} characters"),
            ));
        }
        if note
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(AppError::bad_input(
                "note",
                "a note may not hold control characters",
            ));
        }
        if verdict != ReviewVerdict::Ok && note.is_empty() {
            return Err(AppError::bad_input(
                "note",
                format!(
                    "a {} review needs a note saying what was found",
                    verdict.as_str()
                ),
            ));
        }
        Ok(NewReview {
            call_id: call_id.to_owned(),
            verdict,
            note: note.to_owned(),
        })
    }
}

/// A recorded review.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Review {
    pub id: i64,
    pub call_id: String,
    pub verdict: ReviewVerdict,
    pub note: String,
    /// The API key that recorded it; `None` on open loopback (no key existed).
    pub key_id: Option<i64>,
    pub key_name: String,
    pub reviewed_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_read_back_as_written() {
        for v in ReviewVerdict::ALL {
            assert_eq!(ReviewVerdict::parse(v.as_str()), Some(v));
        }
        assert_eq!(ReviewVerdict::parse("ok"), None);
    }

    #[test]
    fn a_note_is_trimmed_and_bounded_and_an_issue_needs_one() {
        let ok = NewReview::new("c1", ReviewVerdict::Ok, "  fine \n").expect("valid");
        assert_eq!(ok.note, "fine");
        assert!(NewReview::new("c1", ReviewVerdict::Ok, "").is_ok());
        assert!(NewReview::new("c1", ReviewVerdict::Issue, "   ").is_err());
        assert!(NewReview::new("c1", ReviewVerdict::Escalate, "x\u{7}").is_err());
        let long = "é".repeat(MAX_NOTE_CHARS);
        assert!(NewReview::new("c1", ReviewVerdict::Issue, &long).is_ok());
        let longer = format!("{long}x");
        assert!(NewReview::new("c1", ReviewVerdict::Issue, &longer).is_err());
    }
}
