use super::*;

#[test]
fn blank_ids_round_trip_and_name_their_kind() {
    for kind in BlankKind::ALL {
        let id = BlankId::new(kind, 12_345_678_901).unwrap();
        let text = id.to_string();
        assert_eq!(text.len(), 13);
        assert_eq!(text.parse::<BlankId>().unwrap(), id);
        assert_eq!(BlankKind::from_code(kind.code()), Some(kind));
    }
    assert_eq!(
        "1000000000042".parse::<BlankId>().unwrap(),
        BlankId::new(BlankKind::Registration, 42).unwrap()
    );
    for bad in ["", "99000000000001", "9900000000001", "10abc00000001", "100000000001"] {
        assert!(bad.parse::<BlankId>().is_err(), "{bad}");
    }
    assert!(BlankId::new(BlankKind::Answer1, BlankId::SERIAL_LIMIT).is_err());
}

#[test]
fn form_codes_round_trip() {
    for form in Form::ALL {
        let id = FormId {
            form,
            site: "0101".parse().unwrap(),
            room: "0012".parse().unwrap(),
            date: "2026-06-01".parse().unwrap(),
        };
        assert_eq!(id.to_string().parse::<FormId>().unwrap(), id);
    }
    assert!("ППЭ-99|0101|0012|2026-06-01".parse::<FormId>().is_err());
    assert!("ППЭ-13-02МАШ|0101|0012".parse::<FormId>().is_err());
    assert!("ППЭ-13-02МАШ|0101|0012|2026-06-01|x".parse::<FormId>().is_err());
    let always: Vec<_> = Form::ALL.into_iter().filter(|f| f.always_scanned()).collect();
    assert_eq!(
        always,
        [
            Form::Ppe12_04Mash,
            Form::Ppe13_02Mash,
            Form::Ppe13_03UMash,
            Form::Ppe18Mash
        ]
    );
}

#[test]
fn templates_fit_on_the_page_and_in_pixels() {
    let templates = BlankKind::ALL
        .map(|k| k.template())
        .into_iter()
        .chain(Form::ALL.map(|f| f.template()));
    for t in templates {
        let z = t.barcode_zone;
        assert!(z.x >= 0.0 && z.y >= 0.0 && z.x + z.width <= t.page.width && z.y + z.height <= t.page.height);
        let (x, y, w, h) = z.to_pixels(300.0);
        let (pw, ph) = (
            (t.page.width * 300.0 / 25.4) as u32,
            (t.page.height * 300.0 / 25.4) as u32,
        );
        assert!(x + w <= pw + 1 && y + h <= ph + 1 && w > 100 && h > 100);
    }
    assert_eq!(BlankKind::Registration.template().symbology, Symbology::Code128);
    assert_eq!(Form::Ppe13_02Mash.template().symbology, Symbology::Qr);
}

#[test]
fn full_sets_include_empty_blanks() {
    let essay = full_set(ExamKind::Essay);
    assert_eq!(
        essay.iter().map(|(_, n)| u32::from(*n)).sum::<u32>(),
        5,
        "1 registration + 4 writing blanks"
    );
    assert!(full_set(ExamKind::Ege).contains(&(BlankKind::Answer2Sheet2, 1)));
}
