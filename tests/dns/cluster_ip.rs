//! ClusterIP and ExternalName Services, and reverse (PTR) names.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::manifests::{endpoint_slice, headless_service, service};
use crate::harness::*;

const ZONE: &str = "cluster.local.";

/// The reverse name of an address, as resolvers write it.
fn ptr(ip: &str) -> String {
    let ip: std::net::IpAddr = ip.parse().expect("valid address");
    hickory_proto::rr::Name::from(ip).to_string()
}

/// A ClusterIP Service with two families and no endpoint at all, a single-stack one, two
/// ExternalNames (out of zone, in zone) and a headless Service with ready endpoints.
fn fixture() -> String {
    [
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: dual\n  namespace: default\nspec:\n  clusterIP: 10.43.0.21\n  clusterIPs: [10.43.0.21, \"fd00:43::21\"]\n  selector:\n    app: nobody\n  ports:\n  - name: http\n    port: 80\n".to_owned(),
        service("default", "api", "10.43.0.20", "api", &[("http", 80, "8080")], false),
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: db-external\n  namespace: default\nspec:\n  type: ExternalName\n  externalName: db.example.com\n".to_owned(),
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: alias\n  namespace: default\nspec:\n  type: ExternalName\n  externalName: web.default.svc.cluster.local\n".to_owned(),
        headless_service("default", "web", "web", &[("http", 80, "80")], false),
        endpoint_slice(
            "default",
            "web-v4",
            "web",
            "IPv4",
            &[("10.42.0.1", "web-0", true), ("10.42.0.2", "web-1", true), ("10.42.0.3", "web-2", false)],
            &[("http", 80)],
        ),
        endpoint_slice(
            "default",
            "web-v6",
            "web",
            "IPv6",
            &[("fd00:42::1", "web-0", true), ("fd00:42::2", "", true)],
            &[("http", 80)],
        ),
    ]
    .concat()
}

#[tokio::test]
async fn a_dual_stack_cluster_ip_answers_one_address_per_family_without_endpoints() {
    let server = TestServer::with_manifests(&fixture(), Default::default()).await;
    for transport in TRANSPORTS {
        for (name, record_type, expected) in [
            (
                "dual.default.svc.cluster.local.",
                RecordType::A,
                "A 10.43.0.21",
            ),
            (
                "dual.default.svc.cluster.local.",
                RecordType::AAAA,
                "AAAA fd00:43::21",
            ),
            (
                "api.default.svc.cluster.local.",
                RecordType::A,
                "A 10.43.0.20",
            ),
        ] {
            let reply = query(server.addr, name, record_type, transport).await;
            assert_answer(&reply);
            assert_eq!(
                answers(&reply),
                [format!("{name} 5 {expected}")],
                "{record_type} {transport:?}"
            );
        }
        // Single-stack: NODATA for the other family.
        let reply = query(
            server.addr,
            "api.default.svc.cluster.local.",
            RecordType::AAAA,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NoError, ZONE);
        // A ClusterIP Service has no per-host names.
        let reply = query(
            server.addr,
            "x.api.default.svc.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NXDomain, ZONE);
    }
}

#[tokio::test]
async fn an_external_name_out_of_zone_answers_just_the_cname() {
    let server = TestServer::with_manifests(&fixture(), Default::default()).await;
    for transport in TRANSPORTS {
        for record_type in [RecordType::A, RecordType::AAAA, RecordType::CNAME] {
            let reply = query(
                server.addr,
                "db-external.default.svc.cluster.local.",
                record_type,
                transport,
            )
            .await;
            assert_answer(&reply);
            assert_eq!(
                answers(&reply),
                ["db-external.default.svc.cluster.local. 5 CNAME db.example.com."],
                "{record_type} {transport:?}"
            );
            assert!(reply.authorities.is_empty(), "{reply}");
        }
    }
}

#[tokio::test]
async fn an_external_name_in_zone_is_followed_in_the_same_answer() {
    let server = TestServer::with_manifests(&fixture(), Default::default()).await;
    for transport in TRANSPORTS {
        let reply = query(
            server.addr,
            "alias.default.svc.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert_answer(&reply);
        assert_eq!(
            answers(&reply),
            [
                "alias.default.svc.cluster.local. 5 CNAME web.default.svc.cluster.local.",
                "web.default.svc.cluster.local. 5 A 10.42.0.1",
                "web.default.svc.cluster.local. 5 A 10.42.0.2",
            ],
            "{transport:?}"
        );
        // A CNAME question gets the CNAME alone.
        let reply = query(
            server.addr,
            "alias.default.svc.cluster.local.",
            RecordType::CNAME,
            transport,
        )
        .await;
        assert_answer(&reply);
        assert_eq!(
            answers(&reply),
            ["alias.default.svc.cluster.local. 5 CNAME web.default.svc.cluster.local."]
        );
        // The owner of the CNAME echoes the question's case. (The target may share the
        // question's case where it is compressed against it: names compare case-insensitively.)
        let reply = query(
            server.addr,
            "Alias.Default.svc.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert_eq!(
            reply.answers[0].name.to_string(),
            "Alias.Default.svc.cluster.local."
        );
        assert_eq!(
            answers(&reply)[0].to_ascii_lowercase(),
            "alias.default.svc.cluster.local. 5 cname web.default.svc.cluster.local."
        );
    }
}

#[tokio::test]
async fn cluster_ips_have_ptr_records_in_both_families() {
    let server = TestServer::with_manifests(&fixture(), Default::default()).await;
    for transport in TRANSPORTS {
        for (name, target) in [
            (
                "20.0.43.10.in-addr.arpa.".to_owned(),
                "api.default.svc.cluster.local.",
            ),
            (
                "21.0.43.10.in-addr.arpa.".to_owned(),
                "dual.default.svc.cluster.local.",
            ),
            (
                "1.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.4.0.0.0.0.d.f.ip6.arpa."
                    .to_owned(),
                "dual.default.svc.cluster.local.",
            ),
        ] {
            let reply = query(server.addr, &name, RecordType::PTR, transport).await;
            assert_answer(&reply);
            assert_eq!(
                answers(&reply),
                [format!("{name} 5 PTR {target}")],
                "{transport:?}"
            );
        }
    }
}

#[tokio::test]
async fn ready_endpoints_have_ptr_records_in_both_families() {
    let server = TestServer::with_manifests(&fixture(), Default::default()).await;
    for transport in TRANSPORTS {
        for (name, target) in [
            (
                "1.0.42.10.in-addr.arpa.".to_owned(),
                "web-0.web.default.svc.cluster.local.",
            ),
            (
                "2.0.42.10.in-addr.arpa.".to_owned(),
                "web-1.web.default.svc.cluster.local.",
            ),
            (ptr("fd00:42::1"), "web-0.web.default.svc.cluster.local."),
            (
                ptr("fd00:42::2"),
                "fd00-42--2.web.default.svc.cluster.local.",
            ),
        ] {
            let reply = query(server.addr, &name, RecordType::PTR, transport).await;
            assert_answer(&reply);
            assert_eq!(
                answers(&reply),
                [format!("{name} 5 PTR {target}")],
                "{transport:?}"
            );
        }
        // web-2 is not ready.
        let reply = query(
            server.addr,
            "3.0.42.10.in-addr.arpa.",
            RecordType::PTR,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NXDomain, "in-addr.arpa.");
    }
}

#[tokio::test]
async fn an_unknown_address_is_nxdomain_with_the_reverse_zone_soa() {
    let server = TestServer::with_manifests(&fixture(), Default::default()).await;
    for transport in TRANSPORTS {
        let reply = query(
            server.addr,
            "99.0.42.10.in-addr.arpa.",
            RecordType::PTR,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NXDomain, "in-addr.arpa.");
        let reply = query(server.addr, &ptr("fd00:42::99"), RecordType::PTR, transport).await;
        assert_negative(&reply, ResponseCode::NXDomain, "ip6.arpa.");
        let soa = reply.authorities[0].data.to_string();
        assert!(
            soa.starts_with("ns.dns.cluster.local. hostmaster.cluster.local. "),
            "{soa}"
        );
    }
}

#[tokio::test]
async fn an_empty_non_terminal_of_the_reverse_tree_is_nodata() {
    let server = TestServer::with_manifests(&fixture(), Default::default()).await;
    for transport in TRANSPORTS {
        for name in [
            "42.10.in-addr.arpa.",
            "0.42.10.in-addr.arpa.",
            "10.in-addr.arpa.",
        ] {
            let reply = query(server.addr, name, RecordType::PTR, transport).await;
            assert_negative(&reply, ResponseCode::NoError, "in-addr.arpa.");
        }
        let reply = query(server.addr, "d.f.ip6.arpa.", RecordType::PTR, transport).await;
        assert_negative(&reply, ResponseCode::NoError, "ip6.arpa.");
        // A sibling that holds nothing is NXDOMAIN.
        let reply = query(
            server.addr,
            "43.11.in-addr.arpa.",
            RecordType::PTR,
            transport,
        )
        .await;
        assert_negative(&reply, ResponseCode::NXDomain, "in-addr.arpa.");
    }
}

#[tokio::test]
async fn an_in_zone_cname_to_a_missing_name_is_nxdomain_with_the_cname() {
    let yaml = "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: dangling\n  namespace: default\nspec:\n  type: ExternalName\n  externalName: gone.default.svc.cluster.local\n";
    let server = TestServer::with_manifests(yaml, Default::default()).await;
    for transport in TRANSPORTS {
        let reply = query(
            server.addr,
            "dangling.default.svc.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        // RFC 6604: the rcode is that of the last name in the chain.
        assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
        assert!(reply.metadata.authoritative);
        assert_eq!(
            answers(&reply),
            ["dangling.default.svc.cluster.local. 5 CNAME gone.default.svc.cluster.local."]
        );
        assert_eq!(reply.authorities.len(), 1, "{reply}");
        assert_eq!(reply.authorities[0].name.to_string(), ZONE);
    }
}

#[tokio::test]
async fn a_loop_of_external_names_lists_each_cname_once() {
    let yaml = "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: ping\n  namespace: default\nspec:\n  type: ExternalName\n  externalName: pong.default.svc.cluster.local\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: pong\n  namespace: default\nspec:\n  type: ExternalName\n  externalName: ping.default.svc.cluster.local\n";
    let server = TestServer::with_manifests(yaml, Default::default()).await;
    for transport in TRANSPORTS {
        let reply = query(
            server.addr,
            "ping.default.svc.cluster.local.",
            RecordType::A,
            transport,
        )
        .await;
        assert!(reply.metadata.authoritative);
        assert_eq!(
            answers(&reply),
            [
                "ping.default.svc.cluster.local. 5 CNAME pong.default.svc.cluster.local.",
                "pong.default.svc.cluster.local. 5 CNAME ping.default.svc.cluster.local.",
            ],
            "{transport:?}"
        );
    }
}
