use clap::CommandFactory;

use super::*;

#[test]
fn the_command_line_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn plain_bench_is_the_replication_table_and_subcommands_still_parse() {
    let Command::Bench(b) = Cli::try_parse_from(["konvert", "bench", "--quick", "--only", "loopback,center-rss"])
        .unwrap()
        .command
    else {
        panic!("not bench")
    };
    assert!(b.command.is_none());
    assert!(b.table.quick);
    assert_eq!(b.table.only, vec![Source::Loopback, Source::CenterRss]);

    let Command::Bench(b) = Cli::try_parse_from(["konvert", "bench", "transfer", "--packets", "3"])
        .unwrap()
        .command
    else {
        panic!("not bench")
    };
    assert!(matches!(b.command, Some(BenchCommand::Transfer { packets: 3, .. })));

    let Command::Bench(b) = Cli::try_parse_from(["konvert", "bench", "replication", "--quick"])
        .unwrap()
        .command
    else {
        panic!("not bench")
    };
    assert!(matches!(
        b.command,
        Some(BenchCommand::Replication(TableArgs { quick: true, .. }))
    ));
    // Table options belong to the table, not to another benchmark.
    assert!(Cli::try_parse_from(["konvert", "bench", "--quick", "transfer"]).is_err());
}
