//! The control stream's exchange: the edge says Hello with the versions it speaks and the
//! site it speaks for; the center answers Welcome with the version chosen, or refuses.

use crate::{Error, Message, RejectReason, Result, PROTOCOL_VERSION};

/// The edge's Hello.
pub fn hello(site: &str, agent: &str) -> Message {
    Message::Hello {
        min_version: PROTOCOL_VERSION,
        max_version: PROTOCOL_VERSION,
        site: site.to_owned(),
        agent: agent.to_owned(),
    }
}

/// The center's answer to Hello: the claimed site and Welcome, or a refusal when no
/// version is shared. Anything but Hello is a protocol error.
pub fn answer_hello(msg: &Message, center_name: &str) -> Result<(String, Message)> {
    let Message::Hello {
        min_version,
        max_version,
        site,
        ..
    } = msg
    else {
        return Err(Error::Protocol {
            expected: "Hello",
            got: msg.kind().into(),
        });
    };
    let answer = if (*min_version..=*max_version).contains(&PROTOCOL_VERSION) {
        Message::Welcome {
            version: PROTOCOL_VERSION,
            center: center_name.to_owned(),
        }
    } else {
        Message::Reject {
            reason: RejectReason::UnsupportedVersion,
            detail: format!("the center speaks version {PROTOCOL_VERSION}, the edge {min_version}..={max_version}"),
        }
    };
    Ok((site.clone(), answer))
}

/// The edge's check of the center's answer: the version to use.
pub fn check_welcome(msg: &Message) -> Result<u16> {
    match msg {
        Message::Welcome { version, .. } if *version == PROTOCOL_VERSION => Ok(*version),
        Message::Welcome { version, .. } => Err(Error::Protocol {
            expected: "Welcome with version 1",
            got: format!("Welcome with version {version}"),
        }),
        Message::Reject { reason, detail } => Err(Error::Connection(format!(
            "the center refused: {} ({detail})",
            reason.plain_words()
        ))),
        other => Err(Error::Protocol {
            expected: "Welcome",
            got: other.kind().into(),
        }),
    }
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
