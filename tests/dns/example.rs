//! The example cluster (zones/): the answers the README and the seeds show.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::*;

#[tokio::test]
async fn kubia_srv_lists_every_pod_with_its_address() {
    let server = TestServer::example().await;
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
                "kubia.default.svc.cluster.local. 5 SRV 0 50 80 kubia-0.kubia.default.svc.cluster.local.",
                "kubia.default.svc.cluster.local. 5 SRV 0 50 80 kubia-1.kubia.default.svc.cluster.local.",
            ],
            "{transport:?}"
        );
        assert_eq!(
            additionals(&reply),
            [
                "kubia-0.kubia.default.svc.cluster.local. 5 A 10.42.1.5",
                "kubia-1.kubia.default.svc.cluster.local. 5 A 10.42.1.6",
            ],
            "{transport:?}"
        );
    }
}

#[tokio::test]
async fn statefulset_pod_answers_its_ip() {
    let server = TestServer::example().await;
    let reply = server
        .udp(
            "sts-nginx-0.svc-nginx.prod.svc.cluster.local.",
            RecordType::A,
        )
        .await;
    assert_answer(&reply);
    assert_eq!(
        answers(&reply),
        ["sts-nginx-0.svc-nginx.prod.svc.cluster.local. 5 A 10.42.0.11"]
    );
}

#[tokio::test]
async fn the_not_ready_pod_is_absent_from_every_answer() {
    let server = TestServer::example().await;
    let reply = server
        .udp("web-1.nginx.default.svc.cluster.local.", RecordType::A)
        .await;
    assert_negative(&reply, ResponseCode::NXDomain, "cluster.local.");
    for (name, record_type) in [
        ("nginx.default.svc.cluster.local.", RecordType::A),
        ("nginx.default.svc.cluster.local.", RecordType::SRV),
        (
            "_web._tcp.nginx.default.svc.cluster.local.",
            RecordType::SRV,
        ),
        ("21.3.42.10.in-addr.arpa.", RecordType::PTR),
    ] {
        let reply = server.tcp(name, record_type).await;
        let text = format!("{reply}");
        assert!(
            !text.contains("10.42.3.21") && !text.contains("web-1"),
            "{name} {record_type}: {text}"
        );
    }
    let reply = server
        .udp("nginx.default.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(rdata(&reply), ["10.42.3.20"]);
}
