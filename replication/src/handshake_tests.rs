use super::*;

#[test]
fn versions_are_negotiated() {
    let (site, welcome) = answer_hello(&hello("0101", "test"), "center").unwrap();
    assert_eq!(site, "0101");
    assert_eq!(check_welcome(&welcome).unwrap(), PROTOCOL_VERSION);
    let future = Message::Hello {
        min_version: 7,
        max_version: 9,
        site: "0101".into(),
        agent: "x".into(),
    };
    let (_, refusal) = answer_hello(&future, "center").unwrap();
    assert!(matches!(
        refusal,
        Message::Reject {
            reason: RejectReason::UnsupportedVersion,
            ..
        }
    ));
    assert!(check_welcome(&refusal).is_err());
    assert!(answer_hello(&Message::Done, "center").is_err());
    assert!(check_welcome(&Message::Done).is_err());
}
