//! Requests that ask only about the schema (GraphiQL's Docs, codegen, schema-driven testers):
//! the standard introspection query nests deeper than data queries may, so such requests run
//! under bounds of their own; a request that also asks for data keeps the data limits.
use std::collections::{HashMap, HashSet};

use async_graphql::parser::types::{
    ExecutableDocument, Field, OperationType, Selection, SelectionSet,
};
use async_graphql::{Positioned, Request, ServerError};

use super::documents;

/// Deepest schema-only request: graphql-js's `getIntrospectionQuery()` nests 15 fields deep
/// (a field's argument's type, then nine `ofType`s); this leaves room for tools that ask
/// for deeper type references.
pub const MAX_DEPTH: usize = 32;
/// Most costly schema-only request (each field selected costs 1, fragments counted where
/// they are spread): the standard query with every option costs about 230.
pub const MAX_COMPLEXITY: usize = 1_000;

/// Fields of `__Type` that list types or fields. Nested in one another
/// (`fields { type { fields {`) each multiplies the answer by the size of the schema, so,
/// as graphql-js's `MaxIntrospectionDepthRule`, a third level is refused, in every request.
const LISTS: [&str; 4] = ["fields", "inputFields", "interfaces", "possibleTypes"];
const MAX_LIST_NESTING: usize = 3;

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asks {
    /// A query whose every root field is `__schema`, `__type` or `__typename`.
    OnlySchema,
    /// Anything else, and whatever does not parse (which the schema then reports).
    Data,
}

/// What `request` asks for, or the error for introspection that nests its lists too deep.
pub fn classify(request: &mut Request) -> Result<Asks, ServerError> {
    let name = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else {
        return Ok(Asks::Data);
    };
    let Some(operation) = documents::operation(document, name.as_deref()) else {
        return Ok(Asks::Data);
    };
    let mut roots = Vec::new();
    root_fields(
        &operation.node.selection_set,
        document,
        &mut HashSet::new(),
        &mut roots,
    );
    let mut nesting = Nesting {
        document,
        visiting: HashSet::new(),
        known: HashMap::new(),
    };
    for field in &roots {
        if matches!(field.node.name.node.as_str(), "__schema" | "__type")
            && nesting.exceeds(&field.node.selection_set, 0)
        {
            return Err(ServerError::new(
                format!(
                    "introspection nests {} too deeply (at most {} levels)",
                    LISTS.join(", "),
                    MAX_LIST_NESTING - 1
                ),
                Some(field.pos),
            ));
        }
    }
    let only_schema = operation.node.ty == OperationType::Query
        && !roots.is_empty()
        && roots.iter().all(|field| {
            matches!(
                field.node.name.node.as_str(),
                "__schema" | "__type" | "__typename"
            )
        });
    Ok(if only_schema {
        Asks::OnlySchema
    } else {
        Asks::Data
    })
}

/// The fields selected at the root, through fragments (each fragment once).
fn root_fields<'a>(
    set: &'a Positioned<SelectionSet>,
    document: &'a ExecutableDocument,
    seen: &mut HashSet<&'a str>,
    fields: &mut Vec<&'a Positioned<Field>>,
) {
    for selection in &set.node.items {
        match &selection.node {
            Selection::Field(field) => fields.push(field),
            Selection::InlineFragment(inline) => {
                root_fields(&inline.node.selection_set, document, seen, fields);
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                if seen.insert(name)
                    && let Some(fragment) = document.fragments.get(name)
                {
                    root_fields(&fragment.node.selection_set, document, seen, fields);
                }
            }
        }
    }
}

/// Walks a selection for nested list fields, each fragment at most once per depth (a
/// fragment spread twice in each of twenty fragments is not walked a million times).
struct Nesting<'a> {
    document: &'a ExecutableDocument,
    visiting: HashSet<&'a str>,
    known: HashMap<(&'a str, usize), bool>,
}

