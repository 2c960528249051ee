//! The StatefulSet lifecycle of the seeds as one scenario, run through each of the three feeds
//! with identical expected answers.
//!
//! StatefulSet `web` (OrderedReady) behind headless Service `nginx` (port `web` 80) in
//! `default`: scaled 0 → 5 one pod at a time (created Pending, Running but not Ready, Ready,
//! then the next ordinal); `web-3` deleted and recreated with a new IP; `publishNotReadyAddresses`
//! turned on (the not-Ready `web-3` appears) and off again; then scaled 5 → 2 from the highest
//! ordinal down (terminating, then gone, then the next).
//!
//! [`scenario`] writes each step once, as the full set of objects plus the watch events that
//! lead to it from the step before (checked against the objects by
//! `scenario_events_lead_from_step_to_step`). The three tests drive the same steps through a
//! manifest file (rewritten whole and renamed over), a watch-event file the server follows
//! (appended to) and the fake API server (`--kube`), and compare every step's answers, over
//! UDP and TCP, with [`expected`], which computes them from the step's objects alone.
//!
//! Many steps change no answer (the StatefulSet's replicas, a pod created or running but not
//! Ready, a terminating pod finally deleted), and whether the reconciler publishes after them
//! is its own business. So every step also moves two [`markers`] outside the scenario, after
//! its own events: when the markers show step n, step n has been applied, and its answers must
//! be exactly `expected(step n)`: a not-Ready pod that leaked into DNS while starting is caught
//! at the step it leaked, not hidden by the next. At the end a second server reads the same
//! input from scratch (for the stream, the whole recorded history) and must agree.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use serde_json::{Value, json};
use stsdns::config::{FeedSource, ZoneConfig};
use stsdns::model::Kind;
use tempfile::TempDir;
use tokio::time::Instant;

use crate::fake_api::FakeApi;
use crate::harness::{LiveServer, TIMEOUT, TRANSPORTS, Transport, additionals, answers, query};

pub const NAMESPACE: &str = "default";
pub const SERVICE: &str = "nginx";
pub const STATEFULSET: &str = "web";
const ZONE: &str = "cluster.local.";
/// The TTL of positive answers under the default zone settings.
const TTL: u32 = 5;
/// The container port named `web`, which the Service's `targetPort: web` resolves to.
const WEB_PORT: u16 = 80;
/// Every ordinal the scenario uses, so each step also checks the names that must not exist.
const ORDINALS: std::ops::Range<u32> = 0..5;
const IMAGE: &str = "registry.k8s.io/nginx-slim:0.8";

/// Where a pod is in its life, as the kubelet and the StatefulSet controller report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Created and scheduled: no IP yet.
    Pending,
    /// Running with an IP, not Ready yet.
    Starting,
    /// Ready.
    Ready,
    /// Deleted (`deletionTimestamp` set), still Ready while it shuts down.
    Terminating,
}

/// One pod of `web`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodState {
    /// Its IP once it runs.
    pub ip: String,
    /// Where it is in its life.
    pub phase: Phase,
}

/// The objects of one step: the Service `nginx`, the StatefulSet `web` and its pods.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cluster {
    /// The Service's `publishNotReadyAddresses`.
    pub publish_not_ready: bool,
    /// The StatefulSet's `spec.replicas`.
    pub replicas: u32,
    /// The pods, by ordinal.
    pub pods: BTreeMap<u32, PodState>,
}

/// The first IP of pod `web-<ordinal>`.
pub fn pod_ip(ordinal: u32) -> String {
    format!("10.244.{}.{}", ordinal + 1, ordinal + 10)
}

/// The IP `web-3` gets when it comes back.
pub const WEB_3_NEW_IP: &str = "10.244.4.33";

/// `web-<ordinal>`.
pub fn pod_name(ordinal: u32) -> String {
    format!("{STATEFULSET}-{ordinal}")
}

/// One Kubernetes object of a step, as the API server would hold it.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub kind: Kind,
    pub name: String,
    pub value: Value,
}

impl Cluster {
    /// `replicas` pods `web-0…`, all Ready at their first IP.
    pub fn ready(replicas: u32) -> Self {
        Self {
            publish_not_ready: false,
            replicas,
            pods: (0..replicas)
                .map(|i| {
                    let pod = PodState {
                        ip: pod_ip(i),
                        phase: Phase::Ready,
                    };
                    (i, pod)
                })
                .collect(),
        }
    }

