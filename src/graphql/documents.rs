//! Parsed GraphQL documents, kept by their text: a dashboard or BI tool sends the same few
//! queries over and over with other variables, and parsing is a fixed cost of each request.
use std::collections::HashMap;
use std::sync::Mutex;

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, parser};

/// Most documents kept. When full, the cache starts again empty: clients that send
/// endlessly varied texts (values inlined instead of passed as variables) only pay the
/// parse they would have paid anyway.
const CAPACITY: usize = 128;
/// Longer texts are parsed every time (the body limit is 64 KiB; typical queries are
/// well under 2 KiB). With [`CAPACITY`], this bounds what the cache can hold to a few MiB
/// whatever clients send.
const LONGEST: usize = 4 * 1024;

#[derive(Debug, Default)]
pub struct Documents {
    parsed: Mutex<HashMap<String, ExecutableDocument>>,
}

impl Documents {
    /// Gives `request` its parsed document, from the cache or parsed now and kept. A text
    /// that does not parse is left for async-graphql to parse and report.
    pub fn prepare(&self, request: &mut Request) {
        if request.query.len() > LONGEST {
            return;
        }
        if let Some(doc) = self.lock().get(&request.query) {
            request.set_parsed_query(doc.clone());
            return;
        }
        let Ok(doc) = parser::parse_query(&request.query) else {
            return;
        };
        {
            let mut parsed = self.lock();
            if parsed.len() >= CAPACITY {
                parsed.clear();
            }
            parsed.insert(request.query.clone(), doc.clone());
        }
        request.set_parsed_query(doc);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ExecutableDocument>> {
        // The map holds only parsed documents; one left by a panicking thread is whole.
        self.parsed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_parsed_texts_only_and_never_more_than_its_capacity() {
        let documents = Documents::default();
        for n in 0..(CAPACITY + 10) {
            documents.prepare(&mut Request::new(format!(
                "{{ call(callId: \"c{n}\") {{ callId }} }}"
            )));
        }
        assert!(documents.lock().len() <= CAPACITY);
        assert_eq!(documents.lock().len(), 10, "starts again empty when full");

        documents.prepare(&mut Request::new("{ calls { totalCount "));
        documents.prepare(&mut Request::new(format!(
            "{{ calls {{ totalCount }} }}{}",
            " ".repeat(LONGEST)
        )));
        assert_eq!(
            documents.lock().len(),
            10,
            "unparsable and overlong texts are not kept"
        );

        let text = "query($f: CallFilter) { calls(filter: $f) { totalCount } }";
        documents.prepare(&mut Request::new(text));
        let mut again = Request::new(text);
        documents.prepare(&mut again);
        let doc = again.parsed_query().expect("parsed");
        assert_eq!(doc.operations.iter().count(), 1);
        assert_eq!(documents.lock().len(), 11);
    }
}
