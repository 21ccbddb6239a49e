use super::*;
use crate::RecipientSecretKey;

const NOW: u64 = 1_780_000_000_000;
const DAY: u64 = 86_400_000;

struct Officers {
    keys: Vec<SigningKey>,
}

impl Officers {
    fn new(n: usize) -> Self {
        Officers {
            keys: (0..n).map(|_| SigningKey::generate().unwrap()).collect(),
        }
    }

    fn authority(&self, threshold: u8) -> Authority {
        Authority {
            officers: self.keys.iter().map(|k| k.verifying_key()).collect(),
            threshold,
        }
    }

    fn refs(&self, which: &[usize]) -> Vec<&SigningKey> {
        which.iter().map(|&i| &self.keys[i]).collect()
    }
}

fn token(id: &str, person: &str, status: TokenStatus) -> (SigningKey, TokenRecord) {
    let key = SigningKey::generate().unwrap();
    let record = TokenRecord {
        token_id: id.into(),
        person: person.into(),
        role: TokenRole::Member,
        public: key.verifying_key(),
        status,
        status_since_unix_ms: NOW,
        sites: vec!["0101".into()],
        dates: vec!["2026-06-01".into()],
    };
    (key, record)
}

fn body(version: u64, authority: Authority, tokens: Vec<TokenRecord>) -> RegistryBody {
    RegistryBody {
        version,
        issued_at_unix_ms: NOW,
        expires_at_unix_ms: NOW + 7 * DAY,
        authority,
        tokens,
        center_keys: vec![CenterKeyRecord {
            key: RecipientSecretKey::generate().unwrap().public_key(),
            state: CenterKeyState::Active,
        }],
        agreement_keys: Vec::new(),
    }
}

fn reason(e: Error) -> RegistryRefusal {
    match e {
        Error::Registry { reason, .. } => reason,
        other => panic!("not a registry refusal: {other}"),
    }
}

#[test]
fn statuses_follow_the_regulations() {
    use TokenStatus::*;
    let path = [
        Loaded,
        ReceivedByCenter,
        Bound,
        StatementPrinted,
        Issued,
        ReceivedByCenter,
    ];
    for w in path.windows(2) {
        w[0].check_transition(w[1]).unwrap();
    }
    let err = Loaded.check_transition(Issued).unwrap_err();
    assert!(err.contains("allowed: received-by-center"), "{err}");
    for blocked in [Lost, Compromised, Broken] {
        Issued.check_transition(blocked).unwrap();
        assert!(blocked.is_blocked() && !blocked.may_sign());
        for to in TokenStatus::ALL {
            let err = blocked.check_transition(to).unwrap_err();
            assert!(err.contains("blocked for good"), "{err}");
        }
    }
    assert_eq!(TokenStatus::ALL.iter().filter(|s| s.may_sign()).count(), 1);
    assert_eq!("Выдан".parse::<TokenStatus>().unwrap(), Issued);
    assert!("issued!".parse::<TokenStatus>().unwrap_err().contains("one of loaded"));
}

#[test]
fn a_threshold_of_trusted_officers_is_needed() {
    let o = Officers::new(3);
    let trust = RegistryTrust::anchored(o.authority(2)).unwrap();
    let b = body(1, o.authority(2), vec![]);
    let two = SignedRegistry::sign(&b, &o.refs(&[0, 2])).unwrap();
    let (got, next) = trust.accept(&two, NOW).unwrap();
    assert_eq!((got.version, next.version), (1, 1));

    let one = SignedRegistry::sign(&b, &o.refs(&[1])).unwrap();
    assert_eq!(
        reason(trust.accept(&one, NOW).unwrap_err()),
        RegistryRefusal::NotEnoughSignatures
    );
    // The same officer twice counts once.
    let mut twice = one.clone();
    twice.signatures.push(twice.signatures[0]);
    assert_eq!(
        reason(trust.accept(&twice, NOW).unwrap_err()),
        RegistryRefusal::NotEnoughSignatures
    );
    // A signature from someone who is not an officer does not count.
    let stranger = SigningKey::generate().unwrap();
    let mut with_stranger = one.clone();
    with_stranger.add_signature(&stranger);
    assert_eq!(
        reason(trust.accept(&with_stranger, NOW).unwrap_err()),
        RegistryRefusal::NotEnoughSignatures
    );
    // A signature made for another purpose does not count.
    let mut other_domain = one.clone();
    other_domain
        .signatures
        .push((o.keys[0].key_id(), o.keys[0].sign(Domain::Receipt, &two.body)));
    assert_eq!(
        reason(trust.accept(&other_domain, NOW).unwrap_err()),
        RegistryRefusal::NotEnoughSignatures
    );
}