    /// Moves pod `ordinal` (which exists) to `phase`.
    pub fn set(&mut self, ordinal: u32, phase: Phase) {
        self.pods
            .get_mut(&ordinal)
            .unwrap_or_else(|| panic!("no pod web-{ordinal}"))
            .phase = phase;
    }

    /// This state with one change.
    pub fn with(&self, change: impl FnOnce(&mut Self)) -> Self {
        let mut next = self.clone();
        change(&mut next);
        next
    }

    /// Whether pod `ordinal` is published: it has an IP and is Ready and not terminating, or
    /// the Service publishes not-Ready addresses (DESIGN section 1).
    fn published(&self, pod: &PodState) -> bool {
        pod.phase != Phase::Pending && (self.publish_not_ready || pod.phase == Phase::Ready)
    }

    /// The headless Service `nginx`.
    pub fn service(&self) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": {"app": "nginx"}},
            "spec": {
                "clusterIP": "None", "clusterIPs": ["None"],
                "publishNotReadyAddresses": self.publish_not_ready,
                "selector": {"app": "nginx"},
                "ports": [{"name": "web", "port": 80, "protocol": "TCP", "targetPort": "web"}]
            }
        })
    }

    /// The StatefulSet `web`.
    pub fn statefulset(&self) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": STATEFULSET, "namespace": NAMESPACE},
            "spec": {
                "serviceName": SERVICE, "replicas": self.replicas,
                "podManagementPolicy": "OrderedReady",
                "selector": {"matchLabels": {"app": "nginx"}},
                "template": {
                    "metadata": {"labels": {"app": "nginx"}},
                    "spec": {"containers": [{"name": "nginx", "image": IMAGE,
                        "ports": [{"name": "web", "containerPort": WEB_PORT}]}]}
                }
            }
        })
    }

    /// Pod `web-<ordinal>` as the StatefulSet controller creates it and the kubelet reports it.
    pub fn pod(&self, ordinal: u32) -> Value {
        let state = &self.pods[&ordinal];
        let name = pod_name(ordinal);
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": name, "namespace": NAMESPACE,
                "labels": {"app": "nginx", "statefulset.kubernetes.io/pod-name": name,
                    "apps.kubernetes.io/pod-index": ordinal.to_string()},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                    "name": STATEFULSET, "uid": "5b3a4a9e-0d1c-4f4e-9d57-3c1b7f0a2e11",
                    "controller": true, "blockOwnerDeletion": true}]
            },
            "spec": {
                "hostname": name, "subdomain": SERVICE,
                "containers": [{"name": "nginx", "image": IMAGE,
                    "ports": [{"name": "web", "containerPort": WEB_PORT, "protocol": "TCP"}]}]
            },
            "status": {"phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "True"}]}
        });
        if state.phase != Phase::Pending {
            let ready = if state.phase == Phase::Starting {
                "False"
            } else {
                "True"
            };
            pod["status"] = json!({
                "phase": "Running", "podIP": state.ip, "podIPs": [{"ip": state.ip}],
                "conditions": [{"type": "PodScheduled", "status": "True"},
                    {"type": "ContainersReady", "status": ready},
                    {"type": "Ready", "status": ready}]
            });
        }
        if state.phase == Phase::Terminating {
            pod["metadata"]["deletionTimestamp"] = "2025-06-01T12:00:00Z".into();
            pod["metadata"]["deletionGracePeriodSeconds"] = 30.into();
        }
        pod
    }

    /// Every object, in a stable order: the Service, the StatefulSet, the pods by ordinal.
    pub fn objects(&self) -> Vec<Object> {
        let mut objects = vec![
            Object {
                kind: Kind::Service,
                name: SERVICE.into(),
                value: self.service(),
            },
            Object {
                kind: Kind::StatefulSet,
                name: STATEFULSET.into(),
                value: self.statefulset(),
            },
        ];
        objects.extend(self.pods.keys().map(|&i| Object {
            kind: Kind::Pod,
            name: pod_name(i),
            value: self.pod(i),
        }));
        objects
    }
}

/// The `type` of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Added,
    Modified,
    Deleted,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One watch event: what changed, and the object (its last state, for a deletion).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub verb: Verb,
    pub object: Object,
}

impl Change {
    /// `MODIFIED Pod web-0`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} {}",
            self.verb.as_str(),
            self.object.kind.as_str(),
            self.object.name
        )
    }

    /// The event as the API server's watch sends it: one JSON line.
    pub fn watch_line(&self) -> String {
        watch_line(self.verb.as_str(), &self.object.value)
    }
}

