//! The zone itself and every answer that is not a record: NXDOMAIN, NODATA, REFUSED, SERVFAIL,
//! BADVERS; the apex, TTLs, several zones, letter case.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};
use stsdns::config::ZoneConfig;

use crate::harness::*;

const ZONE: &str = "cluster.local.";

/// The serial the server currently publishes.
fn serial(server: &TestServer) -> u32 {
    server.reader.load().expect("published").serial
}

/// The SOA of `zone` as a `show` line, for a server with negative TTL `negative_ttl`.
fn soa_line(zone: &str, ttl: u32, serial: u32, negative_ttl: u32) -> String {
    format!(
        "{zone} {ttl} SOA ns.dns.{zone} hostmaster.{zone} {serial} 7200 1800 86400 {negative_ttl}"
    )
}

/// The example cluster of `zones/`, to serve under other settings.
fn example_state() -> stsdns::model::ClusterState {
    stsdns::app::load(&[stsdns::config::FeedSource::Embedded])
        .expect("the example loads")
        .state
}

fn zones(names: &[&str]) -> Vec<Name> {
    names
        .iter()
        .map(|n| Name::from_ascii(n).expect("valid zone"))
        .collect()
}

#[tokio::test]
async fn nxdomain_and_nodata_carry_exactly_one_soa_and_aa() {
    let server = TestServer::example().await;
    let soa = soa_line(ZONE, 5, serial(&server), 5);
    for transport in TRANSPORTS {
        for (name, record_type, code) in [
            (
                "nope.default.svc.cluster.local.",
                RecordType::A,
                ResponseCode::NXDomain,
            ),
            (
                "kubia.default.svc.cluster.local.",
                RecordType::TXT,
                ResponseCode::NoError,
            ),
            (
                "kubia-0.kubia.default.svc.cluster.local.",
                RecordType::AAAA,
                ResponseCode::NoError,
            ),
        ] {
            let reply = query(server.addr, name, record_type, transport).await;
            assert_negative(&reply, code, ZONE);
            assert_eq!(
                reply.authorities.iter().map(show).collect::<Vec<_>>(),
                std::slice::from_ref(&soa),
                "{name} {record_type} {transport:?}"
            );
            assert!(additionals(&reply).is_empty(), "{reply}");
        }
    }
}

#[tokio::test]
async fn empty_non_terminals_answer_nodata() {
    let server = TestServer::example().await;
    for transport in TRANSPORTS {
        for name in [
            "svc.cluster.local.",
            "default.svc.cluster.local.",
            "prod.svc.cluster.local.",
            "kube-system.svc.cluster.local.",
            "pod.cluster.local.",
        ] {
            for record_type in [RecordType::A, RecordType::SRV, RecordType::TXT] {
                let reply = query(server.addr, name, record_type, transport).await;
                assert_negative(&reply, ResponseCode::NoError, ZONE);
            }
        }
    }
}

#[tokio::test]
async fn names_outside_the_grammar_are_nxdomain() {
    let server = TestServer::example().await;
    for transport in TRANSPORTS {
        for name in [
            // Unknown namespace.
            "nosuch.svc.cluster.local.",
            "kubia.nosuch.svc.cluster.local.",
            "kubia-0.kubia.nosuch.svc.cluster.local.",
            // A label other than svc or pod.
            "foo.cluster.local.",
            "default.foo.cluster.local.",
            "kubia.default.foo.cluster.local.",
            // Extra labels in front of a host name, a service or an SRV name.
            "x.kubia-0.kubia.default.svc.cluster.local.",
            "a.b.kubia-0.kubia.default.svc.cluster.local.",
            "x._http._tcp.kubia.default.svc.cluster.local.",
            "x.y.svc-nginx-public.prod.svc.cluster.local.",
            // A service in the wrong namespace.
            "kubia.prod.svc.cluster.local.",
        ] {
            let reply = query(server.addr, name, RecordType::A, transport).await;
            assert_negative(&reply, ResponseCode::NXDomain, ZONE);
        }
    }
}

#[tokio::test]
async fn names_outside_every_zone_are_refused_without_aa() {
    let server = TestServer::example().await;
    for transport in TRANSPORTS {
        for name in [
            "example.com.",
            "local.",
            "cluster.local.example.com.",
            "arpa.",
        ] {
            let (reply, _) = exchange(
                server.addr,
                &query_message(name, RecordType::A, Some(1232)),
                transport,
            )
            .await;
            assert_eq!(
                reply.metadata.response_code,
                ResponseCode::Refused,
                "{name}: {reply}"
            );
            assert!(!reply.metadata.authoritative, "{name}: {reply}");
            assert!(reply.answers.is_empty(), "{reply}");
            assert!(reply.authorities.is_empty(), "{reply}");
        }
    }
}