#[test]
fn any_flipped_bit_in_the_body_breaks_it() {
    let o = Officers::new(3);
    let trust = RegistryTrust::anchored(o.authority(2)).unwrap();
    let (_, t) = token("T1", "Иванов", TokenStatus::Issued);
    let good = SignedRegistry::sign(&body(1, o.authority(2), vec![t]), &o.refs(&[0, 1])).unwrap();
    for at in (0..good.body.len()).step_by(7) {
        let mut bad = good.clone();
        bad.body[at] ^= 0x10;
        let r = reason(trust.accept(&bad, NOW).unwrap_err());
        assert!(
            matches!(r, RegistryRefusal::NotEnoughSignatures | RegistryRefusal::Malformed),
            "byte {at}: {r:?}"
        );
    }
}

#[test]
fn rollback_equivocation_and_expiry_are_refused() {
    let o = Officers::new(3);
    let trust = RegistryTrust::anchored(o.authority(2)).unwrap();
    let v2 = SignedRegistry::sign(&body(2, o.authority(2), vec![]), &o.refs(&[0, 1])).unwrap();
    let (_, trust2) = trust.accept(&v2, NOW).unwrap();
    let v1 = SignedRegistry::sign(&body(1, o.authority(2), vec![]), &o.refs(&[0, 1])).unwrap();
    assert_eq!(reason(trust2.accept(&v1, NOW).unwrap_err()), RegistryRefusal::Rollback);
    // The same version again is fine; another body under it is not.
    trust2.accept(&v2, NOW).unwrap();
    let mut other = body(2, o.authority(2), vec![]);
    other.issued_at_unix_ms += 1;
    let v2b = SignedRegistry::sign(&other, &o.refs(&[0, 1])).unwrap();
    assert_eq!(
        reason(trust2.accept(&v2b, NOW).unwrap_err()),
        RegistryRefusal::Equivocation
    );
    let v3 = SignedRegistry::sign(&body(3, o.authority(2), vec![]), &o.refs(&[1, 2])).unwrap();
    let err = trust2.accept(&v3, NOW + 7 * DAY).unwrap_err();
    assert_eq!(reason(err), RegistryRefusal::Expired);
}

#[test]
fn officers_rotate_only_with_old_and_new_thresholds() {
    let old = Officers::new(3);
    let new = Officers::new(3);
    let trust = RegistryTrust::anchored(old.authority(2)).unwrap();
    let b = body(5, new.authority(2), vec![]);
    // Only the old officers: the new ones never agreed.
    let only_old = SignedRegistry::sign(&b, &old.refs(&[0, 1])).unwrap();
    assert_eq!(
        reason(trust.accept(&only_old, NOW).unwrap_err()),
        RegistryRefusal::NewAuthorityUnsigned
    );
    // Only the new officers: nobody trusted vouches for them.
    let only_new = SignedRegistry::sign(&b, &new.refs(&[0, 1])).unwrap();
    assert_eq!(
        reason(trust.accept(&only_new, NOW).unwrap_err()),
        RegistryRefusal::NotEnoughSignatures
    );
    let mut both = only_old.clone();
    for k in new.refs(&[1, 2]) {
        both.add_signature(k);
    }
    let (_, rotated) = trust.accept(&both, NOW).unwrap();
    assert_eq!(rotated.authority, new.authority(2));
    // From now on the old officers alone count for nothing.
    let next = SignedRegistry::sign(&body(6, new.authority(2), vec![]), &old.refs(&[0, 1, 2])).unwrap();
    assert_eq!(
        reason(rotated.accept(&next, NOW).unwrap_err()),
        RegistryRefusal::NotEnoughSignatures
    );
}

