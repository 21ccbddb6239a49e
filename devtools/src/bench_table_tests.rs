use super::*;

#[test]
fn measured_rows_show_figure_goal_and_verdict() {
    let mut t = Table::new();
    t.add(
        &[("a", "≥ 2×")],
        Ok(vec![
            Row::measured("a", "≥ 2×", "3.0×", Some(true), "x 30 MB/s, y 10 MB/s"),
            Row::measured("b", "≤ 100 MB", "120 MB", Some(false), ""),
            Row::measured("c", "", "7", None, ""),
        ]),
    );
    let out = t.render();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert_eq!(lines[2], "| a | 3.0× | ≥ 2× | yes | x 30 MB/s, y 10 MB/s |");
    assert_eq!(lines[3], "| b | 120 MB | ≤ 100 MB | **no** |  |");
    assert_eq!(lines[4], "| c | 7 |  |  |  |");
}

#[test]
fn a_failed_source_becomes_not_measured_rows_and_the_rest_stays() {
    let mut t = Table::new();
    t.add(&[("ok", "")], Ok(vec![Row::measured("ok", "", "1", None, "")]));
    t.add(
        &[("rsync row", "≥ 2.5×"), ("disk row", "")],
        Err(anyhow::anyhow!("rsync is not installed | really\nsecond line")),
    );
    assert_eq!(t.rows().len(), 3);
    for r in &t.rows()[1..] {
        let Outcome::NotMeasured(reason) = &r.outcome else {
            panic!("{r:?} should be not measured")
        };
        // A pipe or newline in the reason must not break the Markdown table.
        assert_eq!(reason, "rsync is not installed / really second line");
    }
    let out = t.render();
    assert!(out.contains("| rsync row | not measured: rsync is not installed / really second line | ≥ 2.5× |  |  |"));
    assert!(out.contains("| disk row | not measured: "));
    assert!(!out.contains("second line\n|"), "no raw newline inside a row");
}