/// `{"type": …, "object": …}` and a newline.
pub fn watch_line(event_type: &str, object: &Value) -> String {
    let mut line = json!({"type": event_type, "object": object}).to_string();
    line.push('\n');
    line
}

/// The watch events that take `before` to `after`, in object order.
pub fn changes(before: &[Object], after: &[Object]) -> Vec<Change> {
    let key = |o: &Object| (o.kind, o.name.clone());
    let before: BTreeMap<_, &Object> = before.iter().map(|o| (key(o), o)).collect();
    let after: BTreeMap<_, &Object> = after.iter().map(|o| (key(o), o)).collect();
    let mut keys: Vec<_> = before.keys().chain(after.keys()).cloned().collect();
    keys.sort_by_key(|(kind, name)| (kind_order(*kind), name.clone()));
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| match (before.get(&k), after.get(&k)) {
            (None, Some(new)) => Some((Verb::Added, *new)),
            (Some(old), None) => Some((Verb::Deleted, *old)),
            (Some(old), Some(new)) if old.value != new.value => Some((Verb::Modified, *new)),
            _ => None,
        })
        .map(|(verb, object)| Change {
            verb,
            object: object.clone(),
        })
        .collect()
}

/// Services first, then StatefulSets, then Pods: the order a user applies them in.
fn kind_order(kind: Kind) -> u8 {
    match kind {
        Kind::Service => 0,
        Kind::EndpointSlice => 1,
        Kind::StatefulSet => 2,
        Kind::Pod => 3,
    }
}

/// One step of the scenario.
#[derive(Debug, Clone)]
pub struct Step {
    /// What happened, for messages.
    pub what: String,
    /// Every object after it.
    pub cluster: Cluster,
    /// The watch events from the step before (for the first step, the initial list).
    pub events: Vec<String>,
}

/// Builds the steps, each from the one before.
struct Script {
    steps: Vec<Step>,
}

impl Script {
    fn then(
        &mut self,
        what: impl Into<String>,
        events: &[String],
        change: impl FnOnce(&mut Cluster),
    ) {
        let cluster = self
            .steps
            .last()
            .expect("a first step")
            .cluster
            .with(change);
        self.steps.push(Step {
            what: what.into(),
            cluster,
            events: events.to_vec(),
        });
    }
}

/// The lifecycle, step by step.
pub fn scenario() -> Vec<Step> {
    let mut script = Script {
        steps: vec![Step {
            what: "the Service and the StatefulSet at 0 replicas".into(),
            cluster: Cluster::default(),
            events: vec!["ADDED Service nginx".into(), "ADDED StatefulSet web".into()],
        }],
    };
    let sts = || vec!["MODIFIED StatefulSet web".to_owned()];
    let svc = || vec!["MODIFIED Service nginx".to_owned()];
    let pod = |verb: &str, i: u32| vec![format!("{verb} Pod web-{i}")];

    script.then("web scaled to 5", &sts(), |c| c.replicas = 5);
    for i in ORDINALS {
        let created = PodState {
            ip: pod_ip(i),
            phase: Phase::Pending,
        };
        script.then(format!("web-{i} created, Pending"), &pod("ADDED", i), |c| {
            c.pods.insert(i, created);
        });
        script.then(
            format!("web-{i} running, not Ready"),
            &pod("MODIFIED", i),
            |c| c.set(i, Phase::Starting),
        );
        script.then(format!("web-{i} Ready"), &pod("MODIFIED", i), |c| {
            c.set(i, Phase::Ready);
        });
    }

    script.then("web-3 deleted", &pod("DELETED", 3), |c| {
        c.pods.remove(&3);
    });
    let recreated = PodState {
        ip: WEB_3_NEW_IP.into(),
        phase: Phase::Pending,
    };
    script.then("web-3 recreated, Pending", &pod("ADDED", 3), |c| {
        c.pods.insert(3, recreated);
    });
    script.then(
        "web-3 running at a new IP, not Ready",
        &pod("MODIFIED", 3),
        |c| c.set(3, Phase::Starting),
    );
    script.then(
        "nginx publishes not-Ready addresses: web-3 appears",
        &svc(),
        |c| c.publish_not_ready = true,
    );
    script.then(
        "nginx stops publishing not-Ready addresses: web-3 goes",
        &svc(),
        |c| c.publish_not_ready = false,
    );
    script.then("web-3 Ready at its new IP", &pod("MODIFIED", 3), |c| {
        c.set(3, Phase::Ready);
    });

    script.then("web scaled to 2", &sts(), |c| c.replicas = 2);
    for i in (2..5).rev() {
        script.then(format!("web-{i} terminating"), &pod("MODIFIED", i), |c| {
            c.set(i, Phase::Terminating);
        });
        script.then(format!("web-{i} deleted"), &pod("DELETED", i), |c| {
            c.pods.remove(&i);
        });
    }
    script.steps
}

