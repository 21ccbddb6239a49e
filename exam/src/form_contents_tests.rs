use super::*;

fn id(form: Form) -> FormId {
    FormId {
        form,
        site: "0101".parse().unwrap(),
        room: "0012".parse().unwrap(),
        date: "2026-06-01".parse().unwrap(),
    }
}

fn summary() -> RoomSummary {
    RoomSummary {
        present: 14,
        absent: 1,
        removed: 1,
        early_finished: 2,
        blanks: [
            (BlankKind::Registration, 14),
            (BlankKind::Answer1, 14),
            (BlankKind::Additional, 3),
        ]
        .into_iter()
        .collect(),
    }
}

#[test]
fn summaries_and_acts_round_trip_through_their_text() {
    let qr = FormQr::new(id(Form::Ppe13_02Mash), Some(FormContents::RoomSummary(summary()))).unwrap();
    let text = qr.to_string();
    assert_eq!(
        text,
        "ППЭ-13-02МАШ|0101|0012|2026-06-01|present=14;absent=1;removed=1;early=2;b10=14;b11=14;b14=3"
    );
    let back: FormQr = text.parse().unwrap();
    assert_eq!(back, qr);
    assert_eq!(back.summary().unwrap().blanks_of(BlankKind::Answer2Sheet2), 0);
    assert_eq!(back.summary().unwrap().blanks_of(BlankKind::Additional), 3);
    for form in [Form::Ppe21, Form::Ppe22] {
        let qr = FormQr::new(id(form), Some(FormContents::Kits(vec![4_000_000_001, 17]))).unwrap();
        let back: FormQr = qr.to_string().parse().unwrap();
        assert_eq!(back.kits(), Some(&[4_000_000_001, 17][..]));
    }
    let oral = FormQr::new(id(Form::Ppe13_03UMash), Some(FormContents::RoomSummary(summary()))).unwrap();
    assert_eq!(oral.to_string().parse::<FormQr>().unwrap(), oral);
}

#[test]
fn a_code_without_contents_still_reads_as_before() {
    for form in Form::ALL {
        let text = id(form).to_string();
        let qr: FormQr = text.parse().unwrap();
        assert_eq!(qr.id, id(form));
        assert_eq!(qr.contents, None);
        assert_eq!(qr.to_string(), text);
    }
}

#[test]
fn contents_that_do_not_fit_the_form_or_are_malformed_are_refused() {
    let base = "ППЭ-13-02МАШ|0101|0012|2026-06-01|";
    for bad in [
        "",
        "present=1;absent=0;removed=0",
        "present=1;absent=0;removed=0;early=0;present=2",
        "present=1;absent=0;removed=0;early=0;b99=1",
        "present=1;absent=0;removed=0;early=0;b10=1;b10=2",
        "present=1;absent=0;removed=0;early=0;extra=1",
        "present=-1;absent=0;removed=0;early=0",
        "present=100000;absent=0;removed=0;early=0",
        "present=1;absent=0;removed=0;early=0|x",
        "kits=1",
    ] {
        assert!(format!("{base}{bad}").parse::<FormQr>().is_err(), "{bad:?}");
    }
    let act = "ППЭ-21|0101|0012|2026-06-01|";
    for bad in [
        "kits=",
        "kits=1,,2",
        "kits=1,1",
        "kits=12345678901",
        "kits=1,2,3,4,5,6,7,8,9",
        "present=1;absent=0;removed=0;early=0",
    ] {
        assert!(format!("{act}{bad}").parse::<FormQr>().is_err(), "{bad:?}");
    }
    assert!("ППЭ-18МАШ|0101|0012|2026-06-01|kits=1".parse::<FormQr>().is_err());
    assert!(FormQr::new(id(Form::Ppe12_04Mash), Some(FormContents::Kits(vec![1]))).is_err());
    assert!(FormQr::new(id(Form::Ppe21), Some(FormContents::RoomSummary(summary()))).is_err());
}
