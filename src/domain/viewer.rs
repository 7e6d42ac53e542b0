//! Who is reading: a key's role and scope, decided once per request, and what they allow.
use super::Call;
use super::filter::CallFilter;
use super::stats::{Dimension, StatsRequest};
use crate::error::AppError;

/// What a key may read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Everything, the access log included.
    Admin,
    /// Every call field: customer identity, raw payloads, revisions, recordings.
    Reviewer,
    /// Call lists and every statistic, with nothing that identifies a customer.
    Analyst,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Reviewer, Role::Analyst];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Reviewer => "reviewer",
            Role::Analyst => "analyst",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// The calls a key sees: those of its business numbers and of its agents (each list empty for
/// all). A call outside the scope is, to that key, a call that does not exist.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    pub waba_numbers: Vec<String>,
    pub agents: Vec<String>,
}

impl Scope {
    /// Every call.
    pub fn all() -> Scope {
        Scope::default()
    }

    pub fn is_all(&self) -> bool {
        self.waba_numbers.is_empty() && self.agents.is_empty()
    }

    /// `filter` narrowed to this scope: a list the filter names is intersected with the
    /// scope's, a list it does not name becomes the scope's.
    pub fn restrict(&self, filter: &CallFilter) -> CallFilter {
        let mut narrowed = filter.clone();
        narrow(&mut narrowed.waba_numbers, &self.waba_numbers);
        narrow(&mut narrowed.picked_by, &self.agents);
        narrowed
    }

    /// `request` with its filter narrowed to this scope.
    pub fn restrict_stats(&self, request: &StatsRequest) -> StatsRequest {
        StatsRequest {
            filter: self.restrict(&request.filter),
            ..request.clone()
        }
    }

    /// Whether `call` is inside the scope.
    pub fn admits(&self, call: &Call) -> bool {
        (self.waba_numbers.is_empty() || self.waba_numbers.contains(&call.waba_number))
            && (self.agents.is_empty()
                || call
                    .picked_by
                    .as_ref()
                    .is_some_and(|a| self.agents.contains(a)))
    }
}

fn narrow(list: &mut Option<Vec<String>>, scope: &[String]) {
    if scope.is_empty() {
        return;
    }
    *list = Some(match list.take() {
        Some(asked) => asked.into_iter().filter(|v| scope.contains(v)).collect(),
        None => scope.to_vec(),
    });
}

/// The reader of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Viewer {
    /// The API key's id; `None` for a read on open loopback (no key exists yet).
    pub key_id: Option<i64>,
    pub key_name: String,
    pub role: Role,
    pub scope: Scope,
}

impl Viewer {
    /// A read on a loopback address while no API key exists: everything, unlogged.
    pub fn open_loopback() -> Viewer {
        Viewer {
            key_id: None,
            key_name: "open loopback (no API keys exist)".into(),
            role: Role::Admin,
            scope: Scope::all(),
        }
    }

    /// Whether the reader may see who a call's customer is (name, number, id), its raw
    /// payload, its revisions and its recording.
    pub fn may_see_identity(&self) -> bool {
        self.role != Role::Analyst
    }

    /// `Ok` when the reader may see customer identity; FORBIDDEN naming `what` otherwise.
    pub fn require_identity(&self, what: &str) -> Result<(), AppError> {
        if self.may_see_identity() {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "{what}: an {} key may not read customer identity",
                self.role.as_str()
            )))
        }
    }

    pub fn require_admin(&self, what: &str) -> Result<(), AppError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "{what}: only an admin key may read this"
            )))
        }
    }

    /// Refuses a filter that selects calls by who the customer is, for a reader who may not
    /// see identity (the answer would reveal it). `argument` prefixes the field's name in the
    /// error (`filter.customerNumber`); empty, the field alone is named (an export's parameter).
    pub fn check_filter(&self, filter: &CallFilter, argument: &str) -> Result<(), AppError> {
        let by_identity = [
            (filter.customer_id.is_some(), "customerId"),
            (filter.customer_digits.is_some(), "customerNumber"),
            (filter.customer_name.is_some(), "customerName"),
        ];
        for (used, field) in by_identity {
            if used {
                let named = if argument.is_empty() {
                    field.to_owned()
                } else {
                    format!("{argument}.{field}")
                };
                self.require_identity(&named)?;
            }
        }
        Ok(())
    }

    /// Refuses grouping by customer for a reader who may not see identity.
    pub fn check_dimensions(&self, dimensions: &[Dimension]) -> Result<(), AppError> {
        if dimensions.contains(&Dimension::Customer) {
            self.require_identity("groupBy: CUSTOMER")?;
        }
        Ok(())
    }
}