/// What a query got, reduced to what a step decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// NOERROR with AA and answers (`name ttl type rdata`; A sets sorted, SRV in answer
    /// order), and the additional records, sorted.
    Records {
        answers: Vec<String>,
        additionals: Vec<String>,
    },
    /// NXDOMAIN with AA, no answer, and the zone's SOA in authority.
    NxDomain,
    /// Anything else, described.
    Other(String),
}

/// The questions every step asks, in a fixed order.
pub fn questions() -> Vec<(String, RecordType)> {
    let service = service_name();
    let mut questions = vec![
        (service.clone(), RecordType::SRV),
        (format!("_web._tcp.{service}"), RecordType::SRV),
        (service, RecordType::A),
    ];
    questions.extend(ORDINALS.map(|i| (host_name(i), RecordType::A)));
    questions
}

/// `nginx.default.svc.cluster.local.`
pub fn service_name() -> String {
    format!("{SERVICE}.{NAMESPACE}.svc.{ZONE}")
}

/// `web-<ordinal>.nginx.default.svc.cluster.local.`
pub fn host_name(ordinal: u32) -> String {
    format!("{}.{}", pod_name(ordinal), service_name())
}

/// Every question with its reply.
pub type Answers = Vec<(String, Reply)>;

/// The answers `cluster` must get, from DESIGN section 2: published pods in ordinal order,
/// SRV weight `max(1, floor(100 / N))`, each SRV target's A record in the additional section,
/// and NXDOMAIN for a headless Service without a published endpoint and for every host that is
/// not published.
pub fn expected(cluster: &Cluster) -> Answers {
    let published: Vec<(u32, &str)> = cluster
        .pods
        .iter()
        .filter(|(_, pod)| cluster.published(pod))
        .map(|(&i, pod)| (i, pod.ip.as_str()))
        .collect();
    let service = service_name();
    let srv = |owner: &str| {
        if published.is_empty() {
            return Reply::NxDomain;
        }
        let weight = (100 / published.len()).max(1);
        let mut additionals: Vec<String> = published
            .iter()
            .map(|(i, ip)| format!("{} {TTL} A {ip}", host_name(*i)))
            .collect();
        additionals.sort();
        Reply::Records {
            answers: published
                .iter()
                .map(|(i, _)| format!("{owner} {TTL} SRV 0 {weight} {WEB_PORT} {}", host_name(*i)))
                .collect(),
            additionals,
        }
    };
    let addresses = |owner: &str, ips: Vec<&str>| {
        if ips.is_empty() {
            return Reply::NxDomain;
        }
        let mut answers: Vec<String> = ips
            .iter()
            .map(|ip| format!("{owner} {TTL} A {ip}"))
            .collect();
        answers.sort();
        Reply::Records {
            answers,
            additionals: Vec::new(),
        }
    };
    questions()
        .into_iter()
        .enumerate()
        .map(|(index, (name, _))| {
            let reply = match index {
                0 => srv(&service),
                1 => srv(&name),
                2 => addresses(&name, published.iter().map(|(_, ip)| *ip).collect()),
                _ => {
                    let ordinal = u32::try_from(index - 3).expect("five hosts");
                    let ip = published.iter().find(|(i, _)| *i == ordinal);
                    addresses(&name, ip.map(|(_, ip)| *ip).into_iter().collect())
                }
            };
            (name, reply)
        })
        .collect()
}

/// Reduces a reply to a [`Reply`].
pub fn reply(message: &Message, record_type: RecordType) -> Reply {
    let code = message.metadata.response_code;
    let soa: Vec<String> = message
        .authorities
        .iter()
        .filter(|r| matches!(r.data, RData::SOA(_)))
        .map(|r| r.name.to_string())
        .collect();
    let aa = message.metadata.authoritative;
    if aa && code == ResponseCode::NoError && !message.answers.is_empty() {
        let mut answers = answers(message);
        if record_type != RecordType::SRV {
            answers.sort();
        }
        return Reply::Records {
            answers,
            additionals: additionals(message),
        };
    }
    if aa && code == ResponseCode::NXDomain && message.answers.is_empty() && soa == [ZONE] {
        return Reply::NxDomain;
    }
    Reply::Other(format!(
        "{code:?} aa={aa} answers={:?} soa={soa:?}",
        answers(message)
    ))
}

