use super::*;

fn alert_from_center(alert: u8) -> quinn::ConnectionError {
    quinn::ConnectionError::ConnectionClosed(quinn::ConnectionClose {
        error_code: quinn::TransportErrorCode::crypto(alert),
        frame_type: None,
        reason: Default::default(),
    })
}

#[test]
fn revocation_refusals_are_explained_in_plain_words() {
    let closed = quinn::ConnectionError::ApplicationClosed(quinn::ApplicationClose {
        error_code: quinn::VarInt::from_u32(CLOSE_REVOKED),
        reason: Default::default(),
    });
    for e in [closed, alert_from_center(44)] {
        let text = explain_connection_error(&e).to_string();
        assert!(text.contains("the center revoked this station's certificate"), "{text}");
        assert!(text.contains("security officer"), "{text}");
    }
    let text = explain_connection_error(&alert_from_center(49)).to_string();
    assert!(text.contains("revocation list has expired"), "{text}");
    // Another CA stays another CA; an ordinary application close is not a revocation.
    let text = explain_connection_error(&alert_from_center(48)).to_string();
    assert!(text.contains("not signed by the center's CA"), "{text}");
    let bye = quinn::ConnectionError::ApplicationClosed(quinn::ApplicationClose {
        error_code: quinn::VarInt::from_u32(0),
        reason: Default::default(),
    });
    assert!(matches!(explain_connection_error(&bye), Error::Connection(_)));
}
