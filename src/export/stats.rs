//! The statistics export: `callStats` as one flat table, a row per group (or one row of
//! totals when nothing is grouped), a column per grouped dimension and per measure.
use chrono::SecondsFormat;

use super::params::StatsExport;
use crate::domain::stats::{Aggregates, Dimension, KeyPart, StatsGroup};
use crate::error::AppError;
use crate::store::reader::Reader;
use crate::store::stats::BucketPlan;

/// The column of a grouped dimension.
fn dimension_column(d: Dimension) -> &'static str {
    match d {
        Dimension::PickedBy => "pickedBy",
        Dimension::EndedBy => "endedBy",
        Dimension::Direction => "direction",
        Dimension::WabaNumber => "wabaNumber",
        Dimension::Customer => "customerNumber",
        Dimension::Status => "status",
        Dimension::Channel => "channel",
        Dimension::Hour => "hour",
        Dimension::Day => "day",
        Dimension::Week => "week",
        Dimension::Month => "month",
    }
}

/// `p = 0.95` → `durationP95`; `0.999` → `durationP99.9`.
fn percentile_column(p: f64) -> String {
    let percent = format!("{:.4}", p * 100.0);
    let percent = percent.trim_end_matches('0').trim_end_matches('.');
    format!("durationP{percent}")
}

/// The whole table, as CSV bytes. Groups are at most [`crate::domain::stats::MAX_GROUPS`], so the
/// table is built whole: it is small next to the calls export.
pub async fn table(reader: &Reader, export: &StatsExport) -> Result<Vec<u8>, AppError> {
    let request = &export.request;
    let plan = if request.group_by.is_empty() {
        BucketPlan::default()
    } else {
        reader.bucket_plan(request).await?
    };
    let mut groups = reader.stats_groups(request, &plan).await?;
    if request.group_by.is_empty() && groups.is_empty() {
        groups.push(StatsGroup {
            key: Vec::new(),
            aggregates: Aggregates::empty(request),
        });
    }
    let percentiles = if export.percentiles.is_empty() {
        Vec::new()
    } else {
        reader
            .duration_percentiles(request, &plan, &export.percentiles)
            .await?
    };

    let mut header: Vec<String> = request
        .group_by
        .iter()
        .map(|d| dimension_column(*d).to_owned())
        .collect();
    header.extend(
        [
            "count",
            "totalDurationSeconds",
            "averageDurationSeconds",
            "minDurationSeconds",
            "maxDurationSeconds",
            "withRecording",
            "answeredCalls",
            "missedCalls",
            "rejectedCalls",
            "answerRate",
        ]
        .map(str::to_owned),
    );
    if request.short_call_seconds.is_some() {
        header.push("shortCalls".into());
    }
    if request.long_call_seconds.is_some() {
        header.push("longCalls".into());
    }
    header.extend(export.percentiles.iter().map(|p| percentile_column(*p)));

    let csv_error = |e: csv::Error| AppError::Internal(format!("writing the stats CSV: {e}"));
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(&header).map_err(csv_error)?;
    let number = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let real = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for group in &groups {
        let mut row: Vec<String> = Vec::with_capacity(header.len());
        for (dimension, part) in request.group_by.iter().zip(&group.key) {
            row.push(match (dimension.period(), part) {
                (Some(period), KeyPart::Bucket(bucket)) => period
                    .start(*bucket, request.time_zone)
                    .map(|t| {
                        t.with_timezone(&request.time_zone)
                            .to_rfc3339_opts(SecondsFormat::Millis, false)
                    })
                    .unwrap_or_default(),
                (_, KeyPart::Text(value)) => value.clone().unwrap_or_default(),
                (None, KeyPart::Bucket(_)) => String::new(),
            });
        }
        let a = &group.aggregates;
        row.extend([
            a.count.to_string(),
            a.total_duration_seconds.to_string(),
            real(a.average_duration_seconds()),
            number(a.min_duration_seconds),
            number(a.max_duration_seconds),
            a.with_recording.to_string(),
            a.answered.to_string(),
            a.missed.to_string(),
            a.rejected.to_string(),
            real(a.answer_rate()),
        ]);
        if request.short_call_seconds.is_some() {
            row.push(number(a.short_calls));
        }
        if request.long_call_seconds.is_some() {
            row.push(number(a.long_calls));
        }
        for values in &percentiles {
            row.push(real(values.get(&group.key).copied()));
        }
        out.write_record(&row).map_err(csv_error)?;
    }
    out.into_inner()
        .map_err(|e| AppError::Internal(format!("writing the stats CSV: {}", e.into_error())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_columns_are_named_by_percent() {
        assert_eq!(percentile_column(0.5), "durationP50");
        assert_eq!(percentile_column(0.95), "durationP95");
        assert_eq!(percentile_column(0.999), "durationP99.9");
        assert_eq!(percentile_column(1.0), "durationP100");
        assert_eq!(percentile_column(0.0), "durationP0");
    }
}