/// Asks every question over `transport`.
pub async fn observe(addr: SocketAddr, transport: Transport) -> Answers {
    let mut seen = Vec::new();
    for (name, record_type) in questions() {
        let message = query(addr, &name, record_type, transport).await;
        seen.push((name, reply(&message, record_type)));
    }
    seen
}

/// The SOA serial the server answers with.
pub async fn soa_serial(addr: SocketAddr, transport: Transport) -> u32 {
    let message = query(addr, ZONE, RecordType::SOA, transport).await;
    match message.answers.first().map(|r| &r.data) {
        Some(RData::SOA(soa)) => soa.serial,
        _ => panic!("no SOA for {ZONE} over {transport:?}: {message}"),
    }
}

/// Asserts that the answers are `want` over UDP and TCP, right now; a failure lists only the
/// questions whose answers differ.
pub async fn assert_answers(addr: SocketAddr, want: &Answers, what: &str) {
    for transport in TRANSPORTS {
        let seen = observe(addr, transport).await;
        let differ: Vec<String> = seen
            .iter()
            .zip(want)
            .filter(|(seen, want)| seen != want)
            .map(|((name, seen), (_, want))| {
                format!("{name}\n    got:  {seen:?}\n    want: {want:?}")
            })
            .collect();
        assert!(
            differ.is_empty(),
            "{what} ({transport:?}): {} of {} answers differ:\n  {}",
            differ.len(),
            want.len(),
            differ.join("\n  ")
        );
    }
}

/// Waits (bounded) for a publish after `serial` whose answers are `want` over UDP and TCP;
/// returns that publish's serial. Publishes with other answers (a step's events applied in
/// several batches) are waited past.
pub async fn await_answers(live: &mut LiveServer, serial: u32, want: &Answers, what: &str) -> u32 {
    let deadline = Instant::now() + TIMEOUT;
    let mut current = serial;
    loop {
        if tokio::time::timeout_at(deadline, live.reader.changed_from(current))
            .await
            .is_err()
        {
            break;
        }
        let now = live.serial().expect("published");
        assert_ne!(now, current, "{what}: the reconciler stopped publishing");
        current = now;
        let mut all = true;
        for transport in TRANSPORTS {
            all &= observe(live.addr, transport).await == *want;
        }
        if all {
            for transport in TRANSPORTS {
                let answered = soa_serial(live.addr, transport).await;
                assert!(
                    answered >= current && answered > serial,
                    "{what}: SOA serial {answered} over {transport:?}, published {current}, \
                     before the step {serial}"
                );
            }
            return current;
        }
    }
    assert_ne!(
        current, serial,
        "{what}: nothing was published within {TIMEOUT:?} (serial {serial})"
    );
    assert_answers(
        live.addr,
        want,
        &format!("{what}: the answers {TIMEOUT:?} after the step (serial {serial} → {current})"),
    )
    .await;
    panic!("{what}: the answers came only after {TIMEOUT:?}")
}

/// Replaces `path` the way editors and `kubectl get -o yaml > f.tmp && mv` do: a temporary
/// file in the same directory, renamed over it.
pub fn replace_file(path: &Path, text: &str) {
    let name = path.file_name().expect("a file name").to_string_lossy();
    let temporary = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&temporary, text).expect("write the temporary file");
    std::fs::rename(&temporary, path).expect("rename it over the manifest");
}

/// Appends `text` to `path` in one write, as a watch writer does.
pub fn append_file(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open the stream file");
    file.write_all(text.as_bytes()).expect("append");
}

/// The objects as a manifest: one document per object (JSON is YAML).
pub fn manifest(objects: &[Object]) -> String {
    objects
        .iter()
        .map(|o| format!("---\n{}\n", o.value))
        .collect()
}

/// A kubeconfig in `dir` for the fake API: plain HTTP, no credentials.
pub fn kubeconfig(dir: &Path, api: &FakeApi) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
             clusters:\n- name: fake\n  cluster:\n    server: {}\n\
             users:\n- name: nobody\n  user: {{}}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: nobody\n",
            api.url()
        ),
    )
    .expect("write the kubeconfig");
    path
}

