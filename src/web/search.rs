//! Find calls: the search form (a GET form, so the URL holds the whole search and can be
//! bookmarked and shared), what it means as a [`CallFilter`], and its results, paged by cursor
//! with their total.
use chrono::NaiveDate;
use chrono_tz::Tz;
use maud::{Markup, html};

use super::format;
use crate::domain::desk::{Thresholds, both};
use crate::domain::filter::customer_digits;
use crate::domain::recording::Shown;
use crate::domain::{
    CallFilter, CallOrder, Direction, IntRange, OrderField, PageRequest, SortDirection, TimeRange,
};
use crate::error::AppError;

/// Calls per page.
pub const PAGE_SIZE: u64 = 50;
/// Totals are counted up to this many; beyond, a page says "more than".
pub const COUNT_CAP: u64 = 1_000;
/// Longest value a search field takes.
const MAX_FIELD: usize = 200;

/// A search as the URL holds it: each field as typed (so the form shows it again).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Search {
    pub customer: String,
    pub name: String,
    pub agent: String,
    pub direction: String,
    pub business: String,
    pub from: String,
    pub to: String,
    pub tz: String,
    pub min: String,
    pub max: String,
    /// `short`, `long`, or empty.
    pub length: String,
    pub anomalies: bool,
    /// `some`, `none`, a [`Shown`] state in lower case, or empty.
    pub recording: String,
    pub unreviewed: bool,
    /// `newest` (the default), `oldest`, `longest`, `shortest`.
    pub sort: String,
    pub after: String,
    pub before: String,
}

/// What a search asks the store.
#[derive(Clone, Debug)]
pub struct Asked {
    pub filter: CallFilter,
    pub order: CallOrder,
    pub request: PageRequest,
    pub tz: Tz,
}

/// The sort orders the form offers: value, words, order.
pub const SORTS: [(&str, &str, OrderField, SortDirection); 4] = [
    (
        "newest",
        "Newest first",
        OrderField::EndedAt,
        SortDirection::Desc,
    ),
    (
        "oldest",
        "Oldest first",
        OrderField::EndedAt,
        SortDirection::Asc,
    ),
    (
        "longest",
        "Longest first",
        OrderField::DurationSeconds,
        SortDirection::Desc,
    ),
    (
        "shortest",
        "Shortest first",
        OrderField::DurationSeconds,
        SortDirection::Asc,
    ),
];

