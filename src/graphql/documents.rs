//! Parsed GraphQL documents, kept by their text: a dashboard or BI tool sends the same few
//! queries over and over with other variables, and parsing is a fixed cost of each request.
use std::collections::HashMap;
use std::sync::Mutex;

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationDefinition};
use async_graphql::{Positioned, Request, parser};

/// Most query text kept, in bytes. A parsed document takes about twenty times its text
/// (measured: 128 distinct 4 KiB documents grew the server by 11 MiB), so this keeps the
/// cache near 1–2 MiB whatever clients send. When full, the cache starts again empty:
/// clients that send endlessly varied texts (values inlined instead of passed as
/// variables) only pay the parse they would have paid anyway.
const BUDGET: usize = 64 * 1024;
/// Longer texts are parsed every time (the body limit is 64 KiB; typical queries are
/// well under 2 KiB).
const LONGEST: usize = 4 * 1024;

#[derive(Debug, Default)]
pub struct Documents {
    kept: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    parsed: HashMap<String, ExecutableDocument>,
    /// Bytes of the texts in `parsed`.
    bytes: usize,
}

impl Documents {
    /// Gives `request` its parsed document, from the cache or parsed now and kept. A text
    /// that does not parse is left for async-graphql to parse and report.
    pub fn prepare(&self, request: &mut Request) {
        if request.query.len() > LONGEST {
            return;
        }
        if let Some(doc) = self.lock().parsed.get(&request.query) {
            request.set_parsed_query(doc.clone());
            return;
        }
        let Ok(doc) = parser::parse_query(&request.query) else {
            return;
        };
        {
            let mut kept = self.lock();
            if kept.bytes + request.query.len() > BUDGET {
                *kept = Kept::default();
            }
            kept.bytes += request.query.len();
            kept.parsed.insert(request.query.clone(), doc.clone());
        }
        request.set_parsed_query(doc);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        // The cache holds only parsed documents; one left by a panicking thread is whole.
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The operation of `document` that a request names (or its only one), as async-graphql will
/// choose it; `None` when there is no such operation (which async-graphql then reports).
pub fn operation<'a>(
    document: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a Positioned<OperationDefinition>> {
    match (&document.operations, name) {
        (DocumentOperations::Single(operation), None) => Some(operation),
        (DocumentOperations::Single(_), Some(_)) => None,
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next()
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_parsed_texts_only_and_never_more_than_its_budget() {
        let documents = Documents::default();
        let text = |n: usize| format!("{{ call(callId: \"{n:04}\") {{ callId }} }}");
        let each = text(0).len();
        let fit = BUDGET / each;
        for n in 0..fit + 10 {
            documents.prepare(&mut Request::new(text(n)));
            assert!(documents.lock().bytes <= BUDGET);
        }
        assert_eq!(
            documents.lock().parsed.len(),
            10,
            "starts again empty when full"
        );
        assert_eq!(documents.lock().bytes, 10 * each);

        documents.prepare(&mut Request::new("{ calls { totalCount "));
        let overlong = format!("{{ calls {{ totalCount }} }}{}", " ".repeat(LONGEST));
        documents.prepare(&mut Request::new(overlong));
        assert_eq!(
            documents.lock().parsed.len(),
            10,
            "unparsable and overlong texts are not kept"
        );

        let text = "query($f: CallFilter) { calls(filter: $f) { totalCount } }";
        documents.prepare(&mut Request::new(text));
        let mut again = Request::new(text);
        documents.prepare(&mut again);
        let doc = again.parsed_query().expect("parsed");
        assert_eq!(doc.operations.iter().count(), 1);
        assert_eq!(documents.lock().parsed.len(), 11, "kept once");
    }
}
