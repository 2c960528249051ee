//! `<a-b-c-d>.<ns>.pod.<zone>` under `--pods disabled`, `insecure` and `verified`.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use stsdns::config::PodsMode;

use crate::harness::manifests::pod;
use crate::harness::*;

const ZONE: &str = "cluster.local.";

/// Pods in `default` (one ready, one not, one dual-stack) and one in `prod`.
fn fixture() -> String {
    [
        pod("default", "web-0", "web", "web", &["10.42.1.5"], true),
        pod("default", "web-1", "web", "web", &["10.42.1.6"], false),
        pod(
            "default",
            "db-0",
            "db",
            "db",
            &["10.42.2.7", "2001:db8::7"],
            true,
        ),
        // `fd00::0` is `fd00::`, written so that the unquoted YAML the builder makes stays valid.
        pod("default", "v6-0", "v6", "v6", &["fd00::0"], true),
        pod("prod", "api-0", "api", "api", &["10.42.0.11"], true),
    ]
    .concat()
}

#[tokio::test]
async fn disabled_pod_names_are_nxdomain() {
    let server = TestServer::with_manifests(&fixture(), zone_with_pods(PodsMode::Disabled)).await;
    for transport in TRANSPORTS {
        for name in [
            "10-42-1-5.default.pod.cluster.local.",
            "1-2-3-4.default.pod.cluster.local.",
        ] {
            let reply = query(server.addr, name, RecordType::A, transport).await;
            assert_negative(&reply, ResponseCode::NXDomain, ZONE);
        }
    }
    // The default is disabled.
    let server = TestServer::with_manifests(&fixture(), Default::default()).await;
    let reply = server
        .udp("10-42-1-5.default.pod.cluster.local.", RecordType::A)
        .await;
    assert_negative(&reply, ResponseCode::NXDomain, ZONE);
}

#[tokio::test]
async fn insecure_answers_any_ip_shaped_name_in_a_known_namespace() {
    let server = TestServer::with_manifests(&fixture(), zone_with_pods(PodsMode::Insecure)).await;
    for transport in TRANSPORTS {
        for (name, record_type, expected) in [
            (
                "10-42-1-5.default.pod.cluster.local.",
                RecordType::A,
                "A 10.42.1.5",
            ),
            // No such pod: insecure answers anyway.
            (
                "1-2-3-4.default.pod.cluster.local.",
                RecordType::A,
                "A 1.2.3.4",
            ),
            (
                "1-2-3-4.prod.pod.cluster.local.",
                RecordType::A,
                "A 1.2.3.4",
            ),
            (
                "2001-db8--1.default.pod.cluster.local.",
                RecordType::AAAA,
                "AAAA 2001:db8::1",
            ),
            (
                "fd00--0.default.pod.cluster.local.",
                RecordType::AAAA,
                "AAAA fd00::",
            ),
            // The question's case is echoed.
            (
                "10-42-1-5.DEFAULT.pod.cluster.local.",
                RecordType::A,
                "A 10.42.1.5",
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
        // The other family: NODATA.
        for (name, record_type) in [
            ("10-42-1-5.default.pod.cluster.local.", RecordType::AAAA),
            ("2001-db8--1.default.pod.cluster.local.", RecordType::A),
            ("10-42-1-5.default.pod.cluster.local.", RecordType::TXT),
        ] {
            let reply = query(server.addr, name, record_type, transport).await;
            assert_negative(&reply, ResponseCode::NoError, ZONE);
        }
        for name in [
            // Unknown namespace.
            "1-2-3-4.nosuch.pod.cluster.local.",
            // Not IP-shaped.
            "web-0.default.pod.cluster.local.",
            "10-42-1-300.default.pod.cluster.local.",
            // Extra labels.
            "x.10-42-1-5.default.pod.cluster.local.",
        ] {
            let reply = query(server.addr, name, RecordType::A, transport).await;
            assert_negative(&reply, ResponseCode::NXDomain, ZONE);
        }
        // The namespace node exists.
        let reply = query(
            server.addr,
            "default.pod.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NoError, ZONE);
    }
}

#[tokio::test]
async fn verified_answers_only_ips_of_pods_in_that_namespace() {
    let server = TestServer::with_manifests(&fixture(), zone_with_pods(PodsMode::Verified)).await;
    for transport in TRANSPORTS {
        for (name, record_type, expected) in [
            (
                "10-42-1-5.default.pod.cluster.local.",
                RecordType::A,
                "A 10.42.1.5",
            ),
            // A Pod that is not ready still exists.
            (
                "10-42-1-6.default.pod.cluster.local.",
                RecordType::A,
                "A 10.42.1.6",
            ),
            (
                "10-42-2-7.default.pod.cluster.local.",
                RecordType::A,
                "A 10.42.2.7",
            ),
            (
                "2001-db8--7.default.pod.cluster.local.",
                RecordType::AAAA,
                "AAAA 2001:db8::7",
            ),
            (
                "fd00--0.default.pod.cluster.local.",
                RecordType::AAAA,
                "AAAA fd00::",
            ),
            (
                "10-42-0-11.prod.pod.cluster.local.",
                RecordType::A,
                "A 10.42.0.11",
            ),
            (
                "10-42-0-11.PROD.pod.cluster.local.",
                RecordType::A,
                "A 10.42.0.11",
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
        for name in [
            // No Pod has this IP.
            "1-2-3-4.default.pod.cluster.local.",
            // The Pod lives in another namespace.
            "10-42-0-11.default.pod.cluster.local.",
            "10-42-1-5.prod.pod.cluster.local.",
            "10-42-1-5.nosuch.pod.cluster.local.",
        ] {
            let reply = query(server.addr, name, RecordType::A, transport).await;
            assert_negative(&reply, ResponseCode::NXDomain, ZONE);
        }
        // The other family of a known IP: NODATA.
        let reply = query(
            server.addr,
            "10-42-1-5.default.pod.cluster.local.",
            RecordType::AAAA,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NoError, ZONE);
    }
}
