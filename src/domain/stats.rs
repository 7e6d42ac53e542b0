//! Call statistics: what is counted and how calls are grouped.
