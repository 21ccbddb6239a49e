use super::*;

fn hello_range(min_version: u16, max_version: u16) -> Message {
    Message::Hello {
        min_version,
        max_version,
        site: "0101".into(),
        agent: "konvert-edge/test".into(),
    }
}

#[test]
fn same_version_is_welcomed() {
    let hi = hello("0101", "konvert-edge/test");
    assert_eq!(hi, hello_range(PROTOCOL_VERSION, PROTOCOL_VERSION));
    let (site, welcome) = answer_hello(&hi, "region-77").unwrap();
    assert_eq!(site, "0101");
    assert_eq!(
        welcome,
        Message::Welcome {
            version: PROTOCOL_VERSION,
            center: "region-77".into()
        }
    );
    assert_eq!(check_welcome(&welcome).unwrap(), PROTOCOL_VERSION);
}

#[test]
fn the_highest_common_version_is_chosen() {
    let (_, welcome) = answer_hello(&hello_range(0, PROTOCOL_VERSION + 5), "c").unwrap();
    assert!(matches!(welcome, Message::Welcome { version, .. } if version == PROTOCOL_VERSION));
}

#[test]
fn no_common_version_is_refused_with_unsupported_version() {
    for (min, max) in [
        (PROTOCOL_VERSION + 1, PROTOCOL_VERSION + 9),
        (0, PROTOCOL_VERSION - 1),
        (PROTOCOL_VERSION + 1, PROTOCOL_VERSION), // an inverted range is empty
    ] {
        let (site, refusal) = answer_hello(&hello_range(min, max), "c").unwrap();
        assert_eq!(site, "0101", "the site is still reported, for the center's log");
        assert!(
            matches!(
                refusal,
                Message::Reject {
                    reason: RejectReason::UnsupportedVersion,
                    ..
                }
            ),
            "{min}..={max}: {refusal:?}"
        );
        let err = check_welcome(&refusal).unwrap_err();
        assert!(matches!(
            err,
            Error::Refused {
                reason: RejectReason::UnsupportedVersion,
                ..
            }
        ));
        assert!(err.to_string().contains("update the station software"), "{err}");
    }
}

#[test]
fn wrong_messages_are_protocol_errors() {
    assert!(matches!(
        answer_hello(&Message::Done, "c"),
        Err(Error::Unexpected { expected: "Hello", got }) if got == "Done"
    ));
    assert!(matches!(
        check_welcome(&Message::Done),
        Err(Error::Unexpected { got, .. }) if got == "Done"
    ));
    let future = Message::Welcome {
        version: PROTOCOL_VERSION + 1,
        center: "c".into(),
    };
    assert!(
        matches!(check_welcome(&future), Err(Error::Unexpected { got, .. }) if got.contains(&format!("version {}", PROTOCOL_VERSION + 1)))
    );
}
