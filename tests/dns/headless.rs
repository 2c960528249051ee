//! Headless Services: the service name, per-host names, readiness, hostname fallback, families.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::manifests::{endpoint_slice, headless_service, pod};
use crate::harness::*;

const ZONE: &str = "cluster.local.";

/// `web.default`: two IPv4 slices that share web-1 (as during a slice hand-over).
fn two_overlapping_slices() -> String {
    [
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
    .concat()
}

#[tokio::test]
async fn service_name_answers_every_ready_address_across_slices_once() {
    let server = TestServer::with_manifests(&two_overlapping_slices(), Default::default()).await;
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
            [
                "web.default.svc.cluster.local. 5 A 10.1.0.1",
                "web.default.svc.cluster.local. 5 A 10.1.0.2",
                "web.default.svc.cluster.local. 5 A 10.1.0.3",
            ],
            "{transport:?}"
        );
    }
}

#[tokio::test]
async fn each_host_name_answers_its_own_address() {
    let server = TestServer::with_manifests(&two_overlapping_slices(), Default::default()).await;
    for transport in TRANSPORTS {
        for (host, ip) in [
            ("web-0", "10.1.0.1"),
            ("web-1", "10.1.0.2"),
            ("web-2", "10.1.0.3"),
        ] {
            let name = format!("{host}.web.default.svc.cluster.local.");
            let reply = query(server.addr, &name, RecordType::A, transport).await;
            assert_answer(&reply);
            assert_eq!(
                answers(&reply),
                [format!("{name} 5 A {ip}")],
                "{transport:?}"
            );
            // An IPv4-only host has no AAAA: NODATA, not NXDOMAIN.
            let reply = query(server.addr, &name, RecordType::AAAA, transport).await;
            assert_negative(&reply, ResponseCode::NoError, ZONE);
        }
    }
}

#[tokio::test]
async fn a_dual_stack_pod_host_answers_a_and_aaaa() {
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
        for (name, record_type, expected) in [
            (
                "db-0.db.default.svc.cluster.local.",
                RecordType::A,
                "A 10.1.1.1",
            ),
            (
                "db-0.db.default.svc.cluster.local.",
                RecordType::AAAA,
                "AAAA fd00:1::1",
            ),
            ("db.default.svc.cluster.local.", RecordType::A, "A 10.1.1.1"),
            (
                "db.default.svc.cluster.local.",
                RecordType::AAAA,
                "AAAA fd00:1::1",
            ),
        ] {
            let reply = query(server.addr, name, record_type, transport).await;
            assert_answer(&reply);
            assert_eq!(
                answers(&reply),
                [format!("{name} 5 {expected}")],
                "{name} {record_type} {transport:?}"
            );
        }
    }
}

/// `web.default` with web-0 ready and web-9 not ready, in one slice.
fn one_not_ready(publish_not_ready: bool) -> String {
    [
        headless_service(
            "default",
            "web",
            "web",
            &[("http", 80, "80")],
            publish_not_ready,
        ),
        endpoint_slice(
            "default",
            "web-a",
            "web",
            "IPv4",
            &[("10.1.0.1", "web-0", true), ("10.1.0.9", "web-9", false)],
            &[("http", 80)],
        ),
    ]
    .concat()
}

#[tokio::test]
async fn a_not_ready_endpoint_has_no_name_no_srv_and_no_ptr() {
    let server = TestServer::with_manifests(&one_not_ready(false), Default::default()).await;
    for transport in TRANSPORTS {
        let reply = query(
            server.addr,
            "web-9.web.default.svc.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NXDomain, ZONE);

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
            ["web.default.svc.cluster.local. 5 A 10.1.0.1"]
        );

        for name in [
            "web.default.svc.cluster.local.",
            "_http._tcp.web.default.svc.cluster.local.",
        ] {
            let reply = query(server.addr, name, RecordType::SRV, transport).await;
            assert_answer(&reply);
            assert_eq!(
                answers(&reply),
                [format!(
                    "{name} 5 SRV 0 100 80 web-0.web.default.svc.cluster.local."
                )],
                "{transport:?}"
            );
            assert_eq!(
                additionals(&reply),
                ["web-0.web.default.svc.cluster.local. 5 A 10.1.0.1"]
            );
        }

        let reply = query(
            server.addr,
            "9.0.1.10.in-addr.arpa.",
            RecordType::PTR,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NXDomain, "in-addr.arpa.");
    }
}

