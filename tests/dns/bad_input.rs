//! Broken manifests (tests/fixtures/bad/): `check` names the file, the line, the document or the
//! object, and the fix; `serve` still answers for the good objects of the same files.
//!
//! Each fixture holds one mistake, the ones people make with StatefulSets and headless Services
//! (shared/seeds/000_*), next to objects that are fine.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::cli::{Served, run, text};
use crate::harness::*;

/// What `check FEED` printed: exit code, the problem lines, the summary line, the zone text.
struct Checked {
    code: Option<i32>,
    problems: Vec<String>,
    summary: String,
    zone_text: String,
}

fn check(feed: &str) -> Checked {
    let output = run(&["check", feed]);
    let (zone_text, stderr) = text(&output);
    let mut problems: Vec<String> = stderr.lines().map(str::to_owned).collect();
    let summary = problems.pop().unwrap_or_default();
    Checked {
        code: output.status.code(),
        problems,
        summary,
        zone_text,
    }
}

/// Asserts that the zone text holds each record line exactly.
fn assert_records(checked: &Checked, records: &[&str]) {
    for record in records {
        assert!(
            checked.zone_text.lines().any(|l| l == *record),
            "{record} missing from:\n{}",
            checked.zone_text
        );
    }
}

/// Asserts an A answer over UDP and TCP.
async fn assert_a(served: &Served, name: &str, expected: &[&str]) {
    for transport in TRANSPORTS {
        let reply = query(served.addr, name, RecordType::A, transport).await;
        assert_answer(&reply);
        assert_eq!(rdata(&reply), expected, "{name} {transport:?}");
    }
}

async fn assert_nxdomain(served: &Served, name: &str, record_type: RecordType) {
    let reply = query(served.addr, name, record_type, Transport::Udp).await;
    assert_negative(&reply, ResponseCode::NXDomain, "cluster.local.");
}

/// The seed's first mistake: a Service indented wrongly at `selector:`. kubectl says
/// "yaml: line 7: mapping values are not allowed in this context"; we name the line of the
/// offending key and the object the lines above it describe. The documents after it used to be
/// lost with it, since the file was parsed as one stream.
#[tokio::test]
async fn yaml_syntax_error_costs_only_its_document() {
    let checked = check("tests/fixtures/bad/syntax-error.yaml");
    assert_eq!(checked.code, Some(1));
    assert_eq!(
        checked.problems,
        [
            "error: tests/fixtures/bad/syntax-error.yaml:8: document 1: Service prod/svc-nginx: \
             YAML syntax error at column 12: mapping values are not allowed in this context; \
             skipped; fix: correct the YAML at line 8 (most often the indentation: the keys of \
             one mapping start in the same column)"
        ]
    );
    assert_eq!(
        checked.summary,
        "checked 1 file(s): 2 objects, 15 records, 1 error(s), 0 warning(s)"
    );
    assert_records(
        &checked,
        &[
            "svc-nginx-public.prod.svc.cluster.local. 5 IN A 10.43.12.34",
            "svc-nginx-admin.prod.svc.cluster.local. 5 IN A 10.43.12.35",
        ],
    );

    let served = Served::start(&["--feed", "tests/fixtures/bad/syntax-error.yaml"]);
    assert!(served.line.contains(" objects=2 "), "{}", served.line);
    assert_a(
        &served,
        "svc-nginx-public.prod.svc.cluster.local.",
        &["10.43.12.34"],
    )
    .await;
    assert_a(
        &served,
        "svc-nginx-admin.prod.svc.cluster.local.",
        &["10.43.12.35"],
    )
    .await;
    assert_nxdomain(&served, "svc-nginx.prod.svc.cluster.local.", RecordType::A).await;
}

