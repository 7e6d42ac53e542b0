//! Schema migrations for calltrail, applied at start-up and by the `migration` CLI.
pub use sea_orm_migration::prelude::*;

pub mod chain;
pub mod sql;

mod m20261127_000001_create_calls;
mod m20261127_000002_create_call_events;
mod m20261127_000003_create_call_revisions;
mod m20261127_000004_create_deliveries;
mod m20261127_000005_create_call_buckets;
mod m20261127_000006_protect_deliveries;
mod m20261127_000007_bucket_totals;
mod m20261128_000008_create_call_half_hours;
mod m20261201_000009_create_write_probe;
mod m20261201_000010_create_access;
mod m20261202_000011_create_recordings;
mod m20261202_000012_chain_logs;
mod m20261202_000013_protect_events;
mod m20261202_000014_cover_ended_at;
mod m20261202_000015_create_call_reviews;
mod m20261202_000016_create_desk_sessions;
mod m20261202_000017_index_customer_names;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_create_calls::Migration),
            Box::new(m20261127_000002_create_call_events::Migration),
            Box::new(m20261127_000003_create_call_revisions::Migration),
            Box::new(m20261127_000004_create_deliveries::Migration),
            Box::new(m20261127_000005_create_call_buckets::Migration),
            Box::new(m20261127_000006_protect_deliveries::Migration),
            Box::new(m20261127_000007_bucket_totals::Migration),
            Box::new(m20261128_000008_create_call_half_hours::Migration),
            Box::new(m20261201_000009_create_write_probe::Migration),
            Box::new(m20261201_000010_create_access::Migration),
            Box::new(m20261202_000011_create_recordings::Migration),
            Box::new(m20261202_000012_chain_logs::Migration),
            Box::new(m20261202_000013_protect_events::Migration),
            Box::new(m20261202_000014_cover_ended_at::Migration),
            Box::new(m20261202_000015_create_call_reviews::Migration),
            Box::new(m20261202_000016_create_desk_sessions::Migration),
            Box::new(m20261202_000017_index_customer_names::Migration),
        ]
    }
}

/// An auto-increment 64-bit primary key.
fn id_column<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

fn index(
    table: impl IntoIden + Copy,
    name: &str,
    columns: &[&'static str],
) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(name).table(table);
    for column in columns {
        stmt.col(Alias::new(*column));
    }
    stmt.to_owned()
}

/// A rollup tier's table (`call_buckets`, `call_half_hours`): per bucket start (epoch
/// seconds) and direction, the count and sums of the calls that ended in the bucket.
fn bucket_table(table: &str) -> TableCreateStatement {
    let count = |c: &str| {
        ColumnDef::new(Alias::new(c))
            .big_integer()
            .not_null()
            .to_owned()
    };
    let mut stmt = Table::create();
    stmt.table(Alias::new(table))
        .if_not_exists()
        .col(count("bucket_start"))
        .col(ColumnDef::new(Alias::new("direction")).string().not_null());
    for measure in [
        "calls",
        "total_duration_seconds",
        "min_duration_seconds",
        "max_duration_seconds",
        "with_recording",
        "answered",
        "missed",
        "rejected",
    ] {
        stmt.col(count(measure));
    }
    stmt.primary_key(
        Index::create()
            .col(Alias::new("bucket_start"))
            .col(Alias::new("direction")),
    )
    .to_owned()
}
