//! The `konvert` command's library: the security officers' key commands (with their audit
//! log), the stations' enrollment, and the officers' statements. The development tooling
//! (demo, benchmarks, simulation) is `konvert-devtools`; the binary carries both.

pub mod audit_cli;
pub mod authority;
pub mod certificate_review;
pub mod keys;
pub mod statement;
pub mod statement_cli;
pub mod stations;
