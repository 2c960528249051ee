//! SRV: `_port._proto` names, the bare-name peer list, weights, de-duplication, additionals.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::manifests::{endpoint_slice, headless_service, pod, service};
use crate::harness::*;

const ZONE: &str = "cluster.local.";

/// A headless Service `name` with one IPv4 slice of `count` ready endpoints `name-<i>` at
/// `10.9.<i / 250>.<i % 250 + 1>`, with the given slice ports.
pub fn big_headless(name: &str, count: usize, ports: &[(&str, u16)]) -> String {
    let hosts: Vec<(String, String)> = (0..count)
        .map(|i| {
            (
                format!("10.9.{}.{}", i / 250, i % 250 + 1),
                format!("{name}-{i}"),
            )
        })
        .collect();
    let endpoints: Vec<(&str, &str, bool)> = hosts
        .iter()
        .map(|(ip, host)| (ip.as_str(), host.as_str(), true))
        .collect();
    [
        headless_service("default", name, name, &[("http", 80, "80")], false),
        endpoint_slice(
            "default",
            &format!("{name}-a"),
            name,
            "IPv4",
            &endpoints,
            ports,
        ),
    ]
    .concat()
}

/// `web.default` with ports http/TCP 80, metrics/TCP 9090 and dns/UDP 53 on web-0 and web-1.
fn named_ports() -> String {
    [
        headless_service("default", "web", "web", &[("http", 80, "80")], false),
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-a\n  namespace: default\n  labels:\n    kubernetes.io/service-name: web\naddressType: IPv4\nendpoints:\n- addresses: [\"10.1.0.1\"]\n  hostname: web-0\n- addresses: [\"10.1.0.2\"]\n  hostname: web-1\nports:\n- name: http\n  port: 80\n  protocol: TCP\n- name: Metrics\n  port: 9090\n  protocol: TCP\n- name: dns\n  port: 53\n  protocol: UDP\n"
            .to_owned(),
    ]
    .concat()
}

#[tokio::test]
async fn each_named_port_has_its_own_srv_name() {
    let server = TestServer::with_manifests(&named_ports(), Default::default()).await;
    for transport in TRANSPORTS {
        for (owner, port) in [
            ("_http._tcp.web.default.svc.cluster.local.", 80),
            ("_metrics._tcp.web.default.svc.cluster.local.", 9090),
            ("_dns._udp.web.default.svc.cluster.local.", 53),
        ] {
            let reply = query(server.addr, owner, RecordType::SRV, transport).await;
            assert_answer(&reply);
            assert_eq!(
                answers(&reply),
                [
                    format!("{owner} 5 SRV 0 50 {port} web-0.web.default.svc.cluster.local."),
                    format!("{owner} 5 SRV 0 50 {port} web-1.web.default.svc.cluster.local."),
                ],
                "{transport:?}"
            );
            assert_eq!(
                additionals(&reply),
                [
                    "web-0.web.default.svc.cluster.local. 5 A 10.1.0.1",
                    "web-1.web.default.svc.cluster.local. 5 A 10.1.0.2",
                ]
            );
        }
        // The port exists, but not with that protocol; and a port that does not exist.
        for owner in [
            "_dns._tcp.web.default.svc.cluster.local.",
            "_http._udp.web.default.svc.cluster.local.",
            "_grpc._tcp.web.default.svc.cluster.local.",
        ] {
            let reply = query(server.addr, owner, RecordType::SRV, transport).await;
            assert_negative(&reply, ResponseCode::NXDomain, ZONE);
        }
        // `_tcp.<svc>` exists above the SRV names.
        let reply = query(
            server.addr,
            "_tcp.web.default.svc.cluster.local.",
            RecordType::SRV,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NoError, ZONE);
    }
}

#[tokio::test]
async fn port_and_protocol_labels_match_case_insensitively() {
    let server = TestServer::with_manifests(&named_ports(), Default::default()).await;
    for transport in TRANSPORTS {
        let reply = query(
            server.addr,
            "_HTTP._TCP.web.default.svc.cluster.local.",
            RecordType::SRV,
            transport,
        )
        .await;
        assert_answer(&reply);
        assert_eq!(
            answers(&reply),
            [
                "_HTTP._TCP.web.default.svc.cluster.local. 5 SRV 0 50 80 web-0.web.default.svc.cluster.local.",
                "_HTTP._TCP.web.default.svc.cluster.local. 5 SRV 0 50 80 web-1.web.default.svc.cluster.local.",
            ],
            "{transport:?}"
        );
        // The slice spells the port `Metrics`; it is found in any case.
        let reply = query(
            server.addr,
            "_mEtRiCs._Tcp.web.default.svc.cluster.local.",
            RecordType::SRV,
            transport,
        )
        .await;
        assert_answer(&reply);
        assert_eq!(
            rdata(&reply),
            [
                "0 50 9090 web-0.web.default.svc.cluster.local.",
                "0 50 9090 web-1.web.default.svc.cluster.local.",
            ]
        );
    }
}

#[tokio::test]
async fn the_bare_name_lists_every_endpoint_and_port_including_unnamed_ones() {
    let yaml = [
        headless_service("default", "mongo", "mongo", &[("", 27017, "27017")], false),
        endpoint_slice(
            "default",
            "mongo-a",
            "mongo",
            "IPv4",
            &[
                ("10.2.0.10", "mongo-0", true),
                ("10.2.0.11", "mongo-1", true),
            ],
            &[("", 27017), ("metrics", 9216)],
        ),
    ]
    .concat();
    let server = TestServer::with_manifests(&yaml, Default::default()).await;
    for transport in TRANSPORTS {
        let reply = query(
            server.addr,
            "mongo.default.svc.cluster.local.",
            RecordType::SRV,
            transport,
        )
        .await;
        assert_answer(&reply);
        // 2 endpoints × 2 ports = 4 records, weight 100/4.
        assert_eq!(
            rdata(&reply),
            [
                "0 25 27017 mongo-0.mongo.default.svc.cluster.local.",
                "0 25 27017 mongo-1.mongo.default.svc.cluster.local.",
                "0 25 9216 mongo-0.mongo.default.svc.cluster.local.",
                "0 25 9216 mongo-1.mongo.default.svc.cluster.local.",
            ],
            "{transport:?}"
        );
        assert_eq!(
            additionals(&reply),
            [
                "mongo-0.mongo.default.svc.cluster.local. 5 A 10.2.0.10",
                "mongo-1.mongo.default.svc.cluster.local. 5 A 10.2.0.11",
            ]
        );
        // The unnamed port has no `_port._proto` name; the named one does.
        let reply = query(
            server.addr,
            "_metrics._tcp.mongo.default.svc.cluster.local.",
            RecordType::SRV,
            transport,
        )
        .await;
        assert_eq!(
            rdata(&reply),
            [
                "0 50 9216 mongo-0.mongo.default.svc.cluster.local.",
                "0 50 9216 mongo-1.mongo.default.svc.cluster.local.",
            ]
        );
    }
}

#[tokio::test]
async fn three_endpoints_weigh_33_each() {
    let server =
        TestServer::with_manifests(&big_headless("web", 3, &[("http", 80)]), Default::default())
            .await;
    for transport in TRANSPORTS {
        for name in [
            "web.default.svc.cluster.local.",
            "_http._tcp.web.default.svc.cluster.local.",
        ] {
            let reply = query(server.addr, name, RecordType::SRV, transport).await;
            assert_answer(&reply);
            assert_eq!(
                answers(&reply),
                [
                    format!("{name} 5 SRV 0 33 80 web-0.web.default.svc.cluster.local."),
                    format!("{name} 5 SRV 0 33 80 web-1.web.default.svc.cluster.local."),
                    format!("{name} 5 SRV 0 33 80 web-2.web.default.svc.cluster.local."),
                ],
                "{transport:?}"
            );
        }
    }
}

#[tokio::test]
async fn one_hundred_and_fifty_endpoints_weigh_1_never_0() {
    let server = TestServer::with_manifests(
        &big_headless("web", 150, &[("http", 80)]),
        Default::default(),
    )
    .await;
    // 150 SRV records do not fit a UDP answer: TCP gets them all.
    for name in [
        "web.default.svc.cluster.local.",
        "_http._tcp.web.default.svc.cluster.local.",
    ] {
        let reply = server.tcp(name, RecordType::SRV).await;
        assert_answer(&reply);
        assert!(!reply.metadata.truncation, "{name}");
        let data = rdata(&reply);
        assert_eq!(data.len(), 150, "{name}");
        assert!(
            data.iter().all(|d| d.starts_with("0 1 80 web-")),
            "{name}: {data:?}"
        );
    }
}

#[tokio::test]
async fn weights_count_candidates_before_de_duplication() {
    // web-1 is in both slices: 4 candidates, 3 records, weight floor(100 / 4) = 25.
    let yaml = [
        headless_service("default", "web", "web", &[("http", 80, "80")], false),
        endpoint_slice(
            "default",
            "web-a",
            "web",
            "IPv4",
            &[("10.1.0.1", "web-0", true), ("10.1.0.2", "web-1", true)],
            &[("http", 80)],
        ),
        endpoint_slice(
            "default",
            "web-b",
            "web",
            "IPv4",
            &[("10.1.0.2", "web-1", true), ("10.1.0.3", "web-2", true)],
            &[("http", 80)],
        ),
    ]
    .concat();
    let server = TestServer::with_manifests(&yaml, Default::default()).await;
    for transport in TRANSPORTS {
        for name in [
            "web.default.svc.cluster.local.",
            "_http._tcp.web.default.svc.cluster.local.",
        ] {
            let reply = query(server.addr, name, RecordType::SRV, transport).await;
            assert_answer(&reply);
            assert_eq!(
                answers(&reply),
                [
                    format!("{name} 5 SRV 0 25 80 web-0.web.default.svc.cluster.local."),
                    format!("{name} 5 SRV 0 25 80 web-1.web.default.svc.cluster.local."),
                    format!("{name} 5 SRV 0 25 80 web-2.web.default.svc.cluster.local."),
                ],
                "{transport:?}"
            );
            assert_eq!(
                additionals(&reply),
                [
                    "web-0.web.default.svc.cluster.local. 5 A 10.1.0.1",
                    "web-1.web.default.svc.cluster.local. 5 A 10.1.0.2",
                    "web-2.web.default.svc.cluster.local. 5 A 10.1.0.3",
                ]
            );
        }
    }
}

#[tokio::test]
async fn the_same_target_on_two_ports_is_two_records() {
    // De-duplication is by (target, port), not by target.
    let yaml = [
        headless_service("default", "web", "web", &[("http", 80, "80")], false),
        endpoint_slice(
            "default",
            "web-a",
            "web",
            "IPv4",
            &[("10.1.0.1", "web-0", true)],
            &[("http", 80), ("alt", 8080)],
        ),
        endpoint_slice(
            "default",
            "web-b",
            "web",
            "IPv4",
            &[("10.1.0.1", "web-0", true)],
            &[("http", 80)],
        ),
    ]
    .concat();
    let server = TestServer::with_manifests(&yaml, Default::default()).await;
    for transport in TRANSPORTS {
        let reply = query(
            server.addr,
            "web.default.svc.cluster.local.",
            RecordType::SRV,
            transport,
        )
        .await;
        assert_answer(&reply);
        // Three candidates (80 and 8080 from web-a, 80 again from web-b): weight 33.
        assert_eq!(
            rdata(&reply),
            [
                "0 33 80 web-0.web.default.svc.cluster.local.",
                "0 33 8080 web-0.web.default.svc.cluster.local.",
            ],
            "{transport:?}"
        );
        assert_eq!(
            additionals(&reply),
            ["web-0.web.default.svc.cluster.local. 5 A 10.1.0.1"]
        );
    }
}

#[tokio::test]
async fn the_additional_section_has_both_families_of_a_dual_stack_pod() {
    let yaml = [
        headless_service("default", "db", "db", &[("pg", 5432, "5432")], false),
        pod(
            "default",
            "db-0",
            "db",
            "db",
            &["10.1.1.1", "fd00:1::1"],
            true,
        ),
    ]
    .concat();
    let server = TestServer::with_manifests(&yaml, Default::default()).await;
    for transport in TRANSPORTS {
        let reply = query(
            server.addr,
            "_pg._tcp.db.default.svc.cluster.local.",
            RecordType::SRV,
            transport,
        )
        .await;
        assert_answer(&reply);
        assert_eq!(
            answers(&reply),
            [
                "_pg._tcp.db.default.svc.cluster.local. 5 SRV 0 100 5432 db-0.db.default.svc.cluster.local."
            ]
        );
        assert_eq!(
            additionals(&reply),
            [
                "db-0.db.default.svc.cluster.local. 5 A 10.1.1.1",
                "db-0.db.default.svc.cluster.local. 5 AAAA fd00:1::1",
            ],
            "{transport:?}"
        );
    }
}

#[tokio::test]
async fn the_additional_section_has_both_families_across_dual_stack_slices() {
    // web-0 is in the IPv4 and the IPv6 slice: one SRV record (same target and port), and the
    // additional section carries both of its addresses.
    let yaml = [
        headless_service("default", "web", "web", &[("http", 80, "80")], false),
        endpoint_slice(
            "default",
            "web-v4",
            "web",
            "IPv4",
            &[("10.1.0.1", "web-0", true)],
            &[("http", 80)],
        ),
        endpoint_slice(
            "default",
            "web-v6",
            "web",
            "IPv6",
            &[("fd00:1::1", "web-0", true)],
            &[("http", 80)],
        ),
    ]
    .concat();
    let server = TestServer::with_manifests(&yaml, Default::default()).await;
    for transport in TRANSPORTS {
        for name in [
            "web.default.svc.cluster.local.",
            "_http._tcp.web.default.svc.cluster.local.",
        ] {
            let reply = query(server.addr, name, RecordType::SRV, transport).await;
            assert_answer(&reply);
            // Two candidates before de-duplication: weight 50.
            assert_eq!(
                answers(&reply),
                [format!(
                    "{name} 5 SRV 0 50 80 web-0.web.default.svc.cluster.local."
                )],
                "{transport:?}"
            );
            assert_eq!(
                additionals(&reply),
                [
                    "web-0.web.default.svc.cluster.local. 5 A 10.1.0.1",
                    "web-0.web.default.svc.cluster.local. 5 AAAA fd00:1::1",
                ],
                "{name} {transport:?}"
            );
        }
    }
}

#[tokio::test]
async fn peers_are_listed_in_ordinal_order() {
    let yaml = [
        headless_service("default", "web", "web", &[("http", 80, "80")], false),
        endpoint_slice(
            "default",
            "web-a",
            "web",
            "IPv4",
            &[
                ("10.1.0.10", "web-10", true),
                ("10.1.0.2", "web-2", true),
                ("10.1.0.1", "web-1", true),
                ("10.1.0.100", "web-0", true),
            ],
            &[("http", 80)],
        ),
    ]
    .concat();
    let server = TestServer::with_manifests(&yaml, Default::default()).await;
    for transport in TRANSPORTS {
        for name in [
            "web.default.svc.cluster.local.",
            "_http._tcp.web.default.svc.cluster.local.",
        ] {
            let reply = query(server.addr, name, RecordType::SRV, transport).await;
            assert_answer(&reply);
            assert_eq!(
                answers(&reply),
                [
                    format!("{name} 5 SRV 0 25 80 web-0.web.default.svc.cluster.local."),
                    format!("{name} 5 SRV 0 25 80 web-1.web.default.svc.cluster.local."),
                    format!("{name} 5 SRV 0 25 80 web-2.web.default.svc.cluster.local."),
                    format!("{name} 5 SRV 0 25 80 web-10.web.default.svc.cluster.local."),
                ],
                "{transport:?}"
            );
        }
        let reply = query(
            server.addr,
            "web.default.svc.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert_eq!(
            answers(&reply),
            [
                "web.default.svc.cluster.local. 5 A 10.1.0.100",
                "web.default.svc.cluster.local. 5 A 10.1.0.1",
                "web.default.svc.cluster.local. 5 A 10.1.0.2",
                "web.default.svc.cluster.local. 5 A 10.1.0.10",
            ]
        );
    }
}

#[tokio::test]
async fn slices_without_ports_have_no_srv_but_still_answer_a() {
    let yaml = [
        headless_service("default", "web", "web", &[("http", 80, "80")], false),
        endpoint_slice(
            "default",
            "web-a",
            "web",
            "IPv4",
            &[("10.1.0.1", "web-0", true)],
            &[],
        ),
    ]
    .concat();
    let server = TestServer::with_manifests(&yaml, Default::default()).await;
    for transport in TRANSPORTS {
        let reply = query(
            server.addr,
            "_http._tcp.web.default.svc.cluster.local.",
            RecordType::SRV,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NXDomain, ZONE);
        let reply = query(
            server.addr,
            "web.default.svc.cluster.local.",
            RecordType::SRV,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NoError, ZONE);
        for name in [
            "web.default.svc.cluster.local.",
            "web-0.web.default.svc.cluster.local.",
        ] {
            let reply = query(server.addr, name, RecordType::A, transport).await;
            assert_answer(&reply);
            assert_eq!(answers(&reply), [format!("{name} 5 A 10.1.0.1")]);
        }
    }
}

#[tokio::test]
async fn a_cluster_ip_named_port_points_at_the_service_with_its_address() {
    let yaml = [
        service(
            "default",
            "api",
            "10.43.0.20",
            "api",
            &[("https", 443, "8443"), ("", 8080, "8080")],
            false,
        ),
        // Dual-stack: both cluster IPs go in the additional section.
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: dual\n  namespace: default\nspec:\n  clusterIP: 10.43.0.21\n  clusterIPs: [10.43.0.21, \"fd00:43::21\"]\n  ports:\n  - name: grpc\n    port: 9000\n    protocol: UDP\n"
            .to_owned(),
    ]
    .concat();
    let server = TestServer::with_manifests(&yaml, Default::default()).await;
    for transport in TRANSPORTS {
        let reply = query(
            server.addr,
            "_https._tcp.api.default.svc.cluster.local.",
            RecordType::SRV,
            transport,
        )
        .await;
        assert_answer(&reply);
        // The service port, not the target port.
        assert_eq!(
            answers(&reply),
            [
                "_https._tcp.api.default.svc.cluster.local. 5 SRV 0 100 443 api.default.svc.cluster.local."
            ],
            "{transport:?}"
        );
        assert_eq!(
            additionals(&reply),
            ["api.default.svc.cluster.local. 5 A 10.43.0.20"]
        );

        let reply = query(
            server.addr,
            "_grpc._udp.dual.default.svc.cluster.local.",
            RecordType::SRV,
            transport,
        )
        .await;
        assert_eq!(
            answers(&reply),
            [
                "_grpc._udp.dual.default.svc.cluster.local. 5 SRV 0 100 9000 dual.default.svc.cluster.local."
            ]
        );
        assert_eq!(
            additionals(&reply),
            [
                "dual.default.svc.cluster.local. 5 A 10.43.0.21",
                "dual.default.svc.cluster.local. 5 AAAA fd00:43::21",
            ]
        );
        // No `_port._proto` name for an unnamed port, nor a wrong protocol.
        for name in [
            "_grpc._tcp.dual.default.svc.cluster.local.",
            "_http._tcp.api.default.svc.cluster.local.",
        ] {
            let reply = query(server.addr, name, RecordType::SRV, transport).await;
            assert_negative(&reply, ResponseCode::NXDomain, ZONE);
        }
    }
}
