//! The sea-orm-migration CLI for calltrail's schema (`cargo run -p migration --features cli -- up`).
#[tokio::main]
async fn main() {
    sea_orm_migration::cli::run_cli(migration::Migrator).await;
}