/// Where the server's objects come from, and how a test changes them. Each keeps its
/// temporary directory (the files, the kubeconfig) for as long as it lives.
pub enum Input {
    /// A manifest file, rewritten whole at each step.
    Files { dir: TempDir, path: PathBuf },
    /// A watch-event file the server follows; each step appends its events.
    Stream { dir: TempDir, path: PathBuf },
    /// The fake API server; each step applies and deletes objects on it.
    Kube {
        dir: TempDir,
        api: FakeApi,
        kubeconfig: PathBuf,
    },
}

/// Which feed an [`Input`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedKind {
    Files,
    Stream,
    Kube,
}

impl Input {
    /// The input holding `objects`, before the server starts (for a stream, their ADDED
    /// events: the initial list).
    pub async fn start(kind: FeedKind, objects: &[Object]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        match kind {
            FeedKind::Files => {
                let path = dir.path().join("cluster.yaml");
                std::fs::write(&path, manifest(objects)).expect("write the manifest");
                Self::Files { dir, path }
            }
            FeedKind::Stream => {
                let path = dir.path().join("watch.json");
                let list: String = changes(&[], objects)
                    .iter()
                    .map(Change::watch_line)
                    .collect();
                std::fs::write(&path, list).expect("write the stream");
                Self::Stream { dir, path }
            }
            FeedKind::Kube => {
                let api = FakeApi::start().await;
                for object in objects {
                    api.apply(object.kind, object.value.clone());
                }
                let kubeconfig = kubeconfig(dir.path(), &api);
                Self::Kube {
                    dir,
                    api,
                    kubeconfig,
                }
            }
        }
    }

    /// The feed that reads this input.
    pub fn source(&self) -> FeedSource {
        match self {
            Self::Files { path, .. } | Self::Stream { path, .. } => FeedSource::Path(path.clone()),
            Self::Kube { kubeconfig, .. } => FeedSource::Kube {
                kubeconfig: Some(kubeconfig.clone()),
                context: None,
            },
        }
    }

    /// Moves the input on: to `objects` as a whole new manifest, or by `events` (which must
    /// lead to `objects`) appended to the stream or made as API calls, in their order.
    pub fn apply(&self, objects: &[Object], events: &[Change]) {
        match self {
            Self::Files { path, .. } => replace_file(path, &manifest(objects)),
            Self::Stream { path, .. } => {
                let lines: String = events.iter().map(Change::watch_line).collect();
                append_file(path, &lines);
            }
            Self::Kube { api, .. } => {
                for change in events {
                    let object = &change.object;
                    match change.verb {
                        Verb::Added | Verb::Modified => {
                            api.apply(object.kind, object.value.clone());
                        }
                        Verb::Deleted => {
                            let namespace = object.value["metadata"]["namespace"]
                                .as_str()
                                .expect("a namespace");
                            assert!(
                                api.delete(object.kind, namespace, &object.name),
                                "{} exists",
                                object.name
                            );
                        }
                    }
                }
            }
        }
    }

    /// The fake API, for a kube input.
    pub fn api(&self) -> &FakeApi {
        match self {
            Self::Kube { api, .. } => api,
            _ => panic!("not a kube input"),
        }
    }

    /// The file, for a manifest or stream input.
    pub fn path(&self) -> &Path {
        match self {
            Self::Files { path, .. } | Self::Stream { path, .. } => path,
            Self::Kube { .. } => panic!("a kube input has no file"),
        }
    }
}

/// The namespace of the step markers.
const MARKERS: &str = "lifecycle";