#[tokio::test]
async fn unknown_kind_is_a_warning_with_the_kind_it_meant() {
    let checked = check("tests/fixtures/bad/unknown-kind.yaml");
    assert_eq!(checked.code, Some(0), "warnings only");
    assert_eq!(
        checked.problems,
        [
            "warning: tests/fixtures/bad/unknown-kind.yaml:13: document 2: Sevice prod/svc-nginx: \
             unknown kind \"Sevice\"; skipped; fix: set kind: Service (stsdns reads Service, \
             EndpointSlice, Pod and StatefulSet)"
        ]
    );
    assert_eq!(
        checked.summary,
        "checked 1 file(s): 1 objects, 11 records, 0 error(s), 1 warning(s)"
    );
    assert_records(
        &checked,
        &["kube-dns.kube-system.svc.cluster.local. 5 IN A 10.43.0.10"],
    );

    let served = Served::start(&["--feed", "tests/fixtures/bad/unknown-kind.yaml"]);
    assert_a(
        &served,
        "kube-dns.kube-system.svc.cluster.local.",
        &["10.43.0.10"],
    )
    .await;
    let reply = query(
        served.addr,
        "_dns._udp.kube-dns.kube-system.svc.cluster.local.",
        RecordType::SRV,
        Transport::Udp,
    )
    .await;
    assert_eq!(
        rdata(&reply),
        ["0 100 53 kube-dns.kube-system.svc.cluster.local."]
    );
    // The misspelt Service does not exist, and neither does its namespace.
    assert_nxdomain(&served, "svc-nginx.prod.svc.cluster.local.", RecordType::A).await;
}