#[tokio::test]
async fn queries_get_servfail_until_the_first_state_is_published() {
    let server = TestServer::start_empty(ZoneConfig::default()).await;
    for transport in TRANSPORTS {
        for name in [
            "web.default.svc.cluster.local.",
            "nope.default.svc.cluster.local.",
            "cluster.local.",
            "1.0.42.10.in-addr.arpa.",
        ] {
            let (reply, _) = exchange(
                server.addr,
                &query_message(name, RecordType::A, Some(1232)),
                transport,
            )
            .await;
            assert_eq!(
                reply.metadata.response_code,
                ResponseCode::ServFail,
                "{name}: {reply}"
            );
            assert!(reply.answers.is_empty(), "{reply}");
        }
        // Outside the zones it is REFUSED even now.
        let (reply, _) = exchange(
            server.addr,
            &query_message("example.com.", RecordType::A, None),
            transport,
        )
        .await;
        assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    }

    let yaml = [
        manifests::headless_service("default", "web", "web", &[("http", 80, "80")], false),
        manifests::endpoint_slice(
            "default",
            "web-a",
            "web",
            "IPv4",
            &[("10.42.0.1", "web-0", true)],
            &[("http", 80)],
        ),
    ]
    .concat();
    server.publish(&state_from_yaml(&yaml));
    for transport in TRANSPORTS {
        let reply = query(
            server.addr,
            "web.default.svc.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert_answer(&reply);
        assert_eq!(
            answers(&reply),
            ["web.default.svc.cluster.local. 5 A 10.42.0.1"]
        );
        let reply = query(
            server.addr,
            "nope.default.svc.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NXDomain, ZONE);
    }
}

#[tokio::test]
async fn the_apex_answers_soa_and_ns() {
    let server = TestServer::example().await;
    let serial = serial(&server);
    for transport in TRANSPORTS {
        let reply = query(server.addr, ZONE, RecordType::SOA, transport).await;
        assert_answer(&reply);
        assert_eq!(answers(&reply), [soa_line(ZONE, 5, serial, 5)]);
        assert!(reply.authorities.is_empty(), "{reply}");

        let reply = query(server.addr, ZONE, RecordType::NS, transport).await;
        assert_answer(&reply);
        assert_eq!(
            answers(&reply),
            ["cluster.local. 5 NS ns.dns.cluster.local."]
        );
        // The apex has no address.
        let reply = query(server.addr, ZONE, RecordType::A, transport).await;
        assert_negative(&reply, ResponseCode::NoError, ZONE);
    }
}

#[tokio::test]
async fn the_serial_increases_with_every_publish() {
    let server = TestServer::example().await;
    let state = example_state();
    let mut previous = serial(&server);
    for _ in 0..3 {
        let published = server.publish(&state);
        assert!(published > previous, "{published} after {previous}");
        let reply = server.udp(ZONE, RecordType::SOA).await;
        assert_eq!(answers(&reply), [soa_line(ZONE, 5, published, 5)]);
        previous = published;
    }
}

#[tokio::test]
async fn dns_version_is_1_1_0_with_ttl_28800() {
    // The TTL of dns-version does not follow --ttl.
    let zone = ZoneConfig {
        ttl: 30,
        ..ZoneConfig::default()
    };
    let server = TestServer::with_state(&example_state(), zone).await;
    for transport in TRANSPORTS {
        let reply = query(
            server.addr,
            "dns-version.cluster.local.",
            RecordType::TXT,
            transport,
        )
        .await;
        assert_answer(&reply);
        assert_eq!(reply.answers.len(), 1, "{reply}");
        let record = &reply.answers[0];
        assert_eq!(record.name.to_string(), "dns-version.cluster.local.");
        assert_eq!(record.ttl, 28800);
        let RData::TXT(txt) = &record.data else {
            panic!("not a TXT: {record}");
        };
        let strings: Vec<&[u8]> = txt.txt_data.iter().map(|s| &s[..]).collect();
        assert_eq!(strings, [b"1.1.0"]);
    }
}

#[tokio::test]
async fn ttl_and_negative_ttl_are_honoured_including_zero() {
    for (ttl, negative_ttl) in [(0, 0), (0, 30), (60, 17)] {
        let zone = ZoneConfig {
            ttl,
            negative_ttl,
            ..ZoneConfig::default()
        };
        let server = TestServer::with_state(&example_state(), zone).await;
        let serial = serial(&server);
        for transport in TRANSPORTS {
            let reply = query(
                server.addr,
                "kubia.default.svc.cluster.local.",
                RecordType::SRV,
                transport,
            )
            .await;
            assert_answer(&reply);
            assert_eq!(
                answers(&reply),
                [
                    format!(
                        "kubia.default.svc.cluster.local. {ttl} SRV 0 50 80 kubia-0.kubia.default.svc.cluster.local."
                    ),
                    format!(
                        "kubia.default.svc.cluster.local. {ttl} SRV 0 50 80 kubia-1.kubia.default.svc.cluster.local."
                    ),
                ]
            );
            assert_eq!(
                additionals(&reply),
                [
                    format!("kubia-0.kubia.default.svc.cluster.local. {ttl} A 10.42.1.5"),
                    format!("kubia-1.kubia.default.svc.cluster.local. {ttl} A 10.42.1.6"),
                ]
            );
            let reply = query(
                server.addr,
                "34.12.43.10.in-addr.arpa.",
                RecordType::PTR,
                transport,
            )
            .await;
            assert_eq!(
                answers(&reply),
                [format!(
                    "34.12.43.10.in-addr.arpa. {ttl} PTR svc-nginx-public.prod.svc.cluster.local."
                )]
            );

            let reply = query(server.addr, ZONE, RecordType::SOA, transport).await;
            assert_eq!(answers(&reply), [soa_line(ZONE, ttl, serial, negative_ttl)]);

            // Negative answers: the SOA's TTL and its minimum are the negative TTL.
            for (name, code) in [
                ("nope.default.svc.cluster.local.", ResponseCode::NXDomain),
                ("kubia.default.svc.cluster.local.", ResponseCode::NoError),
            ] {
                let reply = query(server.addr, name, RecordType::TXT, transport).await;
                assert_negative(&reply, code, ZONE);
                assert_eq!(
                    reply.authorities.iter().map(show).collect::<Vec<_>>(),
                    [soa_line(ZONE, negative_ttl, serial, negative_ttl)],
                    "ttl {ttl} negative {negative_ttl} {transport:?}"
                );
            }
            let reply = query(
                server.addr,
                "99.99.99.10.in-addr.arpa.",
                RecordType::PTR,
                transport,
            )
            .await;
            assert_negative(&reply, ResponseCode::NXDomain, "in-addr.arpa.");
            assert_eq!(reply.authorities[0].ttl, negative_ttl);
        }
    }
}

#[tokio::test]
async fn every_zone_answers_the_same_names() {
    let zone = ZoneConfig {
        zones: zones(&["cluster.local.", "corp.example."]),
        ..ZoneConfig::default()
    };
    let server = TestServer::with_state(&example_state(), zone).await;
    let serial = serial(&server);
    for transport in TRANSPORTS {
        for zone in ["cluster.local.", "corp.example."] {
            let name = format!("kubia.default.svc.{zone}");
            let reply = query(server.addr, &name, RecordType::SRV, transport).await;
            assert_answer(&reply);
            assert_eq!(
                answers(&reply),
                [
                    format!("{name} 5 SRV 0 50 80 kubia-0.kubia.default.svc.{zone}"),
                    format!("{name} 5 SRV 0 50 80 kubia-1.kubia.default.svc.{zone}"),
                ],
                "{transport:?}"
            );
            assert_eq!(
                additionals(&reply),
                [
                    format!("kubia-0.kubia.default.svc.{zone} 5 A 10.42.1.5"),
                    format!("kubia-1.kubia.default.svc.{zone} 5 A 10.42.1.6"),
                ]
            );
            let name = format!("svc-nginx-public.prod.svc.{zone}");
            let reply = query(server.addr, &name, RecordType::A, transport).await;
            assert_eq!(answers(&reply), [format!("{name} 5 A 10.43.12.34")]);

            let reply = query(server.addr, zone, RecordType::SOA, transport).await;
            assert_eq!(answers(&reply), [soa_line(zone, 5, serial, 5)]);
            let reply = query(server.addr, zone, RecordType::NS, transport).await;
            assert_eq!(answers(&reply), [format!("{zone} 5 NS ns.dns.{zone}")]);

            // A reverse name points into the first zone only.
            let reply = query(
                server.addr,
                "5.1.42.10.in-addr.arpa.",
                RecordType::PTR,
                transport,
            )
            .await;
            assert_eq!(
                answers(&reply),
                ["5.1.42.10.in-addr.arpa. 5 PTR kubia-0.kubia.default.svc.cluster.local."]
            );

            // Negative answers carry the SOA of the zone they are in.
            let reply = query(
                server.addr,
                &format!("nope.default.svc.{zone}"),
                RecordType::A,
                transport,
            )
            .await;
            assert_negative(&reply, ResponseCode::NXDomain, zone);
            let reply = query(
                server.addr,
                &format!("default.svc.{zone}"),
                RecordType::A,
                transport,
            )
            .await;
            assert_negative(&reply, ResponseCode::NoError, zone);
        }
    }
}

#[tokio::test]
async fn the_answer_echoes_the_question_letter_case() {
    let server = TestServer::example().await;
    for transport in TRANSPORTS {
        let name = "KuBiA.Default.SVC.cluster.local.";
        let reply = query(server.addr, name, RecordType::A, transport).await;
        assert_answer(&reply);
        assert_eq!(reply.queries[0].name().to_string(), name);
        assert_eq!(
            answers(&reply),
            [
                format!("{name} 5 A 10.42.1.5"),
                format!("{name} 5 A 10.42.1.6"),
            ],
            "{transport:?}"
        );
        // Exact bytes, not just a case-insensitive match.
        assert_eq!(reply.answers[0].name.to_ascii(), name);

        let reply = query(server.addr, name, RecordType::SRV, transport).await;
        assert_eq!(
            answers(&reply),
            [
                format!("{name} 5 SRV 0 50 80 kubia-0.kubia.default.svc.cluster.local."),
                format!("{name} 5 SRV 0 50 80 kubia-1.kubia.default.svc.cluster.local."),
            ]
        );

        let name = "KUBIA-0.kubia.DEFAULT.svc.CLUSTER.LOCAL.";
        let reply = query(server.addr, name, RecordType::A, transport).await;
        assert_eq!(answers(&reply), [format!("{name} 5 A 10.42.1.5")]);

        let reply = query(
            server.addr,
            "NoPe.Default.SVC.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NXDomain, ZONE);
    }
}

#[tokio::test]
async fn zone_transfers_are_refused() {
    let server = TestServer::example().await;
    for transport in TRANSPORTS {
        for record_type in [RecordType::AXFR, RecordType::IXFR] {
            let (reply, _) = exchange(
                server.addr,
                &query_message(ZONE, record_type, None),
                transport,
            )
            .await;
            assert_eq!(
                reply.metadata.response_code,
                ResponseCode::Refused,
                "{record_type} {transport:?}: {reply}"
            );
            assert!(reply.answers.is_empty(), "{reply}");
        }
    }
}

#[tokio::test]
async fn an_unknown_edns_version_gets_badvers() {
    let server = TestServer::example().await;
    for transport in TRANSPORTS {
        let mut message = query_message(
            "kubia.default.svc.cluster.local.",
            RecordType::A,
            Some(1232),
        );
        message
            .edns
            .as_mut()
            .expect("the query has EDNS")
            .set_version(1);
        let (reply, _) = exchange(server.addr, &message, transport).await;
        // BADVERS shares code 16 with BADSIG; hickory decodes 16 as BADSIG.
        assert_eq!(
            u16::from(reply.metadata.response_code),
            u16::from(ResponseCode::BADVERS),
            "{transport:?}: {reply}"
        );
        assert!(reply.answers.is_empty(), "{reply}");
        let edns = reply.edns.as_ref().expect("BADVERS is carried in OPT");
        assert_eq!(edns.version(), 0, "the version we speak");

        // Version 0 on the same server answers.
        let (reply, _) = exchange(
            server.addr,
            &query_message(
                "kubia.default.svc.cluster.local.",
                RecordType::A,
                Some(1232),
            ),
            transport,
        )
        .await;
        assert_answer(&reply);
        assert_eq!(rdata(&reply), ["10.42.1.5", "10.42.1.6"]);
    }
}

#[tokio::test]
async fn a_namespace_with_only_a_statefulset_exists() {
    let yaml = manifests::statefulset("lonely", "db", "db", "db", 3);
    let server = TestServer::with_manifests(&yaml, ZoneConfig::default()).await;
    for transport in TRANSPORTS {
        let reply = query(
            server.addr,
            "lonely.svc.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NoError, ZONE);
        // Its governing Service is not in the feed.
        let reply = query(
            server.addr,
            "db.lonely.svc.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NXDomain, ZONE);
    }
}
