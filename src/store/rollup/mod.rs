//! The `call_buckets` rollup: concluded calls pre-aggregated per 15-minute UTC bucket and direction.
//! Each bucket also has a row with direction `*`: its calls of every direction, so a question
//! that does not split or filter by direction reads one row per bucket instead of two.
//!
//! Every UTC offset in use is a whole number of quarter hours, so a local hour, day, week or
//! month in any zone is a union of whole 15-minute UTC buckets. Statistics over time
//! buckets that need only additive measures (plus min/max) and filter only on `endedAt` (on
//! quarter-hour bounds) and direction are answered from ~35 000 bucket rows a year instead
//! of every call.
//!
//! A second tier, `call_half_hours`, holds the same rows summed per 30 minutes. Nearly every
//! zone's offsets are whole half hours (New York, Kolkata, UTC; not Kathmandu's +05:45), and
//! for those, with bounds on half hours too, a question reads the half-hour tier: half the
//! rows.
//!
//! Both tiers are kept exactly equal to aggregating `calls`, in the transaction that writes
//! the call: a newly concluded call is added to its bucket in each tier (an upsert); a
//! concluded call that changes has the buckets it left and entered recomputed from `calls`
//! in each tier (rare, and exact for min/max too). Every writer locks the tiers' rows in one
//! order ([`TIERS`]). The migrations that create the tables fill them from what is already
//! stored; `calltrail seed` rebuilds both after loading.
mod answer;
pub(crate) use answer::Split;
mod maintain;

pub(crate) use maintain::{merge, new_call_sums, record_change, record_new_calls};

/// Length of one bucket, in seconds.
pub const BUCKET_SECONDS: i64 = 900;

/// One tier of the rollup: a table of bucket rows (`call_bucket::Model`s) of one length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tier {
    pub table: &'static str,
    pub seconds: i64,
}

/// The 15-minute buckets, which every zone's offsets divide into.
pub(crate) const QUARTERS: Tier = Tier {
    table: "call_buckets",
    seconds: BUCKET_SECONDS,
};

/// The quarters summed per half hour: what zones with whole-half-hour offsets read.
pub(crate) const HALF_HOURS: Tier = Tier {
    table: "call_half_hours",
    seconds: 2 * BUCKET_SECONDS,
};

/// Both tiers, in the order every writer locks their rows: half hours first, then quarters,
/// each tier's rows by key. (PostgreSQL's batch statement runs its half-hour upsert first
/// too; two writers locking in opposite orders would deadlock.)
pub(crate) const TIERS: [Tier; 2] = [HALF_HOURS, QUARTERS];

impl Tier {
    /// The start of the bucket of this tier that holds `seconds`.
    fn floor(self, seconds: i64) -> i64 {
        seconds.div_euclid(self.seconds) * self.seconds
    }

    /// [`Tier::floor`] of `column`, as SQL (floored, not truncated, before 1970 too).
    pub(crate) fn floor_sql(self, column: &str) -> String {
        let n = self.seconds;
        format!("({column} - ((({column} % {n}) + {n}) % {n}))")
    }
}

/// The `direction` of a bucket's every-direction row.
pub(crate) const ALL_DIRECTIONS: &str = "*";