#[tokio::test]
async fn object_without_a_name_is_skipped_and_its_neighbours_served() {
    let checked = check("tests/fixtures/bad/missing-name.yaml");
    assert_eq!(checked.code, Some(1));
    assert_eq!(
        checked.problems,
        [
            "error: tests/fixtures/bad/missing-name.yaml:14: document 2: Pod without \
             metadata.name; skipped; fix: set metadata.name"
        ]
    );
    assert_eq!(
        checked.summary,
        "checked 1 file(s): 2 objects, 12 records, 1 error(s), 0 warning(s)"
    );

    let served = Served::start(&["--feed", "tests/fixtures/bad/missing-name.yaml"]);
    assert_a(&served, "kubia.default.svc.cluster.local.", &["10.42.1.6"]).await;
    assert_a(
        &served,
        "kubia-1.kubia.default.svc.cluster.local.",
        &["10.42.1.6"],
    )
    .await;
    assert_nxdomain(
        &served,
        "kubia-0.kubia.default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
}

#[tokio::test]
async fn field_of_the_wrong_type_names_the_field_and_how_to_look_it_up() {
    let checked = check("tests/fixtures/bad/wrong-type.yaml");
    assert_eq!(checked.code, Some(1));
    assert_eq!(
        checked.problems,
        [
            "error: tests/fixtures/bad/wrong-type.yaml:1: document 1: Service prod/web: field \
             spec.ports[0].port: invalid type: string \"eighty\", expected i32; skipped; fix: \
             give spec.ports[0].port the type the Kubernetes API defines (`kubectl explain \
             service.spec.ports.port` shows it)"
        ]
    );
    assert_eq!(
        checked.summary,
        "checked 1 file(s): 1 objects, 11 records, 1 error(s), 0 warning(s)"
    );

    let served = Served::start(&["--feed", "tests/fixtures/bad/wrong-type.yaml"]);
    assert_a(&served, "api.prod.svc.cluster.local.", &["10.43.20.2"]).await;
    assert_nxdomain(&served, "web.prod.svc.cluster.local.", RecordType::A).await;
}

/// The seed's second mistake: apps/v1 requires spec.selector.
#[tokio::test]
async fn statefulset_without_selector_gets_the_selector_to_add() {
    let checked = check("tests/fixtures/bad/sts-no-selector.yaml");
    assert_eq!(checked.code, Some(1));
    assert_eq!(
        checked.problems,
        [
            "error: tests/fixtures/bad/sts-no-selector.yaml:15: StatefulSet prod/sts-nginx: has \
             no spec.selector (apps/v1 requires one; the API server rejects it with 'missing \
             required field \"selector\"'); fix: add spec.selector.matchLabels: {app: nginx}"
        ]
    );
    assert_eq!(
        checked.summary,
        "checked 1 file(s): 3 objects, 12 records, 1 error(s), 0 warning(s)"
    );

    // The Service selects the pod by itself: its names work regardless of the StatefulSet.
    let served = Served::start(&["--feed", "tests/fixtures/bad/sts-no-selector.yaml"]);
    assert_a(
        &served,
        "sts-nginx-0.svc-nginx.prod.svc.cluster.local.",
        &["10.42.0.11"],
    )
    .await;
    let reply = query(
        served.addr,
        "_http._tcp.svc-nginx.prod.svc.cluster.local.",
        RecordType::SRV,
        Transport::Tcp,
    )
    .await;
    assert_eq!(
        rdata(&reply),
        ["0 100 80 sts-nginx-0.svc-nginx.prod.svc.cluster.local."]
    );
}

/// The StatefulSet of older tutorials: apps/v1beta1 and no selector. It is read as apps/v1, with
/// a warning for the version and the error for the selector; it used to be rejected outright
/// (k8s-openapi refuses any apiVersion but apps/v1), hiding the selector advice.
#[tokio::test]
async fn statefulset_under_apps_v1beta1_is_read_with_a_warning() {
    let checked = check("tests/fixtures/bad/deprecated-api-version.yaml");
    assert_eq!(checked.code, Some(1));
    assert_eq!(
        checked.problems,
        [
            "warning: tests/fixtures/bad/deprecated-api-version.yaml:14: StatefulSet \
             default/kubia: apiVersion apps/v1beta1 was removed in Kubernetes 1.16; read as \
             apps/v1; fix: set apiVersion: apps/v1",
            "error: tests/fixtures/bad/deprecated-api-version.yaml:14: StatefulSet \
             default/kubia: has no spec.selector (apps/v1 requires one; the API server rejects \
             it with 'missing required field \"selector\"'); fix: add \
             spec.selector.matchLabels: {app: kubia}",
        ]
    );
    assert_eq!(
        checked.summary,
        "checked 1 file(s): 3 objects, 12 records, 1 error(s), 1 warning(s)"
    );

    let served = Served::start(&["--feed", "tests/fixtures/bad/deprecated-api-version.yaml"]);
    assert_a(
        &served,
        "kubia-0.kubia.default.svc.cluster.local.",
        &["10.42.1.5"],
    )
    .await;
}

#[tokio::test]
async fn selector_not_matching_the_template_is_an_error() {
    let checked = check("tests/fixtures/bad/selector-mismatch.yaml");
    assert_eq!(checked.code, Some(1));
    assert_eq!(
        checked.problems,
        [
            "error: tests/fixtures/bad/selector-mismatch.yaml:14: StatefulSet default/web: \
             spec.selector does not match the template labels {app: nginx} (the API server \
             rejects it: 'selector does not match template labels'); fix: make \
             spec.selector.matchLabels a subset of spec.template.metadata.labels"
        ]
    );
    assert_eq!(
        checked.summary,
        "checked 1 file(s): 3 objects, 12 records, 1 error(s), 0 warning(s)"
    );

    let served = Served::start(&["--feed", "tests/fixtures/bad/selector-mismatch.yaml"]);
    assert_a(
        &served,
        "web-0.nginx.default.svc.cluster.local.",
        &["10.42.3.20"],
    )
    .await;
}

#[tokio::test]
async fn service_name_naming_a_missing_service_says_what_to_create() {
    let checked = check("tests/fixtures/bad/service-missing.yaml");
    assert_eq!(checked.code, Some(1));
    assert_eq!(
        checked.problems,
        [
            "error: tests/fixtures/bad/service-missing.yaml:1: StatefulSet data/kafka: \
             spec.serviceName names Service data/kafka-headless, which does not exist; fix: \
             create a headless Service kafka-headless (clusterIP: None) in namespace data \
             selecting {app: kafka}"
        ]
    );
    assert_eq!(
        checked.summary,
        "checked 1 file(s): 2 objects, 11 records, 1 error(s), 0 warning(s)"
    );

    let served = Served::start(&["--feed", "tests/fixtures/bad/service-missing.yaml"]);
    assert_a(&served, "kafka.data.svc.cluster.local.", &["10.43.30.9"]).await;
    assert_nxdomain(
        &served,
        "kafka-headless.data.svc.cluster.local.",
        RecordType::A,
    )
    .await;
}

#[tokio::test]
async fn service_name_naming_a_cluster_ip_service_says_to_make_it_headless() {
    let checked = check("tests/fixtures/bad/service-not-headless.yaml");
    assert_eq!(checked.code, Some(1));
    assert_eq!(
        checked.problems,
        [
            "error: tests/fixtures/bad/service-not-headless.yaml:14: StatefulSet data/zk: \
             spec.serviceName names Service data/zk, which is not headless, so pods get no names \
             like zk-0.zk.data.svc; fix: set clusterIP: None on Service data/zk"
        ]
    );
    assert_eq!(
        checked.summary,
        "checked 1 file(s): 3 objects, 11 records, 1 error(s), 0 warning(s)"
    );

    // What the message says: the Service answers with its cluster IP, the pod has no name.
    let served = Served::start(&["--feed", "tests/fixtures/bad/service-not-headless.yaml"]);
    assert_a(&served, "zk.data.svc.cluster.local.", &["10.43.30.7"]).await;
    assert_nxdomain(&served, "zk-0.zk.data.svc.cluster.local.", RecordType::A).await;
}

/// The seed's third mistake (pods stuck before Ready): a warning that says why the name is
/// missing and names publishNotReadyAddresses.
#[tokio::test]
async fn pod_not_ready_is_a_warning_naming_publish_not_ready_addresses() {
    let checked = check("tests/fixtures/bad/pod-not-ready.yaml");
    assert_eq!(checked.code, Some(0), "warnings only");
    assert_eq!(
        checked.problems,
        [
            "warning: tests/fixtures/bad/pod-not-ready.yaml:30: Pod default/web-1: is not Ready, \
             so Service default/nginx does not publish it (no A, SRV or PTR record); fix: wait \
             for its readiness probe to pass (kubectl describe pod web-1 -n default), or set \
             publishNotReadyAddresses: true on Service default/nginx to publish pods before they \
             are ready"
        ]
    );
    assert_eq!(
        checked.summary,
        "checked 1 file(s): 3 objects, 12 records, 0 error(s), 1 warning(s)"
    );

    let served = Served::start(&["--feed", "tests/fixtures/bad/pod-not-ready.yaml"]);
    assert_a(&served, "nginx.default.svc.cluster.local.", &["10.42.3.20"]).await;
    assert_a(
        &served,
        "web-0.nginx.default.svc.cluster.local.",
        &["10.42.3.20"],
    )
    .await;
    assert_nxdomain(
        &served,
        "web-1.nginx.default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
}

#[tokio::test]
async fn endpoint_slice_without_service_label_is_a_warning() {
    let checked = check("tests/fixtures/bad/slice-no-label.yaml");
    assert_eq!(checked.code, Some(0), "warnings only");
    assert_eq!(
        checked.problems,
        [
            "warning: tests/fixtures/bad/slice-no-label.yaml:30: EndpointSlice \
             default/kubia-extra: has no label kubernetes.io/service-name and belongs to no \
             Service; it is ignored; fix: add metadata.labels.kubernetes.io/service-name: \
             <service name>"
        ]
    );
    assert_eq!(
        checked.summary,
        "checked 1 file(s): 3 objects, 12 records, 0 error(s), 1 warning(s)"
    );

    let served = Served::start(&["--feed", "tests/fixtures/bad/slice-no-label.yaml"]);
    assert_a(&served, "kubia.default.svc.cluster.local.", &["10.42.1.5"]).await;
    assert_a(
        &served,
        "kubia-0.kubia.default.svc.cluster.local.",
        &["10.42.1.5"],
    )
    .await;
    assert_nxdomain(
        &served,
        "kubia-1.kubia.default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
}

/// The same Pod saved twice, in two files: an error naming both places; the later copy wins.
/// It used to pass silently: `ClusterState::insert` drops the replaced object's origin before
/// it could be reported.
#[tokio::test]
async fn the_same_pod_in_two_files_is_reported_with_both_places() {
    let checked = check("tests/fixtures/bad/duplicate");
    assert_eq!(checked.code, Some(1));
    assert_eq!(
        checked.problems,
        [
            "error: tests/fixtures/bad/duplicate/b.yaml:2: Pod default/mongo-0 is defined twice \
             (first at tests/fixtures/bad/duplicate/a.yaml:14); the later one is used; fix: \
             remove one of the two documents"
        ]
    );
    assert_eq!(
        checked.summary,
        "checked 2 file(s): 3 objects, 15 records, 1 error(s), 0 warning(s)"
    );

    let served = Served::start(&["--feed", "tests/fixtures/bad/duplicate"]);
    assert_a(
        &served,
        "mongo-0.mongo.default.svc.cluster.local.",
        &["10.42.2.20"],
    )
    .await;
    assert_a(
        &served,
        "mongo-1.mongo.default.svc.cluster.local.",
        &["10.42.2.11"],
    )
    .await;
    assert_a(
        &served,
        "mongo.default.svc.cluster.local.",
        &["10.42.2.11", "10.42.2.20"],
    )
    .await;
}

/// Every fixture at once, as `--feed DIR`: each problem is still reported once, with its own
/// file and line, and every good object is served.
#[tokio::test]
async fn the_whole_directory_reports_every_problem_and_serves_the_rest() {
    let checked = check("tests/fixtures/bad");
    assert_eq!(checked.code, Some(1));
    let mut files: Vec<&str> = checked
        .problems
        .iter()
        .map(|p| {
            p.split(": ")
                .nth(1)
                .and_then(|origin| origin.split(':').next())
                .unwrap_or_else(|| panic!("no origin in {p}"))
        })
        .collect();
    files.dedup();
    // Fixtures share some objects (Service default/nginx, for one), so the directory also
    // reports those as defined twice; each fixture's own mistake is still named.
    for expected in [
        "tests/fixtures/bad/duplicate/b.yaml",
        "tests/fixtures/bad/missing-name.yaml",
        "tests/fixtures/bad/pod-not-ready.yaml",
        "tests/fixtures/bad/selector-mismatch.yaml",
        "tests/fixtures/bad/service-missing.yaml",
        "tests/fixtures/bad/service-not-headless.yaml",
        "tests/fixtures/bad/slice-no-label.yaml",
        "tests/fixtures/bad/sts-no-selector.yaml",
        "tests/fixtures/bad/syntax-error.yaml",
        "tests/fixtures/bad/unknown-kind.yaml",
        "tests/fixtures/bad/wrong-type.yaml",
    ] {
        assert!(
            files.contains(&expected),
            "{expected} not named in:\n{}",
            checked.problems.join("\n")
        );
    }

    let served = Served::start(&["--feed", "tests/fixtures/bad"]);
    assert_a(
        &served,
        "svc-nginx-public.prod.svc.cluster.local.",
        &["10.43.12.34"],
    )
    .await;
    assert_a(
        &served,
        "kube-dns.kube-system.svc.cluster.local.",
        &["10.43.0.10"],
    )
    .await;
    assert_a(&served, "api.prod.svc.cluster.local.", &["10.43.20.2"]).await;
    assert_a(&served, "zk.data.svc.cluster.local.", &["10.43.30.7"]).await;
}

/// A port name or an ExternalName no DNS name can hold used to fail the whole build: `check`
/// printed only "cannot build the records" and `serve` exited. Each such object is now skipped
/// with its field named, and the rest is served.
#[tokio::test]
async fn names_no_dns_name_can_hold_cost_only_their_object() {
    let checked = check("tests/fixtures/bad/bad-dns-names.yaml");
    assert_eq!(checked.code, Some(1));
    assert_eq!(
        checked.problems,
        [
            "error: tests/fixtures/bad/bad-dns-names.yaml:14: document 3: Service default/web: \
             spec.ports[0].name: \"a b\" is not a valid DNS-1123 label: only lowercase letters, \
             digits and '-' are allowed; skipped",
            "error: tests/fixtures/bad/bad-dns-names.yaml:19: document 4: Service default/db: \
             spec.externalName \"db example.com\": unrecognized char:  ; skipped",
            "error: tests/fixtures/bad/bad-dns-names.yaml:24: document 5: EndpointSlice \
             default/api-a: ports[0].name: \"x_y\" is not a valid DNS-1123 label: only lowercase \
             letters, digits and '-' are allowed; skipped",
        ]
    );
    assert_records(
        &checked,
        &["kubia-0.kubia.default.svc.cluster.local. 5 IN A 10.42.1.5"],
    );

    let served = Served::start(&["--feed", "tests/fixtures/bad/bad-dns-names.yaml"]);
    assert_a(
        &served,
        "kubia-0.kubia.default.svc.cluster.local.",
        &["10.42.1.5"],
    )
    .await;
    assert_nxdomain(&served, "db.default.svc.cluster.local.", RecordType::CNAME).await;
}