impl Search {
    /// The search in a query string; unknown parameters are ignored, nothing fails here.
    pub fn parse(raw: Option<&str>) -> Search {
        let mut s = Search::default();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            let v = v.trim().to_owned();
            match k.as_ref() {
                "customer" => s.customer = v,
                "name" => s.name = v,
                "agent" => s.agent = v,
                "direction" => s.direction = v,
                "business" => s.business = v,
                "from" => s.from = v,
                "to" => s.to = v,
                "tz" => s.tz = v,
                "min" => s.min = v,
                "max" => s.max = v,
                "length" => s.length = v,
                "anomalies" => s.anomalies = !v.is_empty(),
                "recording" => s.recording = v,
                "unreviewed" => s.unreviewed = !v.is_empty(),
                "sort" => s.sort = v,
                "after" => s.after = v,
                "before" => s.before = v,
                _ => {}
            }
        }
        s
    }

    /// Whether anything narrows the search (the page then says what it found, not "recent
    /// calls").
    pub fn narrows(&self) -> bool {
        let Search {
            customer,
            name,
            agent,
            direction,
            business,
            from,
            to,
            tz: _,
            min,
            max,
            length,
            anomalies,
            recording,
            unreviewed,
            sort: _,
            after: _,
            before: _,
        } = self;
        [
            customer, name, agent, direction, business, from, to, min, max, length, recording,
        ]
        .iter()
        .any(|v| !v.is_empty())
            || *anomalies
            || *unreviewed
    }

    /// The search as the store reads it; the first problem names its field.
    pub fn asked(&self, thresholds: &Thresholds, archiving: bool) -> Result<Asked, AppError> {
        for (field, value) in [
            ("customer", &self.customer),
            ("name", &self.name),
            ("agent", &self.agent),
            ("business", &self.business),
            ("tz", &self.tz),
        ] {
            if value.chars().count() > MAX_FIELD {
                return Err(AppError::bad_input(
                    field,
                    format!("at most {MAX_FIELD} characters"),
                ));
            }
        }
        let tz = format::time_zone(&self.tz)?;
        let mut filter = CallFilter::default();
        if !self.customer.is_empty() {
            filter.customer_digits = Some(customer_digits("customer number", &self.customer)?);
        }
        if !self.name.is_empty() {
            filter.customer_name = Some(self.name.to_lowercase());
        }
        if !self.agent.is_empty() {
            filter.picked_by = Some(vec![self.agent.clone()]);
        }
        filter.direction = match self.direction.as_str() {
            "" => None,
            "incoming" => Some(Direction::Incoming),
            "outgoing" => Some(Direction::Outgoing),
            _ => return Err(AppError::bad_input("direction", "incoming or outgoing")),
        };
        if !self.business.is_empty() {
            let digits = crate::domain::phone::digits(&self.business);
            let mut numbers = vec![self.business.clone()];
            if !digits.is_empty() && digits != self.business {
                numbers.push(digits);
            }
            filter.waba_numbers = Some(numbers);
        }
        let from = date("from", &self.from)?;
        let to = date("to", &self.to)?;
        if from.is_some() || to.is_some() {
            filter.ended_at = Some(TimeRange::new(
                "date range",
                from.map(|d| format::day_start(d, tz)),
                to.and_then(|d| d.succ_opt())
                    .map(|d| format::day_start(d, tz)),
            )?);
        }
        let min = seconds("shortest length", &self.min)?;
        let max = seconds("longest length", &self.max)?;
        let mut lengths = (min.is_some() || max.is_some())
            .then(|| IntRange::new("length", min, max))
            .transpose()?;
        lengths = match self.length.as_str() {
            "" => lengths,
            "short" => Some(both(lengths, thresholds.short())),
            "long" => Some(both(lengths, thresholds.long())),
            _ => return Err(AppError::bad_input("length", "short or long")),
        };
        filter.duration_seconds = lengths;
        if self.anomalies {
            filter.has_anomalies = Some(true);
        }
        if self.unreviewed {
            filter.reviewed = Some(false);
        }
        match self.recording.as_str() {
            "" => {}
            "some" => filter.has_recording = Some(true),
            "none" => filter.has_recording = Some(false),
            state => {
                let shown = Shown::from_name(&state.to_ascii_uppercase())
                    .ok_or_else(|| AppError::bad_input("recording", "not a recording state"))?;
                filter.recording_states = Some(Shown::filter(&[shown], archiving));
            }
        }
        let (field, direction) = SORTS
            .iter()
            .find(|(value, ..)| *value == self.sort_value())
            .map(|(_, _, f, d)| (*f, *d))
            .ok_or_else(|| AppError::bad_input("sort", "not a sort order the desk offers"))?;
        let request = if !self.before.is_empty() {
            PageRequest::Backward {
                last: PAGE_SIZE,
                before: Some(self.before.clone()),
            }
        } else {
            PageRequest::Forward {
                first: PAGE_SIZE,
                after: (!self.after.is_empty()).then(|| self.after.clone()),
            }
        };
        Ok(Asked {
            filter,
            order: CallOrder { field, direction },
            request,
            tz,
        })
    }

    pub fn sort_value(&self) -> &str {
        if self.sort.is_empty() {
            "newest"
        } else {
            &self.sort
        }
    }

    /// The query string of this search with `(after, before)` as its page.
    pub fn link(&self, after: &str, before: &str) -> String {
        let flag = |on: bool| if on { "1" } else { "" };
        let sort = if self.sort_value() == "newest" {
            ""
        } else {
            self.sort_value()
        };
        format!(
            "/calls{}",
            format::query(&[
                ("customer", &self.customer),
                ("name", &self.name),
                ("agent", &self.agent),
                ("direction", &self.direction),
                ("business", &self.business),
                ("from", &self.from),
                ("to", &self.to),
                ("tz", &self.tz),
                ("min", &self.min),
                ("max", &self.max),
                ("length", &self.length),
                ("anomalies", flag(self.anomalies)),
                ("recording", &self.recording),
                ("unreviewed", flag(self.unreviewed)),
                ("sort", sort),
                ("after", after),
                ("before", before),
            ])
        )
    }
}

fn date(field: &str, text: &str) -> Result<Option<NaiveDate>, AppError> {
    if text.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| AppError::bad_input(field, "a date like 2026-12-02"))
}

fn seconds(field: &str, text: &str) -> Result<Option<i64>, AppError> {
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<i64>() {
        Ok(n) if (0..=10_000_000).contains(&n) => Ok(Some(n)),
        _ => Err(AppError::bad_input(field, "a whole number of seconds")),
    }
}

