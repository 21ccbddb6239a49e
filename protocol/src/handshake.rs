//! The control stream's exchange: the edge says Hello with the versions it speaks and the
//! site it speaks for; the center answers Welcome with the version chosen, or refuses.

use crate::{Error, Message, RejectReason, Result, PROTOCOL_VERSION};

/// The oldest version this build still speaks; raise it when dropping support.
const MIN_SUPPORTED: u16 = PROTOCOL_VERSION;

/// The edge's Hello, offering exactly this build's protocol version.
pub fn hello(site: &str, agent: &str) -> Message {
    Message::Hello {
        min_version: MIN_SUPPORTED,
        max_version: PROTOCOL_VERSION,
        site: site.to_owned(),
        agent: agent.to_owned(),
    }
}

/// The highest version both sides speak, if any.
fn negotiate(min_version: u16, max_version: u16) -> Option<u16> {
    let top = max_version.min(PROTOCOL_VERSION);
    (top >= min_version.max(MIN_SUPPORTED)).then_some(top)
}

/// The center's answer to Hello: the claimed site (the caller checks it against the
/// station certificate) and Welcome, or Reject{UnsupportedVersion} when no version is
/// shared. Anything but Hello is a protocol error.
pub fn answer_hello(msg: &Message, center_name: &str) -> Result<(String, Message)> {
    let Message::Hello {
        min_version,
        max_version,
        site,
        ..
    } = msg
    else {
        return Err(Error::Unexpected {
            expected: "Hello",
            got: msg.kind().into(),
        });
    };
    let answer = match negotiate(*min_version, *max_version) {
        Some(version) => Message::Welcome {
            version,
            center: center_name.to_owned(),
        },
        None => Message::Reject {
            reason: RejectReason::UnsupportedVersion,
            detail: format!(
                "the center speaks versions {MIN_SUPPORTED}..={PROTOCOL_VERSION}, the edge {min_version}..={max_version}"
            ),
        },
    };
    Ok((site.clone(), answer))
}

/// The edge's check of the center's answer to its Hello: the version to use.
/// A refusal is `Error::Refused`; a version the edge never offered is a protocol error.
pub fn check_welcome(msg: &Message) -> Result<u16> {
    match msg {
        Message::Welcome { version, .. } if (MIN_SUPPORTED..=PROTOCOL_VERSION).contains(version) => Ok(*version),
        Message::Welcome { version, .. } => Err(Error::Unexpected {
            expected: "Welcome with a version the edge offered",
            got: format!("Welcome with version {version}"),
        }),
        Message::Reject { reason, detail } => Err(Error::Refused {
            reason: *reason,
            detail: detail.clone(),
        }),
        other => Err(Error::Unexpected {
            expected: "Welcome or Reject",
            got: other.kind().into(),
        }),
    }
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