#[test]
fn only_an_issued_member_token_bound_to_the_site_and_day_may_sign() {
    let o = Officers::new(1);
    let (issued, t1) = token("T1", "Иванов", TokenStatus::Issued);
    let (printed, t2) = token("T2", "Петров", TokenStatus::StatementPrinted);
    let (lost, t3) = token("T3", "Сидоров", TokenStatus::Lost);
    let (specialist, mut t4) = token("T4", "Кузнецова", TokenStatus::Issued);
    t4.role = TokenRole::CenterSpecialist;
    let b = Registry::from(body(1, o.authority(1), vec![t1, t2, t3, t4]));
    let ok = b.may_sign(&issued.key_id(), "0101", "2026-06-01").unwrap();
    assert_eq!(ok.token_id, "T1");
    assert_eq!(
        b.may_sign(&issued.key_id(), "0102", "2026-06-01").unwrap_err(),
        SignRefusal::WrongSite
    );
    assert_eq!(
        b.may_sign(&issued.key_id(), "0101", "2026-06-02").unwrap_err(),
        SignRefusal::WrongDate
    );
    assert_eq!(
        b.may_sign(&printed.key_id(), "0101", "2026-06-01").unwrap_err(),
        SignRefusal::NotIssued(TokenStatus::StatementPrinted)
    );
    assert_eq!(
        b.may_sign(&lost.key_id(), "0101", "2026-06-01").unwrap_err(),
        SignRefusal::NotIssued(TokenStatus::Lost)
    );
    assert_eq!(
        b.may_sign(&specialist.key_id(), "0101", "2026-06-01").unwrap_err(),
        SignRefusal::NotAMember
    );
    let stranger = SigningKey::generate().unwrap();
    assert_eq!(
        b.may_sign(&stranger.key_id(), "0101", "2026-06-01").unwrap_err(),
        SignRefusal::UnknownToken
    );
}

#[test]
fn inconsistent_content_is_refused_before_signing() {
    let o = Officers::new(2);
    let (_, a) = token("T1", "Иванов", TokenStatus::Issued);
    let (_, mut b) = token("T2", "Иванов", TokenStatus::Bound);
    let err = SignedRegistry::sign(&body(1, o.authority(1), vec![a.clone(), b.clone()]), &o.refs(&[0])).unwrap_err();
    assert!(err.to_string().contains("one token per person"), "{err}");
    // A blocked token does not count: its holder gets a new one from the reserve.
    b.status = TokenStatus::Lost;
    SignedRegistry::sign(&body(1, o.authority(1), vec![a.clone(), b]), &o.refs(&[0])).unwrap();
    let err = SignedRegistry::sign(&body(1, o.authority(3), vec![]), &o.refs(&[0])).unwrap_err();
    assert!(err.to_string().contains("cannot be met"), "{err}");
    // Before the center key is born (on the loader's side, wrapped to specialists'
    // tokens the registry must issue first) a registry has none; once it has keys, one
    // of them is the one edges seal to.
    let mut no_key = body(1, o.authority(1), vec![]);
    no_key.center_keys.clear();
    SignedRegistry::sign(&no_key, &o.refs(&[0])).unwrap();
    let mut none_active = body(1, o.authority(1), vec![]);
    none_active.center_keys[0].state = CenterKeyState::Retiring { until_unix_ms: 1 };
    let err = SignedRegistry::sign(&none_active, &o.refs(&[0])).unwrap_err();
    assert!(err.to_string().contains("0 active center keys"), "{err}");
    let dup = SignedRegistry::sign(&body(1, o.authority(1), vec![a.clone(), a]), &o.refs(&[0])).unwrap_err();
    assert!(dup.to_string().contains("listed twice"), "{dup}");
}

#[test]
fn bytes_round_trip_and_garbage_is_refused() {
    let o = Officers::new(1);
    let signed = SignedRegistry::sign(&body(1, o.authority(1), vec![]), &o.refs(&[0])).unwrap();
    let bytes = signed.to_bytes().unwrap();
    assert_eq!(SignedRegistry::from_bytes(&bytes).unwrap(), signed);
    assert_eq!(
        reason(SignedRegistry::from_bytes(&bytes[..bytes.len() / 2]).unwrap_err()),
        RegistryRefusal::Malformed
    );
    let huge = vec![0u8; MAX_REGISTRY_LEN + 100 * 1024];
    assert_eq!(
        reason(SignedRegistry::from_bytes(&huge).unwrap_err()),
        RegistryRefusal::Malformed
    );
}