/// Objects outside the scenario that every step moves after its own events: a ClusterIP
/// Service `step` whose address and a Pod (behind headless Service `step-pod`) whose IP are
/// `10.96.0.<n>` and `10.255.0.<n>` at step n.
///
/// They tell the test when a step has been applied even if it changes no answer, so every
/// step's answers are checked exactly, including the steps that must change nothing. A stream
/// is one ordered sequence; a manifest is replaced whole; the API server's watch orders each
/// kind's events, so the Service marker follows the step's Service events and the Pod marker
/// its Pod events (StatefulSet events have their own watch, but change no answer).
pub fn markers(step: usize) -> Vec<Object> {
    let n = step + 1;
    let step_ip = format!("10.255.0.{n}");
    vec![
        Object {
            kind: Kind::Service,
            name: "step".into(),
            value: json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "step", "namespace": MARKERS},
                "spec": {"clusterIP": format!("10.96.0.{n}"),
                    "ports": [{"name": "step", "port": 1, "protocol": "TCP"}]}
            }),
        },
        Object {
            kind: Kind::Service,
            name: "step-pod".into(),
            value: json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "step-pod", "namespace": MARKERS},
                "spec": {"clusterIP": "None", "selector": {"app": "step-pod"},
                    "ports": [{"name": "step", "port": 1, "protocol": "TCP"}]}
            }),
        },
        Object {
            kind: Kind::Pod,
            name: "step-pod".into(),
            value: json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "step-pod", "namespace": MARKERS,
                    "labels": {"app": "step-pod"}},
                "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.9"}]},
                "status": {"phase": "Running", "podIP": step_ip, "podIPs": [{"ip": step_ip}],
                    "conditions": [{"type": "Ready", "status": "True"}]}
            }),
        },
    ]
}

/// What the markers answer at step `step`.
fn marker_answers(step: usize) -> Answers {
    let n = step + 1;
    [
        ("step", format!("10.96.0.{n}")),
        ("step-pod", format!("10.255.0.{n}")),
    ]
    .into_iter()
    .map(|(service, ip)| {
        let name = format!("{service}.{MARKERS}.svc.{ZONE}");
        let reply = Reply::Records {
            answers: vec![format!("{name} {TTL} A {ip}")],
            additionals: Vec::new(),
        };
        (name, reply)
    })
    .collect()
}

/// The markers' answers over `transport`.
async fn observe_markers(addr: SocketAddr, transport: Transport) -> Answers {
    let mut seen = Vec::new();
    for (name, _) in marker_answers(0) {
        let message = query(addr, &name, RecordType::A, transport).await;
        seen.push((name, reply(&message, RecordType::A)));
    }
    seen
}

/// The scenario's objects at step `index`, with the markers.
fn objects_at(steps: &[Step], index: usize) -> Vec<Object> {
    let mut objects = steps[index].cluster.objects();
    objects.extend(markers(index));
    objects
}

/// Waits (bounded) for the publish that moves the markers to step `step`, then asserts that
/// the answers are exactly `want` over UDP and TCP and that the serial moved past `serial`;
/// returns the new serial.
async fn await_step(
    live: &mut LiveServer,
    serial: u32,
    step: usize,
    want: &Answers,
    what: &str,
) -> u32 {
    let deadline = Instant::now() + TIMEOUT;
    let markers = marker_answers(step);
    let mut current = serial;
    loop {
        let published = tokio::time::timeout_at(deadline, live.reader.changed_from(current)).await;
        if published.is_err() {
            let seen = observe_markers(live.addr, Transport::Udp).await;
            assert_eq!(seen, markers, "{what}: not applied within {TIMEOUT:?}");
            panic!("{what}: applied, but without a publish since serial {current}");
        }
        let now = live.serial().expect("published");
        assert_ne!(now, current, "{what}: the reconciler stopped publishing");
        current = now;
        if observe_markers(live.addr, Transport::Udp).await == markers {
            break;
        }
    }
    assert_answers(live.addr, want, what).await;
    assert_eq!(
        observe_markers(live.addr, Transport::Tcp).await,
        markers,
        "{what}"
    );
    for transport in TRANSPORTS {
        let answered = soa_serial(live.addr, transport).await;
        assert!(
            answered >= current && answered > serial,
            "{what}: SOA serial {answered} over {transport:?}, published {current}, before the \
             step {serial}"
        );
    }
    current
}

/// Runs the whole scenario through one feed.
async fn run(kind: FeedKind) {
    let steps = scenario();
    let input = Input::start(kind, &objects_at(&steps, 0)).await;
    let mut live = LiveServer::start(vec![input.source()], ZoneConfig::default()).await;
    let mut serial = live.ready().await;
    let first = format!("{kind:?}, step 0: {}", steps[0].what);
    assert_answers(live.addr, &expected(&steps[0].cluster), &first).await;
    assert_eq!(
        observe_markers(live.addr, Transport::Udp).await,
        marker_answers(0)
    );

    for index in 1..steps.len() {
        let what = format!("{kind:?}, step {index}: {}", steps[index].what);
        // The step's own events, then the markers'.
        let mut events = changes(
            &steps[index - 1].cluster.objects(),
            &steps[index].cluster.objects(),
        );
        events.extend(changes(&markers(index - 1), &markers(index)));
        input.apply(&objects_at(&steps, index), &events);
        serial = await_step(
            &mut live,
            serial,
            index,
            &expected(&steps[index].cluster),
            &what,
        )
        .await;
    }

    // A server that reads the same input from the start agrees.
    let mut fresh = LiveServer::start(vec![input.source()], ZoneConfig::default()).await;
    fresh.ready().await;
    let last = steps.len() - 1;
    let what = format!("{kind:?}: a fresh server after the last step");
    assert_answers(fresh.addr, &expected(&steps[last].cluster), &what).await;
    assert_eq!(
        observe_markers(fresh.addr, Transport::Udp).await,
        marker_answers(last),
        "{what}"
    );
}

