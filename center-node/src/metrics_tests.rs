use super::*;
use konvert_crypto::audit::{AuditAction, AuditLog};
use konvert_crypto::SigningKey;

fn text(registry: &Registry) -> String {
    let mut out = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn every_audit_checkpoint_is_exported_as_an_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let key = || SigningKey::from_seed(&[5; 32]).unwrap();
    let log = AuditLog::open(&dir.path().join("audit.log"), Some(key()), 2).unwrap();
    let metrics = Metrics::new().unwrap();
    export_audit_anchor(&metrics.registry, &log).unwrap();
    for i in 0..5 {
        log.append("center", AuditAction::PacketAccept, &format!("p{i}"), "ok")
            .unwrap();
    }
    let shown = text(&metrics.registry);
    assert!(shown.contains("konvert_audit_checkpoint_entries 4"), "{shown}");
    let cp = log.checkpoint().unwrap().unwrap();
    let shown = text(&metrics.registry);
    assert!(shown.contains("konvert_audit_checkpoint_entries 5"), "{shown}");
    let head = format!("konvert_audit_checkpoint_info{{head=\"{}\"}} 1", hex::encode(cp.head));
    assert!(shown.contains(&head), "{shown}");
    assert_eq!(shown.matches("konvert_audit_checkpoint_info{").count(), 1, "{shown}");
}