#[test]
fn officers_walk_a_token_through_its_lifecycle() {
    use TokenStatus::*;
    let o = Officers::new(1);
    let mut b = body(1, o.authority(1), vec![]);
    let key = SigningKey::generate().unwrap();
    b.add_token("T9", TokenRole::Member, key.verifying_key(), NOW).unwrap();
    let err = b.add_token(
        "T9",
        TokenRole::Member,
        SigningKey::generate().unwrap().verifying_key(),
        NOW,
    );
    assert!(err.unwrap_err().to_string().contains("already in the registry"));
    let err = b.set_status("T9", Issued, None, NOW).unwrap_err().to_string();
    assert!(err.contains("allowed: received-by-center"), "{err}");
    b.set_status("T9", ReceivedByCenter, None, NOW).unwrap();
    let err = b.set_status("T9", Bound, None, NOW).unwrap_err().to_string();
    assert!(err.contains("binding needs"), "{err}");
    let binding = Binding {
        person: "Иванов И. И.".into(),
        sites: vec!["0101".into()],
        dates: vec!["2026-06-01".into()],
    };
    b.set_status("T9", Bound, Some(binding.clone()), NOW).unwrap();
    b.set_status("T9", StatementPrinted, None, NOW).unwrap();
    let issued = b.set_status("T9", Issued, None, NOW + 1).unwrap().clone();
    assert_eq!((issued.status, issued.status_since_unix_ms), (Issued, NOW + 1));
    assert!(Registry::from(b.clone())
        .may_sign(&key.key_id(), "0101", "2026-06-01")
        .is_ok());

    // One token per person: a second token cannot be bound to the same member…
    let second = SigningKey::generate().unwrap();
    b.add_token("T10", TokenRole::Member, second.verifying_key(), NOW)
        .unwrap();
    b.set_status("T10", ReceivedByCenter, None, NOW).unwrap();
    let err = b
        .set_status("T10", Bound, Some(binding.clone()), NOW)
        .unwrap_err()
        .to_string();
    assert!(err.contains("one token per person"), "{err}");
    assert_eq!(
        b.tokens[1].status, ReceivedByCenter,
        "a refused change leaves the token as it was"
    );
    // …until the first is blocked; then the reserve token takes over.
    b.set_status("T9", Compromised, None, NOW + 2).unwrap();
    b.set_status("T10", Bound, Some(binding), NOW + 3).unwrap();
    assert_eq!(
        Registry::from(b.clone())
            .may_sign(&key.key_id(), "0101", "2026-06-01")
            .unwrap_err(),
        SignRefusal::NotIssued(Compromised)
    );
    let err = b.set_status("T9", Issued, None, NOW).unwrap_err().to_string();
    assert!(err.contains("blocked for good"), "{err}");
}

#[test]
fn a_rotated_center_key_opens_through_its_grace_period_then_is_destroyed() {
    let o = Officers::new(1);
    let mut b = body(1, o.authority(1), vec![]);
    let old = *b.active_center_key().unwrap();
    let new = RecipientSecretKey::generate().unwrap().public_key();
    b.rotate_center_key(new, NOW + DAY).unwrap();
    assert_eq!(b.active_center_key(), Some(&new));
    assert!(b.center_key_opens(&old, NOW) && b.center_key_opens(&new, NOW));
    assert!(!b.center_key_opens(&old, NOW + DAY), "grace period over");
    assert!(b
        .rotate_center_key(old, NOW)
        .unwrap_err()
        .to_string()
        .contains("used before"));
    assert!(b.retire_expired_center_keys(NOW).is_empty());
    assert_eq!(b.retire_expired_center_keys(NOW + DAY), vec![old]);
    assert_eq!(
        b.center_keys[0].state,
        CenterKeyState::Destroyed { at_unix_ms: NOW + DAY }
    );
    // The registry says so, signed: an edge learns the old key is gone.
    let signed = SignedRegistry::sign(&b, &o.refs(&[0])).unwrap();
    let (got, _) = RegistryTrust::anchored(o.authority(1))
        .unwrap()
        .accept(&signed, NOW)
        .unwrap();
    assert!(!got.center_key_opens(&old, NOW) && got.active_center_key() == Some(&new));
}

/// The Ed25519 identity point (y = 1): with it, the signature (R = identity, S = 0)
/// verifies for every message.
fn identity_key() -> VerifyingKey {
    let mut k = [0u8; 32];
    k[0] = 1;
    VerifyingKey(k)
}

