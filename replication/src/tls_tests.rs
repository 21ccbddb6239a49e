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

#[test]
fn a_region_certificate_names_its_region_only() {
    let ca = crate::pki::Ca::generate("federal test CA").unwrap();
    let cert = ca.issue_region(7).unwrap();
    let der: Vec<CertificateDer<'static>> = certs(&cert.cert_pem, "region certificate").unwrap();
    assert_eq!(crate::pki::region_dns_name(7).unwrap(), "region-07.mirror.konvert");
    assert!(peer_is_named(&der, "region-07.mirror.konvert"));
    assert!(!peer_is_named(&der, "region-08.mirror.konvert"));
    assert!(!peer_is_named(&der, &station_dns_name("region-07").unwrap()));
    assert!(!peer_is_named(&[], "region-07.mirror.konvert"));
    for bad in [0u8, 100] {
        assert!(crate::pki::region_dns_name(bad).is_err());
        assert!(ca.issue_region(bad).is_err());
    }
}
