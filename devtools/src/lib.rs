//! konvert's development tooling: the one-command demo, the benchmarks (`konvert bench`),
//! the region simulation, network namespaces and the impairment proxy, and the synthetic
//! rooms and throwaway authority they share. It composes the edge and center crates and
//! duplicates none of their logic; no production command depends on it.

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
pub mod clock;
pub mod demo;
mod demo_center_day;
pub mod impair;
pub mod netns;
pub mod quick_authority;
pub mod rooms;
pub mod rsync_ssh;
pub mod simulate;
pub mod stats;