#[test]
fn the_identity_key_verifies_anything_and_is_refused_wherever_a_key_enters() {
    let forged = {
        let mut s = [0u8; 64];
        s[0] = 1; // R = the identity's encoding, S = 0
        Signature(s)
    };
    // Why it matters: ring accepts it for any message.
    assert!(identity_key()
        .verify(Domain::Envelope, b"any digest at all", &forged)
        .is_ok());
    let o = Officers::new(1);
    // As a token's key: in the draft and in a signed body.
    let mut b = body(1, o.authority(1), vec![]);
    let e = b
        .add_token("T-EVIL", TokenRole::Member, identity_key(), NOW)
        .unwrap_err();
    assert_eq!(reason(e), RegistryRefusal::Malformed);
    let (_, mut t) = token("T-EVIL", "", TokenStatus::Loaded);
    t.public = identity_key();
    let e = SignedRegistry::sign(&body(1, o.authority(1), vec![t]), &o.refs(&[0])).unwrap_err();
    assert!(e.to_string().contains("small order"), "{e}");
    // As an officer's key: refused in the authority a reader anchors in.
    let mut authority = o.authority(1);
    authority.officers.push(identity_key());
    assert!(RegistryTrust::anchored(authority).is_err());
    // Other small-order points and non-points too.
    let mut order2 = [0u8; 32]; // y = −1 = p − 1: order 2
    order2[0] = 0xec;
    order2[1..31].fill(0xff);
    order2[31] = 0x7f;
    assert!(check_ed25519_key(&VerifyingKey(order2)).is_err());
    assert!(check_ed25519_key(&VerifyingKey([0; 32])).is_err(), "y = 0: order 4");
    assert!(check_ed25519_key(&o.keys[0].verifying_key()).is_ok());
    // Typed in (authority.toml, `--key`): refused as it is parsed.
    assert!(VerifyingKey::from_hex(&identity_key().to_string()).is_err());
    assert!(VerifyingKey::from_hex(&o.keys[0].verifying_key().to_string()).is_ok());
}

#[test]
fn a_version_may_not_jump_beyond_the_bound() {
    let o = Officers::new(1);
    let trust = RegistryTrust::anchored(o.authority(1)).unwrap();
    let sign = |v: u64| SignedRegistry::sign(&body(v, o.authority(1), vec![]), &o.refs(&[0])).unwrap();
    let (_, t5) = trust.accept(&sign(5), NOW).unwrap();
    assert_eq!(
        reason(t5.accept(&sign(u64::MAX), NOW).unwrap_err()),
        RegistryRefusal::VersionJump
    );
    assert_eq!(
        reason(t5.accept(&sign(5 + MAX_VERSION_JUMP + 1), NOW).unwrap_err()),
        RegistryRefusal::VersionJump
    );
    t5.accept(&sign(5 + MAX_VERSION_JUMP), NOW).unwrap();
    t5.accept(&sign(6), NOW).unwrap();
}

#[test]
fn format_1_bodies_still_decode_and_agreement_keys_only_name_specialists() {
    let o = Officers::new(1);
    let (_, member) = token("T1", "Иванов", TokenStatus::Loaded);
    let (_, mut sp) = token("SP-1", "Смирнова", TokenStatus::Loaded);
    sp.role = TokenRole::CenterSpecialist;
    let mut b = body(1, o.authority(1), vec![member, sp]);
    // A format-1 body is the same bytes without the trailing agreement-key list.
    let v1 = {
        let full = postcard::to_allocvec(&b).unwrap();
        full[..full.len() - 1].to_vec() // the empty list is one byte: 00
    };
    assert_eq!(RegistryBody::decode(&v1).unwrap(), b);
    let signed_v1 = SignedRegistry {
        body: v1.clone(),
        signatures: vec![(o.keys[0].key_id(), o.keys[0].sign(Domain::Registry, &v1))],
    };
    let trust = RegistryTrust::anchored(o.authority(1)).unwrap();
    assert!(trust.accept(&signed_v1, NOW).unwrap().0.agreement_keys.is_empty());
    assert!(RegistryBody::decode(&[v1.clone(), vec![7]].concat()).is_err());

    let x = RecipientSecretKey::generate().unwrap().public_key();
    assert!(
        b.set_agreement_key("T1", x).is_err(),
        "a member's token holds no loader key"
    );
    assert!(b.set_agreement_key("NOPE", x).is_err());
    assert!(b.agreement_keys.is_empty(), "a refused key is not kept");
    b.set_agreement_key("SP-1", x).unwrap();
    assert_eq!(b.agreement_key("SP-1"), Some(&x));
    let bytes = postcard::to_allocvec(&b).unwrap();
    assert_eq!(RegistryBody::decode(&bytes).unwrap(), b);
}
