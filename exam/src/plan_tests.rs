use super::*;

const PLAN: &str = r#"
date = "2026-06-01"
exam = "ege"
region = "76"

[[sites]]
code = "0101"
kind = "exam-site"
time_zone = "Europe/Moscow"

[[sites]]
code = "0202"
kind = "exam-site"
time_zone = "Asia/Yekaterinburg"

[[rooms]]
site = "0101"
code = "0001"

[[rooms]]
site = "0202"
code = "0001"
oral = true

[[participants]]
code = "P1"
site = "0101"
room = "0001"
seat = "1А"
kit = 11

[[participants]]
code = "P2"
site = "0101"
room = "0001"
seat = "1Б"
kit = 12
consent = false

[[participants]]
code = "P3"
site = "0202"
room = "0001"
seat = "1А"
kit = 13

[[members]]
token_id = "m-0101-1"
site = "0101"
"#;

#[test]
fn reads_a_plan_and_drops_rows_without_consent() {
    let (plan, reading) = DayPlan::from_toml(PLAN).unwrap();
    assert_eq!(reading.without_consent, 1);
    assert_eq!(plan.participants.len(), 2);
    assert!(plan.participants.iter().all(|p| p.code != "P2"));
    // Nothing of the dropped row survives a round trip.
    let text = plan.to_toml().unwrap();
    assert!(!text.contains("P2") && !text.contains("consent = false"));
    let (again, r) = DayPlan::from_toml(&text).unwrap();
    assert_eq!((again, r.without_consent), (plan, 0));
}

#[test]
fn issues_each_site_its_seating_plan() {
    let (plan, _) = DayPlan::from_toml(PLAN).unwrap();
    let seating = plan.seating(&SiteId::new("0202").unwrap()).unwrap();
    assert_eq!(seating.participants.len(), 1);
    assert_eq!(seating.participants[0].code, "P3");
    assert_eq!(seating.date, plan.date);
    assert!(plan.seating(&SiteId::new("0303").unwrap()).is_err());
    assert!(
        plan.room(&SiteId::new("0202").unwrap(), &RoomId::new("0001").unwrap())
            .unwrap()
            .oral
    );
}

#[test]
fn refuses_plans_that_contradict_themselves() {
    let cases = [
        (PLAN.replace("kit = 13", "kit = 11"), "kit"),
        (PLAN.replace("code = \"P3\"", "code = \"P1\""), "P1"),
        (
            PLAN.replace(
                "room = \"0001\"\nseat = \"1А\"\nkit = 13",
                "room = \"0009\"\nseat = \"1А\"\nkit = 13",
            ),
            "0009",
        ),
        (PLAN.replace("Asia/Yekaterinburg", "Mars/Olympus"), "Mars/Olympus"),
        (PLAN.replace("region = \"76\"", "region = \"7\""), "region"),
        (
            PLAN.replace("m-0101-1\"\nsite = \"0101\"", "m-0101-1\"\nsite = \"0909\""),
            "0909",
        ),
        (
            format!("{PLAN}\n[[sites]]\ncode = \"0101\"\nkind = \"school\"\ntime_zone = \"Europe/Moscow\"\n"),
            "twice",
        ),
        (
            PLAN.replace("seat = \"1Б\"\nkit = 12\nconsent = false", "seat = \"1А\"\nkit = 12"),
            "seat",
        ),
        (PLAN.replace("date = \"2026-06-01\"", "date = \"2026-06-31\""), "line 2"),
        (format!("{PLAN}\nhall = 3\n"), "hall"),
    ];
    for (text, needle) in cases {
        let e = match DayPlan::from_toml(&text) {
            Ok(_) => panic!("{needle}: accepted"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains(needle), "{needle}: {e}");
    }
}
