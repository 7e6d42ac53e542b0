//! Re-processing rejected deliveries from the log after a fix, reporting what each became.
use crate::error::AppError;
use crate::store::Store;
use crate::store::ingest::{Incoming, Ingestor};
use crate::webhook::judge;

/// What one replayed delivery became.
#[derive(Clone, Debug)]
pub struct Replayed {
    pub delivery_id: i64,
    pub outcome: &'static str,
    pub call_id: Option<String>,
}

/// Re-parses each unresolved rejected delivery with today's rules and applies it. Every
/// replay is appended to the log as a new delivery pointing at the original; nothing is
/// updated in place.
pub async fn replay_rejected(store: &Store) -> Result<Vec<Replayed>, AppError> {
    let ingestor = Ingestor::start(store.clone(), 1);
    let mut report = Vec::new();
    for logged in store.unresolved_rejections().await? {
        let content_type =
            (!logged.content_type.is_empty()).then_some(logged.content_type.as_str());
        let (verdict, _) = judge(content_type, &logged.body, logged.received_at).await;
        let receipt = ingestor
            .submit(Incoming {
                received_at: logged.received_at,
                content_type: logged.content_type.clone(),
                body: logged.body,
                verdict,
                replay_of: Some(logged.id),
            })
            .await?;
        report.push(Replayed {
            delivery_id: logged.id,
            outcome: receipt.outcome.as_str(),
            call_id: receipt.call_id,
        });
    }
    Ok(report)
}
