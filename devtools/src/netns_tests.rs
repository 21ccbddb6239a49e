use super::*;

#[test]
fn tc_statistics_are_read_from_its_output() {
    let text = "qdisc tbf 8002: root refcnt 3 rate 20Mbit burst 32Kb lat 50ms \n \
                Sent 31457280 bytes 21000 pkt (dropped 12, overlimits 4321 requeues 0) \n \
                backlog 0b 0p requeues 0\n";
    assert_eq!(
        parse_qdisc_stats(text),
        Some(QdiscStats {
            sent_bytes: 31_457_280,
            sent_packets: 21_000,
            dropped: 12,
            overlimits: 4321,
        })
    );
    assert_eq!(parse_qdisc_stats("qdisc noqueue 0: root refcnt 2\n"), None);
}

#[test]
fn refusals_of_a_sandbox_are_skips_and_other_failures_are_not() {
    assert!(is_permission_problem(
        "`ip netns add x` failed: mount --make-shared /run/netns failed: Operation not permitted"
    ));
    assert!(is_permission_problem("Error: Specified qdisc kind is unknown."));
    assert!(is_permission_problem("Error: Unknown device type."));
    assert!(!is_permission_problem("Error: argument \"kbit\" is wrong: rate"));
    assert!(!is_permission_problem("Cannot find device \"konvert-c\""));
    assert_eq!(
        Skipped("no CAP_NET_ADMIN".into()).to_string(),
        "skipped: no CAP_NET_ADMIN"
    );
}

/// Runs only where namespaces are allowed (it says so otherwise): the link is made,
/// shaped, reachable only inside its namespaces, and gone after drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_is_made_shaped_and_removed() {
    let link = match ShapedLink::create(LinkSpec::at_rate(8_000_000)).unwrap() {
        Ok(link) => link,
        Err(skip) => {
            eprintln!("SKIPPED: netns needs network namespaces: {}", skip.0);
            return;
        }
    };
    let names = [
        link.namespace(Side::Center).to_owned(),
        link.namespace(Side::Edge).to_owned(),
    ];
    assert_eq!(link.qdisc_stats(Side::Edge).unwrap().sent_bytes, 0);
    // A UDP datagram from the edge namespace reaches a socket in the center namespace.
    let center = std::net::UdpSocket::bind(link.center_addr(0));
    assert!(
        center.is_err(),
        "the center address does not exist outside its namespace"
    );
    let port = link
        .run_in(Side::Center, || async {
            let s = tokio::net::UdpSocket::bind(SocketAddr::from((CENTER_IP, 0)))
                .await
                .unwrap();
            s.local_addr().unwrap().port()
        })
        .await
        .unwrap();
    assert!(port > 0);
    let sent = link
        .run_in(Side::Edge, || async {
            let s = tokio::net::UdpSocket::bind("0.0.0.0:0").await.unwrap();
            s.send_to(&[0u8; 1000], SocketAddr::from((CENTER_IP, 9))).await.unwrap()
        })
        .await
        .unwrap();
    assert_eq!(sent, 1000);
    let stats = link.qdisc_stats(Side::Edge).unwrap();
    assert!(stats.sent_bytes >= 1000, "{stats:?}");
    drop(link);
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for name in names {
        assert!(!list.contains(&name), "{name} removed");
    }
}