/// The search form, filled with `search`; the customer fields only for readers who may see
/// identity.
pub fn form(search: &Search, reveal: bool, thresholds: &Thresholds, archiving: bool) -> Markup {
    let option = |value: &str, current: &str, words: &str| {
        html! { option value=(value) selected[value == current] { (words) } }
    };
    html! {
        form.search method="get" action="/calls" role="search" aria-label="Find calls" {
            fieldset {
                legend { "Who" }
                div.fields {
                    @if reveal {
                        div {
                            label for="customer" { "Customer number" span.hint { "Any formatting: +91 98111-22233" } }
                            input #customer type="search" name="customer" value=(search.customer) inputmode="tel" autocomplete="off";
                        }
                        div {
                            label for="name" { "Customer name" span.hint { "Part of the name" } }
                            input #name type="search" name="name" value=(search.name) autocomplete="off";
                        }
                    }
                    div {
                        label for="agent" { "Agent" span.hint { "As DoubleTick names them (Picked by)" } }
                        input #agent type="search" name="agent" value=(search.agent) autocomplete="off";
                    }
                    div {
                        label for="business" { "Business number" span.hint { "Your WhatsApp number" } }
                        input #business type="search" name="business" value=(search.business) inputmode="tel" autocomplete="off";
                    }
                    div {
                        label for="direction" { "Direction" span.hint { "Who called" } }
                        select #direction name="direction" {
                            (option("", &search.direction, "Both"))
                            (option("incoming", &search.direction, "Incoming (customer called)"))
                            (option("outgoing", &search.direction, "Outgoing (business called)"))
                        }
                    }
                }
            }
            fieldset {
                legend { "When and how long" }
                div.fields {
                    div {
                        label for="from" { "From date" span.hint { "Ended on or after" } }
                        input #from type="date" name="from" value=(search.from);
                    }
                    div {
                        label for="to" { "To date" span.hint { "Ended on or before" } }
                        input #to type="date" name="to" value=(search.to);
                    }
                    div {
                        label for="tz" { "Time zone" span.hint { "Dates and times read in it; UTC when empty" } }
                        input #tz type="text" name="tz" value=(search.tz) placeholder="UTC" autocomplete="off" spellcheck="false";
                    }
                    div {
                        label for="min" { "At least (seconds)" }
                        input #min type="number" name="min" min="0" value=(search.min) inputmode="numeric";
                    }
                    div {
                        label for="max" { "At most (seconds)" }
                        input #max type="number" name="max" min="0" value=(search.max) inputmode="numeric";
                    }
                    div {
                        label for="length" { "Length" }
                        select #length name="length" {
                            (option("", &search.length, "Any length"))
                            (option("short", &search.length, &format!("Short: answered, under {} s", thresholds.short_call_seconds)))
                            (option("long", &search.length, &format!("Long: over {}", format::length(thresholds.long_call_seconds))))
                        }
                    }
                }
            }
            fieldset {
                legend { "Flags and order" }
                div.fields {
                    div {
                        label for="recording" { "Recording" }
                        select #recording name="recording" {
                            (option("", &search.recording, "Any"))
                            (option("some", &search.recording, "Has a recording"))
                            (option("none", &search.recording, "No recording"))
                            (option("archived", &search.recording, "Archived"))
                            @if archiving {
                                (option("pending", &search.recording, "Waiting to be archived"))
                                (option("retrying", &search.recording, "Archiving, retrying"))
                            } @else {
                                (option("not_configured", &search.recording, "Not archived (archiving is off)"))
                            }
                            (option("failed", &search.recording, "Could not be archived"))
                            (option("gone", &search.recording, "Gone from DoubleTick"))
                        }
                    }
                    div {
                        label for="sort" { "Order" }
                        select #sort name="sort" {
                            @for (value, words, ..) in SORTS {
                                (option(value, search.sort_value(), words))
                            }
                        }
                    }
                }
                div.checks {
                    label { input type="checkbox" name="anomalies" value="1" checked[search.anomalies]; "Only calls with anomalies" }
                    label { input type="checkbox" name="unreviewed" value="1" checked[search.unreviewed]; "Only calls not yet reviewed" }
                }
            }
            div.actions {
                button type="submit" { "Find calls" }
                a.button.quiet href="/calls" { "Clear" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_in_the_url_reads_back_as_the_same_search() {
        let s = Search::parse(Some(
            "customer=%2B91+98111-22233&agent=a%2Fb&length=short&anomalies=1&tz=Asia%2FKolkata&from=2026-12-01&to=2026-12-01&sort=oldest&bogus=x",
        ));
        assert_eq!(s.customer, "+91 98111-22233");
        assert_eq!(Search::parse(s.link("", "").strip_prefix("/calls?")), s);
        let asked = s.asked(&Thresholds::default(), true).ok();
        let asked = asked.as_ref().map(|a| &a.filter);
        assert_eq!(
            asked.and_then(|f| f.customer_digits.clone()),
            Some("919811122233".to_owned())
        );
        assert_eq!(
            asked.and_then(|f| f.duration_seconds),
            Some(IntRange {
                min: Some(1),
                max: Some(29)
            })
        );
        let range = asked.and_then(|f| f.ended_at);
        assert_eq!(
            range.and_then(|r| r.from).map(|t| t.to_rfc3339()),
            Some("2026-11-30T18:30:00+00:00".to_owned())
        );
        assert_eq!(
            range.and_then(|r| r.to).map(|t| t.to_rfc3339()),
            Some("2026-12-01T18:30:00+00:00".to_owned())
        );
        for bad in [
            "customer=abc",
            "from=yesterday",
            "min=-1",
            "tz=Nowhere",
            "sort=x",
            "length=tiny",
            "recording=lost",
        ] {
            assert!(
                Search::parse(Some(bad))
                    .asked(&Thresholds::default(), true)
                    .is_err(),
                "{bad}"
            );
        }
    }
}
