//! What a request may cost: at most [`MAX_ROOT_FIELDS`] root fields (aliases counted one by
//! one), checked before anything runs, on top of the schema's complexity limit, in which each
//! field weighs what it costs (see docs/queries.md).
use std::collections::HashSet;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::{Request, ServerError};

/// Most root fields (`calls`, `callStats`... each alias one more) in one operation.
pub const MAX_ROOT_FIELDS: usize = 10;

/// Most complexity one request may have (`graphql::MAX_COMPLEXITY` applies it). Every field
/// weighs 1 unless it says otherwise below; a page's fields weigh once per call of the page
/// (`calls(first: n)` multiplies what is under it by `n`).
pub const MAX_COMPLEXITY: usize = 50_000;
/// `callStats`: at least one aggregate query over the matching calls.
pub const CALL_STATS: usize = 2_000;
/// `durationPercentile`: a sort of the matching durations per group.
pub const PERCENTILE: usize = 500;
/// `durationHistogram`: another pass over the matching calls.
pub const HISTOGRAM: usize = 500;
/// `totalCount`: a count of the matching calls (weighed per call of the page it is asked with).
pub const TOTAL_COUNT: usize = 20;
/// `revisions`: one query per call.
pub const REVISIONS: usize = 20;
/// `reviews`: one query per call.
pub const REVIEWS: usize = 20;
/// `recording`: two short queries per call.
pub const RECORDING: usize = 20;

/// Refuses a request whose operation has more than [`MAX_ROOT_FIELDS`] root fields, before any
/// SQL runs. A request that does not parse is left for async-graphql to report.
pub fn check_root_fields(request: &mut Request) -> Result<(), ServerError> {
    let name = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else {
        return Ok(());
    };
    let Some(operation) = operation(document, name.as_deref()) else {
        return Ok(());
    };
    let mut seen = HashSet::new();
    let n = count(document, &operation.selection_set.node, &mut seen);
    if n > MAX_ROOT_FIELDS {
        let mut error = ServerError::new(
            format!(
                "{n} root fields in one operation; at most {MAX_ROOT_FIELDS} (aliases count one \
                 by one): split the request"
            ),
            None,
        );
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", "TOO_MANY_ROOT_FIELDS");
        return Err(error);
    }
    Ok(())
}

/// The name of the operation the request runs: the one it names, or its document's only one.
pub fn operation_name(request: &mut Request) -> Option<String> {
    if let Some(name) = &request.operation_name {
        return Some(name.clone());
    }
    match &request.parsed_query().ok()?.operations {
        DocumentOperations::Single(_) => {
            let text = request.query.trim_start();
            let rest = text
                .strip_prefix("query")
                .or_else(|| text.strip_prefix("mutation"))?;
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        }
        DocumentOperations::Multiple(ops) if ops.len() == 1 => {
            ops.keys().next().map(|n| n.to_string())
        }
        DocumentOperations::Multiple(_) => None,
    }
}

fn operation<'a>(
    document: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    match (&document.operations, name) {
        (DocumentOperations::Single(op), _) => Some(&op.node),
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, op)| &op.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| &op.node)
        }
        _ => None,
    }
}

/// Fields of a selection set, through fragments (each fragment entered once).
fn count(document: &ExecutableDocument, set: &SelectionSet, seen: &mut HashSet<String>) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(_) => 1,
            Selection::InlineFragment(f) => count(document, &f.node.selection_set.node, seen),
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                match document.fragments.get(name) {
                    Some(fragment) if seen.insert(name.to_owned()) => {
                        count(document, &fragment.node.selection_set.node, seen)
                    }
                    _ => 0,
                }
            }
        })
        .sum()
}
