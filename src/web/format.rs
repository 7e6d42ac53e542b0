//! How the desk writes values: instants in the reader's time zone, lengths in words, links.
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::error::AppError;

/// The time zone a page is read in: `tz` as given, UTC when empty.
pub fn time_zone(text: &str) -> Result<Tz, AppError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Tz::UTC);
    }
    text.parse().map_err(|_| {
        AppError::bad_input(
            "tz",
            format!(
                "`{}` is not a time zone name such as Asia/Kolkata or Europe/London",
                clip(text)
            ),
        )
    })
}

/// At most 60 characters of `text`, for an error message that quotes it.
pub fn clip(text: &str) -> String {
    text.chars().take(60).collect()
}

/// `2026-12-02 14:05:09 IST`.
pub fn when(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// `14:05:09`.
pub fn clock(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%H:%M:%S").to_string()
}

/// The local date of `t` in `tz`.
pub fn local_date(t: DateTime<Utc>, tz: Tz) -> NaiveDate {
    t.with_timezone(&tz).date_naive()
}

/// The instant local midnight begins `date` in `tz` (the first instant of the day when a
/// clock change skips midnight).
pub fn day_start(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let mut at = date.and_time(chrono::NaiveTime::MIN);
    // A gap (a clock change at midnight) can swallow local midnight: try the next minutes.
    for _ in 0..180 {
        if let Some(t) = tz.from_local_datetime(&at).earliest() {
            return t.with_timezone(&Utc);
        }
        at += chrono::Duration::minutes(1);
    }
    Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN))
}

/// `2 min 05 s`, `45 s`, `1 h 02 min`.
pub fn length(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

/// `73.4 %`.
pub fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "none".to_owned(), |r| format!("{:.1} %", r * 100.0))
}

/// `text` as one path segment (`/`, spaces and the rest percent-encoded).
pub fn segment(text: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(text.as_bytes()).collect();
    encoded.replace('+', "%20")
}

/// A query string of the non-empty `pairs`, `?` included (empty when none).
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            out.append_pair(k, v);
        }
    }
    let text = out.finish();
    if text.is_empty() {
        text
    } else {
        format!("?{text}")
    }
}

/// The desk page of call `call_id`, read in `tz`.
pub fn call_link(call_id: &str, tz: Tz) -> String {
    format!(
        "/calls/{}{}",
        segment(call_id),
        query(&[("tz", zone_param(tz))])
    )
}

/// The day of `agent` on `date`, read in `tz`.
pub fn day_link(agent: &str, date: NaiveDate, tz: Tz) -> String {
    format!(
        "/agents/{}/{}{}",
        segment(agent),
        date.format("%Y-%m-%d"),
        query(&[("tz", zone_param(tz))])
    )
}

/// `tz`'s name as a parameter: none for UTC, the default.
pub fn zone_param(tz: Tz) -> &'static str {
    if tz == Tz::UTC { "" } else { tz.name() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_plainly() {
        assert_eq!(length(0), "0 s");
        assert_eq!(length(125), "2 min 05 s");
        assert_eq!(length(3720), "1 h 02 min");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(query(&[("a", ""), ("b", "x y")]), "?b=x+y");
        assert_eq!(query(&[("a", "")]), "");
        assert!(time_zone("Mars/Base").is_err());
        assert_eq!(time_zone(" ").ok(), Some(Tz::UTC));
        let kolkata: Tz = "Asia/Kolkata".parse().unwrap_or(Tz::UTC);
        let date = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap_or_default();
        assert_eq!(
            day_start(date, kolkata).to_rfc3339(),
            "2026-12-01T18:30:00+00:00"
        );
        // Santiago skips local midnight at its spring clock change.
        let santiago: Tz = "America/Santiago".parse().unwrap_or(Tz::UTC);
        let gap = NaiveDate::from_ymd_opt(2026, 9, 6).unwrap_or_default();
        assert_eq!(
            day_start(gap, santiago).to_rfc3339(),
            "2026-09-06T04:00:00+00:00"
        );
    }
}