impl<'a> Nesting<'a> {
    fn exceeds(&mut self, set: &'a Positioned<SelectionSet>, depth: usize) -> bool {
        for selection in &set.node.items {
            let exceeded = match &selection.node {
                Selection::Field(field) => {
                    let depth = if LISTS.contains(&field.node.name.node.as_str()) {
                        depth + 1
                    } else {
                        depth
                    };
                    depth >= MAX_LIST_NESTING || self.exceeds(&field.node.selection_set, depth)
                }
                Selection::InlineFragment(inline) => {
                    self.exceeds(&inline.node.selection_set, depth)
                }
                Selection::FragmentSpread(spread) => {
                    self.fragment_exceeds(spread.node.fragment_name.node.as_str(), depth)
                }
            };
            if exceeded {
                return true;
            }
        }
        false
    }

    fn fragment_exceeds(&mut self, name: &'a str, depth: usize) -> bool {
        if let Some(&known) = self.known.get(&(name, depth)) {
            return known;
        }
        let Some(fragment) = self.document.fragments.get(name) else {
            return false;
        };
        // A cycle is refused by validation; here it only must not loop.
        if !self.visiting.insert(name) {
            return false;
        }
        let exceeded = self.exceeds(&fragment.node.selection_set, depth);
        self.visiting.remove(name);
        self.known.insert((name, depth), exceeded);
        exceeded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asks(query: &str, operation: Option<&str>) -> Result<Asks, ServerError> {
        let mut request = Request::new(query);
        if let Some(name) = operation {
            request = request.operation_name(name);
        }
        classify(&mut request)
    }

    #[test]
    fn only_queries_of_meta_fields_alone_ask_only_about_the_schema() {
        for query in [
            "{ __typename }",
            "{ __schema { queryType { name } } }",
            "query { __type(name: \"Call\") { fields { name } } __typename }",
            "{ ...Root } fragment Root on Query { __schema { types { name } } }",
            "{ ... on Query { __schema { description } } }",
        ] {
            assert_eq!(
                asks(query, None).expect("allowed"),
                Asks::OnlySchema,
                "{query}"
            );
        }
        for query in [
            "{ __schema { description } calls { totalCount } }",
            "{ ...Root } fragment Root on Query { __typename calls { totalCount } }",
            "{ __typename calls @skip(if: true) { totalCount } }",
            "mutation { __typename }",
            "subscription { __typename }",
            "{ __schema { description }",
            "query A { __typename } query B { calls { totalCount } }",
        ] {
            assert_eq!(asks(query, None).expect("allowed"), Asks::Data, "{query}");
        }
        let two = "query A { __typename } query B { calls { totalCount } }";
        assert_eq!(asks(two, Some("A")).expect("allowed"), Asks::OnlySchema);
        assert_eq!(asks(two, Some("B")).expect("allowed"), Asks::Data);
        assert_eq!(asks(two, Some("C")).expect("allowed"), Asks::Data);
    }

    #[test]
    fn introspection_lists_nest_two_levels_at_most_in_any_request() {
        let two = "{ __schema { types { fields { type { ofType { interfaces { name } } } } } } }";
        assert_eq!(asks(two, None).expect("allowed"), Asks::OnlySchema);
        let three = [
            "{ __schema { types { fields { type { fields { type { possibleTypes { name } } } } } } } }",
            "{ __type(name: \"Query\") { fields { type { ofType { fields { type { ofType { inputFields { name } } } } } } } } }",
            "{ calls { totalCount } __type(name: \"Call\") { ...F } } fragment F on __Type { fields { type { ...G } } } fragment G on __Type { interfaces { ...H } } fragment H on __Type { possibleTypes { name } }",
        ];
        for query in three {
            let error = asks(query, None).expect_err("refused");
            assert!(error.message.contains("too deeply"), "{query}: {error:?}");
        }
    }

    #[test]
    fn fragments_spread_many_times_are_walked_once_per_depth() {
        let mut query = String::from("{ __schema { types { ...F0 } } }");
        for n in 0..40 {
            query.push_str(&format!(
                " fragment F{n} on __Type {{ name ...F{next} ...F{next} }}",
                next = n + 1
            ));
        }
        query.push_str(" fragment F40 on __Type { fields { type { interfaces { name } } } }");
        // Walked path by path this would take 2^40 steps.
        assert_eq!(asks(&query, None).expect("allowed"), Asks::OnlySchema);
    }
}
