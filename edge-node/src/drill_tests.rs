use super::*;

#[test]
fn a_drill_room_reads_back_as_complete_and_a_second_drill_needs_a_new_folder() {
    let dir = tempfile::tempdir().unwrap();
    let req = DrillRequest {
        site: "0101".parse().unwrap(),
        date: "2026-06-01".parse().unwrap(),
        exam: ExamKind::Ege,
        rooms: vec![("0012".parse().unwrap(), 3)],
        absent: 1,
        pages_per_file: 4,
        format: ScanFormat::TiffG4,
        degrade: false,
        seed: 1,
    };
    let day = write_drill(dir.path(), &req).unwrap();
    let plan = konvert_exam::SeatingPlan::from_toml(&std::fs::read_to_string(&day.plan).unwrap()).unwrap();
    assert_eq!(plan.seated_in(&"0012".parse().unwrap()), 3);
    let room = &day.rooms[0];
    assert_eq!((room.seated, room.present), (3, 2));
    // Every page is a real image whose barcode the recognizer reads as the page it is.
    let mut read = 0;
    for entry in std::fs::read_dir(&room.scans).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for page in konvert_exam::scan::read_scan_pages(&bytes).unwrap() {
            let r = konvert_exam::scan::recognize(&page.unwrap(), std::time::Duration::from_secs(10));
            assert!(matches!(r, konvert_exam::scan::Recognition::Read { .. }), "{r:?}");
            read += 1;
        }
    }
    assert_eq!(read, room.pages);
    let again = write_drill(dir.path(), &req).unwrap_err().to_string();
    assert!(again.contains("choose another --out"), "{again}");
}