#[tokio::test]
async fn publish_not_ready_addresses_publishes_not_ready_slice_endpoints() {
    let server = TestServer::with_manifests(&one_not_ready(true), Default::default()).await;
    for transport in TRANSPORTS {
        let reply = query(
            server.addr,
            "web-9.web.default.svc.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert_answer(&reply);
        assert_eq!(
            answers(&reply),
            ["web-9.web.default.svc.cluster.local. 5 A 10.1.0.9"]
        );

        let reply = query(
            server.addr,
            "web.default.svc.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert_eq!(rdata(&reply), ["10.1.0.1", "10.1.0.9"]);

        let reply = query(
            server.addr,
            "_http._tcp.web.default.svc.cluster.local.",
            RecordType::SRV,
            transport,
        )
        .await;
        assert_eq!(
            rdata(&reply),
            [
                "0 50 80 web-0.web.default.svc.cluster.local.",
                "0 50 80 web-9.web.default.svc.cluster.local.",
            ]
        );

        let reply = query(
            server.addr,
            "9.0.1.10.in-addr.arpa.",
            RecordType::PTR,
            transport,
        )
        .await;
        assert_answer(&reply);
        assert_eq!(
            answers(&reply),
            ["9.0.1.10.in-addr.arpa. 5 PTR web-9.web.default.svc.cluster.local."]
        );
    }
}

/// `mongo.default` with no EndpointSlice: endpoints come from the Pods.
fn pods_only(publish_not_ready: bool) -> String {
    [
        headless_service(
            "default",
            "mongo",
            "mongo",
            &[("", 27017, "27017")],
            publish_not_ready,
        ),
        pod("default", "mongo-0", "mongo", "mongo", &["10.2.0.10"], true),
        pod(
            "default",
            "mongo-1",
            "mongo",
            "mongo",
            &["10.2.0.11"],
            false,
        ),
    ]
    .concat()
}

#[tokio::test]
async fn a_not_ready_pod_is_not_published_without_publish_not_ready_addresses() {
    let server = TestServer::with_manifests(&pods_only(false), Default::default()).await;
    for transport in TRANSPORTS {
        let reply = query(
            server.addr,
            "mongo-1.mongo.default.svc.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NXDomain, ZONE);
        let reply = query(
            server.addr,
            "mongo.default.svc.cluster.local.",
            RecordType::SRV,
            transport,
        )
        .await;
        assert_eq!(
            answers(&reply),
            [
                "mongo.default.svc.cluster.local. 5 SRV 0 100 27017 mongo-0.mongo.default.svc.cluster.local."
            ]
        );
        let reply = query(
            server.addr,
            "11.0.2.10.in-addr.arpa.",
            RecordType::PTR,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NXDomain, "in-addr.arpa.");
    }
}

#[tokio::test]
async fn publish_not_ready_addresses_publishes_not_ready_pods() {
    let server = TestServer::with_manifests(&pods_only(true), Default::default()).await;
    for transport in TRANSPORTS {
        let reply = query(
            server.addr,
            "mongo-1.mongo.default.svc.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert_answer(&reply);
        assert_eq!(
            answers(&reply),
            ["mongo-1.mongo.default.svc.cluster.local. 5 A 10.2.0.11"]
        );
        let reply = query(
            server.addr,
            "mongo.default.svc.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert_eq!(rdata(&reply), ["10.2.0.10", "10.2.0.11"]);
        let reply = query(
            server.addr,
            "11.0.2.10.in-addr.arpa.",
            RecordType::PTR,
            transport,
        )
        .await;
        assert_eq!(
            answers(&reply),
            ["11.0.2.10.in-addr.arpa. 5 PTR mongo-1.mongo.default.svc.cluster.local."]
        );
    }
}

#[tokio::test]
async fn endpoints_without_hostname_are_named_by_their_dashed_address() {
    let yaml = [
        headless_service("default", "anon", "anon", &[("http", 80, "80")], false),
        endpoint_slice(
            "default",
            "anon-v4",
            "anon",
            "IPv4",
            &[("10.1.2.3", "", true)],
            &[("http", 80)],
        ),
        endpoint_slice(
            "default",
            "anon-v6",
            "anon",
            "IPv6",
            &[("2001:db8::1", "", true), ("fd00::", "", true)],
            &[("http", 80)],
        ),
    ]
    .concat();
    let server = TestServer::with_manifests(&yaml, Default::default()).await;
    for transport in TRANSPORTS {
        for (name, record_type, expected) in [
            (
                "10-1-2-3.anon.default.svc.cluster.local.",
                RecordType::A,
                "A 10.1.2.3",
            ),
            (
                "2001-db8--1.anon.default.svc.cluster.local.",
                RecordType::AAAA,
                "AAAA 2001:db8::1",
            ),
            (
                "fd00--0.anon.default.svc.cluster.local.",
                RecordType::AAAA,
                "AAAA fd00::",
            ),
        ] {
            let reply = query(server.addr, name, record_type, transport).await;
            assert_answer(&reply);
            assert_eq!(
                answers(&reply),
                [format!("{name} 5 {expected}")],
                "{transport:?}"
            );
        }
        let reply = query(
            server.addr,
            "_http._tcp.anon.default.svc.cluster.local.",
            RecordType::SRV,
            transport,
        )
        .await;
        assert_eq!(
            rdata(&reply),
            [
                "0 33 80 10-1-2-3.anon.default.svc.cluster.local.",
                "0 33 80 2001-db8--1.anon.default.svc.cluster.local.",
                "0 33 80 fd00--0.anon.default.svc.cluster.local.",
            ]
        );
        let reply = query(
            server.addr,
            "3.2.1.10.in-addr.arpa.",
            RecordType::PTR,
            transport,
        )
        .await;
        assert_eq!(
            answers(&reply),
            ["3.2.1.10.in-addr.arpa. 5 PTR 10-1-2-3.anon.default.svc.cluster.local."]
        );
        // The label `fd00::` would become without the appended 0 is not served.
        let reply = query(
            server.addr,
            "fd00-.anon.default.svc.cluster.local.",
            RecordType::AAAA,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NXDomain, ZONE);
    }
}

/// `web.default` across an IPv4 slice (web-0, web-1) and an IPv6 slice (web-0 only).
fn dual_stack() -> String {
    [
        headless_service("default", "web", "web", &[("http", 80, "80")], false),
        endpoint_slice(
            "default",
            "web-v4",
            "web",
            "IPv4",
            &[("10.1.0.1", "web-0", true), ("10.1.0.2", "web-1", true)],
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
    .concat()
}

#[tokio::test]
async fn dual_stack_slices_answer_a_and_aaaa_by_family() {
    let server = TestServer::with_manifests(&dual_stack(), Default::default()).await;
    for transport in TRANSPORTS {
        for (name, record_type, expected) in [
            (
                "web.default.svc.cluster.local.",
                RecordType::A,
                &["A 10.1.0.1", "A 10.1.0.2"][..],
            ),
            (
                "web.default.svc.cluster.local.",
                RecordType::AAAA,
                &["AAAA fd00:1::1"][..],
            ),
            (
                "web-0.web.default.svc.cluster.local.",
                RecordType::A,
                &["A 10.1.0.1"][..],
            ),
            (
                "web-0.web.default.svc.cluster.local.",
                RecordType::AAAA,
                &["AAAA fd00:1::1"][..],
            ),
        ] {
            let reply = query(server.addr, name, record_type, transport).await;
            assert_answer(&reply);
            let expected: Vec<String> = expected.iter().map(|e| format!("{name} 5 {e}")).collect();
            assert_eq!(answers(&reply), expected, "{record_type} {transport:?}");
        }
        // web-1 has no IPv6 address: NODATA for AAAA.
        let reply = query(
            server.addr,
            "web-1.web.default.svc.cluster.local.",
            RecordType::AAAA,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NoError, ZONE);
        let reply = query(
            server.addr,
            &hickory_proto::rr::Name::from("fd00:1::1".parse::<std::net::IpAddr>().unwrap())
                .to_string(),
            RecordType::PTR,
            transport,
        )
        .await;
        assert_answer(&reply);
        assert_eq!(rdata(&reply), ["web-0.web.default.svc.cluster.local."]);
    }
}

#[tokio::test]
async fn an_ipv4_only_headless_service_has_no_aaaa() {
    let server = TestServer::with_manifests(&two_overlapping_slices(), Default::default()).await;
    for transport in TRANSPORTS {
        let reply = query(
            server.addr,
            "web.default.svc.cluster.local.",
            RecordType::AAAA,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NoError, ZONE);
    }
}

#[tokio::test]
async fn a_headless_service_without_a_ready_endpoint_does_not_exist() {
    let yaml = [
        // Only a not-ready endpoint.
        headless_service("default", "sleepy", "sleepy", &[("http", 80, "80")], false),
        endpoint_slice(
            "default",
            "sleepy-a",
            "sleepy",
            "IPv4",
            &[("10.1.5.1", "sleepy-0", false)],
            &[("http", 80)],
        ),
        // No slice and no pod at all.
        headless_service("default", "empty", "nothing", &[("http", 80, "80")], false),
    ]
    .concat();
    let server = TestServer::with_manifests(&yaml, Default::default()).await;
    for transport in TRANSPORTS {
        for service in ["sleepy", "empty"] {
            for (prefix, record_type) in [
                ("", RecordType::A),
                ("", RecordType::AAAA),
                ("", RecordType::SRV),
                ("_http._tcp.", RecordType::SRV),
            ] {
                let name = format!("{prefix}{service}.default.svc.cluster.local.");
                let reply = query(server.addr, &name, record_type, transport).await;
                assert_negative(&reply, ResponseCode::NXDomain, ZONE);
            }
        }
        // The namespace still exists.
        let reply = query(
            server.addr,
            "default.svc.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NoError, ZONE);
    }
}

#[tokio::test]
async fn pod_derived_endpoints_use_the_hostname_only_when_the_subdomain_is_the_service() {
    let yaml = [
        headless_service("default", "web", "web", &[("http", 80, "80")], false),
        pod("default", "web-0", "web", "web", &["10.1.0.5"], true),
        // Selected by `web`, but its subdomain names another Service.
        pod(
            "default",
            "other-0",
            "web",
            "elsewhere",
            &["10.1.0.6"],
            true,
        ),
    ]
    .concat();
    let server = TestServer::with_manifests(&yaml, Default::default()).await;
    for transport in TRANSPORTS {
        let reply = query(
            server.addr,
            "web-0.web.default.svc.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert_answer(&reply);
        assert_eq!(
            answers(&reply),
            ["web-0.web.default.svc.cluster.local. 5 A 10.1.0.5"]
        );

        let reply = query(
            server.addr,
            "10-1-0-6.web.default.svc.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert_answer(&reply);
        assert_eq!(
            answers(&reply),
            ["10-1-0-6.web.default.svc.cluster.local. 5 A 10.1.0.6"]
        );

        for name in [
            "other-0.web.default.svc.cluster.local.",
            // web-0 uses its hostname, so it has no dashed name.
            "10-1-0-5.web.default.svc.cluster.local.",
        ] {
            let reply = query(server.addr, name, RecordType::A, transport).await;
            assert_negative(&reply, ResponseCode::NXDomain, ZONE);
        }

        let reply = query(
            server.addr,
            "web.default.svc.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert_eq!(rdata(&reply), ["10.1.0.5", "10.1.0.6"]);
    }
}

#[tokio::test]
async fn a_named_target_port_resolves_to_the_container_port() {
    // Service port 8888 → targetPort `web`, which the pod builder declares as containerPort 80.
    let yaml = [
        headless_service("default", "nginx", "nginx", &[("http", 8888, "web")], false),
        pod("default", "web-0", "nginx", "nginx", &["10.1.3.20"], true),
        // A pod without a container port named `metrics`.
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: stats\n  namespace: default\nspec:\n  clusterIP: None\n  selector:\n    app: nginx\n  ports:\n  - name: metrics\n    port: 9999\n    targetPort: metrics\n"
            .to_owned(),
    ]
    .concat();
    let server = TestServer::with_manifests(&yaml, Default::default()).await;
    for transport in TRANSPORTS {
        let reply = query(
            server.addr,
            "_http._tcp.nginx.default.svc.cluster.local.",
            RecordType::SRV,
            transport,
        )
        .await;
        assert_answer(&reply);
        assert_eq!(
            answers(&reply),
            [
                "_http._tcp.nginx.default.svc.cluster.local. 5 SRV 0 100 80 web-0.nginx.default.svc.cluster.local."
            ]
        );
        // The named port the pod does not have: no SRV, but the pod's address still answers.
        let reply = query(
            server.addr,
            "_metrics._tcp.stats.default.svc.cluster.local.",
            RecordType::SRV,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NXDomain, ZONE);
        let reply = query(
            server.addr,
            "stats.default.svc.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert_eq!(
            answers(&reply),
            ["stats.default.svc.cluster.local. 5 A 10.1.3.20"]
        );
    }
}

#[tokio::test]
async fn an_endpoint_without_a_ready_condition_counts_as_ready() {
    let yaml = [
        headless_service("default", "web", "web", &[("http", 80, "80")], false),
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-a\n  namespace: default\n  labels:\n    kubernetes.io/service-name: web\naddressType: IPv4\nendpoints:\n- addresses: [\"10.1.0.1\"]\n  hostname: web-0\n- addresses: [\"10.1.0.2\"]\n  hostname: web-1\n  conditions: {}\n- addresses: [\"10.1.0.3\"]\n  hostname: web-2\n  conditions:\n    serving: true\n- addresses: [\"10.1.0.4\"]\n  hostname: web-3\n  conditions:\n    ready: false\n    serving: true\nports:\n- name: http\n  port: 80\n"
            .to_owned(),
    ]
    .concat();
    let server = TestServer::with_manifests(&yaml, Default::default()).await;
    for transport in TRANSPORTS {
        let reply = query(
            server.addr,
            "web.default.svc.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert_answer(&reply);
        assert_eq!(rdata(&reply), ["10.1.0.1", "10.1.0.2", "10.1.0.3"]);
        for host in ["web-0", "web-1", "web-2"] {
            let name = format!("{host}.web.default.svc.cluster.local.");
            let reply = query(server.addr, &name, RecordType::A, transport).await;
            assert_answer(&reply);
        }
        // `serving` does not make an endpoint ready.
        let reply = query(
            server.addr,
            "web-3.web.default.svc.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NXDomain, ZONE);
    }
}

#[tokio::test]
async fn a_terminating_pod_is_not_published_unless_not_ready_addresses_are() {
    let terminating = "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web-1\n  namespace: default\n  deletionTimestamp: \"2024-01-01T00:00:00Z\"\n  labels:\n    app: web\nspec:\n  hostname: web-1\n  subdomain: web\n  containers:\n  - name: main\n    image: nginx\nstatus:\n  phase: Running\n  podIP: 10.1.0.2\n  conditions:\n  - type: Ready\n    status: \"True\"\n";
    for (publish_not_ready, expected) in [
        (false, &["10.1.0.1"][..]),
        (true, &["10.1.0.1", "10.1.0.2"][..]),
    ] {
        let yaml = [
            headless_service(
                "default",
                "web",
                "web",
                &[("http", 80, "80")],
                publish_not_ready,
            ),
            pod("default", "web-0", "web", "web", &["10.1.0.1"], true),
            terminating.to_owned(),
        ]
        .concat();
        let server = TestServer::with_manifests(&yaml, Default::default()).await;
        for transport in TRANSPORTS {
            let reply = query(
                server.addr,
                "web.default.svc.cluster.local.",
                RecordType::A,
                transport,
            )
            .await;
            assert_answer(&reply);
            assert_eq!(rdata(&reply), expected, "{publish_not_ready} {transport:?}");
        }
    }
}

#[tokio::test]
async fn endpoint_slices_win_over_pods_when_both_are_present() {
    let yaml = [
        headless_service("default", "web", "web", &[("http", 80, "80")], false),
        pod("default", "web-0", "web", "web", &["10.1.9.1"], true),
        pod("default", "web-1", "web", "web", &["10.1.9.2"], true),
        endpoint_slice(
            "default",
            "web-a",
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
            RecordType::A,
            transport,
        )
        .await;
        assert_eq!(
            answers(&reply),
            ["web.default.svc.cluster.local. 5 A 10.1.0.1"]
        );
        let reply = query(
            server.addr,
            "web-1.web.default.svc.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NXDomain, ZONE);
    }
}
