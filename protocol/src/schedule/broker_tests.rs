use super::*;

const MB: u64 = 1_000_000;
const HOUR: u64 = 3_600_000;
const NOW: u64 = 1_000 * HOUR;

fn status(backlog: u64, link: u64, deadline: u64) -> SiteStatus {
    SiteStatus {
        backlog_bytes: backlog,
        expected_bytes: 0,
        goodput_bytes_per_s: 0,
        link_bytes_per_s: link,
        deadline_unix_ms: deadline,
        eta_unix_ms: 0,
        risk: DeadlineRisk::OnTrack,
        at_unix_ms: NOW,
    }
}

fn broker(capacity: u64) -> Broker {
    Broker::new(BrokerConfig::new(capacity))
}

fn rate(plan: &Plan, site: &str) -> u64 {
    plan.share(site).unwrap().rate_bytes_per_s
}

#[test]
fn least_slack_first_gets_what_it_needs() {
    // 6 MB/s center. East (deadline in 2 h) has 18 GB: 2.5 MB/s at the least. West (4 h) has
    // 18 GB too. Equal split (2 MB/s each) would make east miss; the plan gives each the rate
    // to be through 30 min before its deadline, east first, and water-fills the rest.
    let mut b = broker(6 * MB);
    b.report("west", NOW, &status(18_000 * MB, 100 * MB, NOW + 4 * HOUR));
    b.report("east", NOW, &status(18_000 * MB, 100 * MB, NOW + 2 * HOUR));
    b.report("small", NOW, &status(360 * MB, 100 * MB, NOW + 4 * HOUR));
    let plan = b.plan(NOW);
    assert_eq!(plan.shares[0].site, "east");
    assert!(rate(&plan, "east") >= 18_000 * MB / 5_400);
    assert!(rate(&plan, "west") >= 18_000 * MB / 12_600);
    assert!(rate(&plan, "small") >= 360 * MB / 12_600);
    assert_eq!(plan.total_bytes_per_s(), 6 * MB);
    assert!(plan.shares.iter().all(|s| s.risk == DeadlineRisk::OnTrack));
}

#[test]
fn a_slow_link_is_capped_and_its_leftover_goes_to_the_others() {
    // 12 MB/s center, three sites; one link takes only 1 MB/s.
    let mut b = broker(12 * MB);
    b.report("slow", NOW, &status(1_000 * MB, MB, NOW + 2 * HOUR));
    b.report("a", NOW, &status(1_000 * MB, 50 * MB, NOW + 5 * HOUR));
    b.report("b", NOW, &status(1_000 * MB, 50 * MB, NOW + 5 * HOUR));
    let plan = b.plan(NOW);
    assert_eq!(rate(&plan, "slow"), MB);
    assert_eq!(rate(&plan, "a") + rate(&plan, "b"), 11 * MB);
    assert!(rate(&plan, "a").abs_diff(rate(&plan, "b")) <= 1);
}

#[test]
fn measured_goodput_below_the_share_lowers_the_link_estimate() {
    let mut b = broker(12 * MB);
    b.report("a", NOW, &status(10_000 * MB, 0, NOW + 5 * HOUR));
    b.report("b", NOW, &status(10_000 * MB, 0, NOW + 5 * HOUR));
    let plan = b.plan(NOW);
    assert_eq!(rate(&plan, "a"), 6 * MB);
    // "a" only manages 2 MB/s of its 6: its estimate becomes 2.5 MB/s, "b" gets the rest.
    let mut st = status(10_000 * MB, 0, NOW + 5 * HOUR);
    st.goodput_bytes_per_s = 2 * MB;
    b.report("a", NOW + 10_000, &st);
    b.received("a", NOW + 10_000, 20 * MB);
    b.received("b", NOW + 10_000, 60 * MB);
    let plan = b.plan(NOW + 10_000);
    assert_eq!(rate(&plan, "a"), 2_500_000);
    assert_eq!(rate(&plan, "b"), 9_500_000);
}

#[test]
fn a_stalled_site_keeps_only_a_probe_until_bytes_arrive_again() {
    let mut b = broker(10 * MB);
    b.report("stuck", NOW, &status(5_000 * MB, 100 * MB, NOW + 2 * HOUR));
    b.report("fine", NOW, &status(50_000 * MB, 100 * MB, NOW + 5 * HOUR));
    let plan = b.plan(NOW);
    assert!(rate(&plan, "stuck") > MB);
    // 40 s: "fine" delivers, "stuck" delivers nothing.
    for t in (10_000..=40_000).step_by(10_000) {
        b.received("fine", NOW + t, 10 * MB);
    }
    let plan = b.plan(NOW + 40_000);
    let stuck = plan.share("stuck").unwrap();
    assert!(stuck.stalled);
    assert_eq!(stuck.rate_bytes_per_s, b.config().probe_bytes_per_s);
    assert_eq!(rate(&plan, "fine"), 10 * MB - b.config().probe_bytes_per_s);
    // Its bytes flow again: back to a full share at the next plan.
    b.received("stuck", NOW + 50_000, 100_000);
    let plan = b.plan(NOW + 50_000);
    assert!(!plan.share("stuck").unwrap().stalled);
    assert!(rate(&plan, "stuck") > MB);
}