#[test]
fn scenario_events_lead_from_step_to_step() {
    let steps = scenario();
    let mut before = Vec::new();
    for step in &steps {
        let after = step.cluster.objects();
        let events: Vec<String> = changes(&before, &after)
            .iter()
            .map(Change::describe)
            .collect();
        assert_eq!(events, step.events, "{}", step.what);
        before = after;
    }
    // OrderedReady: an ordinal is created only when every lower one is Ready; scale-down
    // takes the highest ordinal first.
    for pair in steps.windows(2) {
        let (before, after) = (&pair[0].cluster, &pair[1].cluster);
        for &i in after.pods.keys().filter(|i| !before.pods.contains_key(i)) {
            assert!(
                (0..i).all(|j| before.pods.get(&j).is_some_and(|p| p.phase == Phase::Ready)),
                "{}: web-{i} created before its lower ordinals were Ready",
                pair[1].what
            );
        }
        for (&i, pod) in &after.pods {
            if pod.phase == Phase::Terminating {
                assert_eq!(after.pods.keys().max(), Some(&i), "{}", pair[1].what);
            }
        }
    }
    // The steps that change DNS; the others must change nothing, which each run checks too.
    let mut shown = expected(&steps[0].cluster);
    let mut visible = Vec::new();
    for step in &steps[1..] {
        let want = expected(&step.cluster);
        if want != shown {
            visible.push(step.what.as_str());
        }
        shown = want;
    }
    assert_eq!(
        visible,
        [
            "web-0 Ready",
            "web-1 Ready",
            "web-2 Ready",
            "web-3 Ready",
            "web-4 Ready",
            "web-3 deleted",
            "nginx publishes not-Ready addresses: web-3 appears",
            "nginx stops publishing not-Ready addresses: web-3 goes",
            "web-3 Ready at its new IP",
            "web-4 terminating",
            "web-3 terminating",
            "web-2 terminating",
        ]
    );
}

#[test]
fn expected_answers_follow_the_design() {
    let cluster = Cluster::ready(3).with(|c| c.set(1, Phase::Starting));
    let service = service_name();
    let want = expected(&cluster);
    assert_eq!(
        want[0],
        (
            service.clone(),
            Reply::Records {
                answers: vec![
                    format!("{service} 5 SRV 0 50 80 web-0.{service}"),
                    format!("{service} 5 SRV 0 50 80 web-2.{service}"),
                ],
                additionals: vec![
                    format!("web-0.{service} 5 A 10.244.1.10"),
                    format!("web-2.{service} 5 A 10.244.3.12"),
                ],
            }
        )
    );
    assert_eq!(want[4], (format!("web-1.{service}"), Reply::NxDomain));
    assert_eq!(want[7], (format!("web-4.{service}"), Reply::NxDomain));
    // publishNotReadyAddresses publishes the running pod; a pending one has no address.
    let everyone = cluster.with(|c| {
        c.publish_not_ready = true;
        c.pods.insert(
            3,
            PodState {
                ip: pod_ip(3),
                phase: Phase::Pending,
            },
        );
    });
    let Reply::Records { answers, .. } = &expected(&everyone)[1].1 else {
        panic!("SRV records")
    };
    assert_eq!(answers.len(), 3);
    assert!(answers[1].contains(" 33 80 web-1."), "{answers:?}");
    assert_eq!(expected(&Cluster::default())[0].1, Reply::NxDomain);
}

#[tokio::test]
async fn lifecycle_through_manifest_files() {
    run(FeedKind::Files).await;
}

#[tokio::test]
async fn lifecycle_through_a_watch_stream() {
    run(FeedKind::Stream).await;
}

#[tokio::test]
async fn lifecycle_through_the_kube_api() {
    run(FeedKind::Kube).await;
}
