//! The `konvert` command's library: the one-command demo, the transfer benchmark, the
//! minimal security-officer key commands (with their audit log), and the synthetic room generator they share.
//! It composes the edge and center crates and duplicates none of their logic.

pub mod audit_cli;
pub mod authority;
pub mod bench;
pub mod bench_day;
pub mod bench_day_cpu;
pub mod bench_floor;
pub mod bench_kill;
pub mod bench_mirror;
pub mod bench_mirror_lag;
pub mod bench_monitor;
pub mod bench_network;
pub mod bench_process;
pub mod bench_quic;
pub mod bench_recognition;
pub mod bench_replication;
pub mod bench_rss;
pub mod bench_signatures;
pub mod bench_table;
pub mod certificate_review;
pub mod demo;
mod demo_center_day;
pub mod impair;
pub mod keys;
pub mod netns;
pub mod quick_authority;
pub mod rooms;
pub mod rsync_ssh;
pub mod simulate;
pub mod statement;
pub mod statement_cli;
pub mod stations;
pub mod stats;
