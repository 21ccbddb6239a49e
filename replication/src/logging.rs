//! The logs of konvert's binaries: the filter from `RUST_LOG` (or its older name
//! `KONVERT_LOG`), colour only on a terminal, and plain text or one JSON object a line.

use std::io::IsTerminal;

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line, for a log collector.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?}: use text or json")),
        }
    }
}

/// The filter in force: `RUST_LOG`, else `KONVERT_LOG` (kept for old setups), else
/// `default` (e.g. "info"). A filter that does not parse is said once, and the default used.
pub fn filter(default: &str) -> tracing_subscriber::EnvFilter {
    for var in ["RUST_LOG", "KONVERT_LOG"] {
        if let Ok(text) = std::env::var(var) {
            match tracing_subscriber::EnvFilter::try_new(&text) {
                Ok(f) => return f,
                Err(e) => eprintln!("{var}={text:?} is not a log filter ({e}); using {default:?}"),
            }
        }
    }
    tracing_subscriber::EnvFilter::new(default)
}

/// Sends this process's logs to stderr: colour only when stderr is a terminal (and
/// `NO_COLOR` is not set), so log files hold no escape codes.
pub fn init(format: LogFormat, default: &str) {
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(default))
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let done = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if let Err(e) = done {
        eprintln!("logging not set up: {e}");
    }
}

/// Makes a closed stdout end the process quietly, as `head` or a closed pager expects:
/// Rust ignores SIGPIPE, so `println!` into a closed pipe panics with a backtrace instead.
/// Exits 141 (128 + SIGPIPE) as a shell would report it; every other panic is untouched.
pub fn exit_quietly_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// Text from outside made safe to print on a terminal or in a log line: control characters
/// (a newline that would forge a line, an escape sequence that would clear the screen) are
/// shown escaped, as `\n`, `\u{1b}`.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}