#[test]
fn sites_that_finish_or_disconnect_free_their_share() {
    let mut b = broker(9 * MB);
    for s in ["a", "b", "c"] {
        b.report(s, NOW, &status(1_000 * MB, 100 * MB, NOW + 5 * HOUR));
    }
    assert_eq!(rate(&b.plan(NOW), "a"), 3 * MB);
    b.report("b", NOW + 1000, &status(0, 100 * MB, 0));
    b.disconnect("c", NOW + 1000);
    let plan = b.plan(NOW + 1000);
    assert_eq!(rate(&plan, "a"), 9 * MB);
    assert_eq!(rate(&plan, "b"), 0);
    assert!(plan.share("c").is_none());
    // c comes back with its backlog: it is planned again.
    b.connect("c", NOW + 2000);
    b.report("c", NOW + 2000, &status(1_000 * MB, 100 * MB, NOW + 5 * HOUR));
    let plan = b.plan(NOW + 2000);
    assert_eq!(rate(&plan, "a") + rate(&plan, "c"), 9 * MB);
}

#[test]
fn a_site_that_cannot_make_it_even_with_everything_is_flagged() {
    let mut b = broker(10 * MB);
    // 2 MB/s link, 10 GB, 1 hour: 7.2 GB at most.
    b.report("doomed", NOW, &status(10_000 * MB, 2 * MB, NOW + HOUR));
    b.report("ok", NOW, &status(1_000 * MB, 100 * MB, NOW + HOUR));
    let plan = b.plan(NOW);
    assert_eq!(plan.will_miss().collect::<Vec<_>>(), ["doomed"]);
    assert_eq!(plan.share("doomed").unwrap().rate_bytes_per_s, 2 * MB);
    assert_eq!(plan.share("ok").unwrap().risk, DeadlineRisk::OnTrack);
}

#[test]
fn shares_never_exceed_the_capacity() {
    // A deterministic sweep of many sites, links, backlogs and deadlines, some stalled.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..200u64 {
        let capacity = 1 + next() % (20 * MB);
        let mut b = broker(capacity);
        let n = 1 + next() % 40;
        for i in 0..n {
            let st = status(next() % (5_000 * MB), next() % (20 * MB), NOW + next() % (10 * HOUR));
            b.report(&format!("s{i}"), NOW, &st);
        }
        b.plan(NOW);
        for i in (0..n).step_by(3) {
            b.received(&format!("s{i}"), NOW + 60_000, next() % MB);
        }
        let plan = b.plan(NOW + 60_000);
        assert!(plan.total_bytes_per_s() <= capacity, "round {round}");
        // No capacity idle while a site that is not stalled has backlog.
        if plan.shares.iter().any(|s| !s.stalled && s.needed_bytes_per_s > 0) {
            assert_eq!(plan.total_bytes_per_s(), capacity, "round {round}");
        }
    }
}

#[test]
fn share_message_carries_rate_validity_and_risk() {
    let mut b = broker(10 * MB);
    b.report("a", NOW, &status(100 * MB, 100 * MB, NOW + HOUR));
    let plan = b.plan(NOW);
    let msg = plan.share("a").unwrap().message(NOW, b.config().share_valid_ms);
    assert_eq!(msg.rate_bytes_per_s, 10 * MB);
    assert_eq!(msg.valid_until_unix_ms, NOW + 30_000);
    assert_eq!(msg.risk, DeadlineRisk::OnTrack);
}

#[test]
fn expected_bytes_raise_the_need_but_only_queued_bytes_get_a_share() {
    // Both have 1 GB queued and 3 hours; "heavy" still expects 9 GB more today.
    let mut b = broker(4 * MB);
    let mut heavy = status(1_000 * MB, 100 * MB, NOW + 3 * HOUR);
    heavy.expected_bytes = 9_000 * MB;
    b.report("heavy", NOW, &heavy);
    b.report("light", NOW, &status(1_000 * MB, 100 * MB, NOW + 3 * HOUR));
    let mut later = status(0, 100 * MB, 0);
    later.expected_bytes = 5_000 * MB;
    b.report("later", NOW, &later);
    let plan = b.plan(NOW);
    assert_eq!(plan.shares[0].site, "heavy");
    // 10 GB by 30 min before the deadline: in 2.5 h.
    assert_eq!(
        plan.share("heavy").unwrap().needed_bytes_per_s,
        (10_000 * MB * 1000).div_ceil(9_000_000)
    );
    assert!(rate(&plan, "heavy") > rate(&plan, "light"));
    assert_eq!(rate(&plan, "later"), 0);
    assert_eq!(plan.total_bytes_per_s(), 4 * MB);
}
