//! The Kubernetes API feed against the fake API server: kube-rs's real client and watcher,
//! over loopback HTTP, asserting the events each source sends.

use std::collections::{HashMap, VecDeque};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use stsdns::feed::event::{Event, SourceEvent};
use stsdns::feed::kube::{self as kube_feed, ENDPOINT_SLICES, PODS, SERVICES, STATEFUL_SETS};
use stsdns::model::{Kind, Object};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::fake_api::{FakeApi, FaultKind};
use crate::harness::{TIMEOUT, init_tracing};

/// The kube feed running against a fake API, with its events sorted by source.
struct Running {
    rx: mpsc::Receiver<SourceEvent>,
    pending: HashMap<String, VecDeque<Event>>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    fn start(api: &FakeApi) -> Self {
        init_tracing();
        let (tx, rx) = mpsc::channel(64);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(kube_feed::run(api.client(), tx, shutdown.clone()));
        Self {
            rx,
            pending: HashMap::new(),
            shutdown,
            task,
        }
    }

    /// The next event of `source`, keeping other sources' events for later.
    async fn next(&mut self, source: &str) -> Event {
        if let Some(event) = self.pending.get_mut(source).and_then(VecDeque::pop_front) {
            return event;
        }
        loop {
            let received = tokio::time::timeout(TIMEOUT, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for an event from {source}"))
                .expect("the feed runs until shut down");
            if received.source.as_str() == source {
                return received.event;
            }
            self.pending
                .entry(received.source.to_string())
                .or_default()
                .push_back(received.event);
        }
    }

    /// The events of `source` up to and including the first that `last` accepts, described.
    async fn until(&mut self, source: &str, last: impl Fn(&Event) -> bool) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let event = self.next(source).await;
            seen.push(describe(&event));
            if last(&event) {
                return seen;
            }
        }
    }

    /// The events of `source` up to its next `InitDone`.
    async fn list(&mut self, source: &str) -> Vec<String> {
        self.until(source, |e| *e == Event::InitDone).await
    }

    /// Waits for the first full list of every source.
    async fn all_listed(&mut self) {
        for source in kube_feed::sources() {
            self.list(source.as_str()).await;
        }
    }

    /// Stops the feed and checks that it ends promptly.
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(TIMEOUT, self.task)
            .await
            .expect("the feed stops when cancelled")
            .expect("the feed task does not panic");
    }
}

/// `Init`, `InitApply Pod default/web-0`, `Delete Pod default/web-0`, `Problem Pod default/bad`.
fn describe(event: &Event) -> String {
    match event {
        Event::Init => "Init".into(),
        Event::InitDone => "InitDone".into(),
        Event::InitApply(object, _) => format!("InitApply {}", object.reference()),
        Event::Apply(object, _) => format!("Apply {}", object.reference()),
        Event::Delete(reference, _) => format!("Delete {reference}"),
        Event::Problem(problem) => format!("Problem {}", problem.object),
    }
}

fn pod(name: &str, ip: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"hostname": name, "subdomain": "web", "containers": [{"name": "web"}]},
        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]}})
}

fn service(name: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": "None", "selector": {"app": name},
                 "ports": [{"name": "http", "port": 80}]}})
}

fn endpoint_slice(name: &str, service: &str, ip: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "default",
                        "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]})
}

fn statefulset(name: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "default"},
        "spec": {"serviceName": name, "replicas": 2,
                 "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": name}]}}}})
}

/// One object of each kind, and two pods.
fn cluster(api: &FakeApi) {
    api.apply(Kind::Service, service("web"));
    api.apply(
        Kind::EndpointSlice,
        endpoint_slice("web-abc", "web", "10.0.0.1"),
    );
    api.apply(Kind::Pod, pod("web-1", "10.0.0.2"));
    api.apply(Kind::Pod, pod("web-0", "10.0.0.1"));
    api.apply(Kind::StatefulSet, statefulset("web"));
}

#[tokio::test]
async fn initial_lists_cover_all_four_kinds() {
    let api = FakeApi::start().await;
    cluster(&api);
    let mut feed = Running::start(&api);

    assert_eq!(
        feed.list(SERVICES).await,
        ["Init", "InitApply Service default/web", "InitDone"]
    );
    assert_eq!(
        feed.list(ENDPOINT_SLICES).await,
        [
            "Init",
            "InitApply EndpointSlice default/web-abc",
            "InitDone"
        ]
    );
    assert_eq!(
        feed.list(PODS).await,
        [
            "Init",
            "InitApply Pod default/web-0",
            "InitApply Pod default/web-1",
            "InitDone"
        ]
    );
    assert_eq!(
        feed.list(STATEFUL_SETS).await,
        ["Init", "InitApply StatefulSet default/web", "InitDone"]
    );
    feed.stop().await;
    api.stop().await;
}

#[tokio::test]
async fn objects_are_cut_down_to_the_model() {
    let api = FakeApi::start().await;
    api.apply(Kind::Pod, pod("web-0", "10.0.0.1"));
    let mut feed = Running::start(&api);

    assert_eq!(feed.next(PODS).await, Event::Init);
    let Event::InitApply(Object::Pod(pod), origin) = feed.next(PODS).await else {
        panic!("expected the pod")
    };
    assert_eq!(*pod.ips, ["10.0.0.1".parse::<std::net::IpAddr>().unwrap()]);
    assert!(pod.ready);
    assert_eq!(
        pod.hostname.as_ref().map(|h| h.to_string()).as_deref(),
        Some("web-0")
    );
    assert_eq!(pod.subdomain.as_deref(), Some("web"));
    assert_eq!(origin.to_string(), PODS);
    feed.stop().await;
    api.stop().await;
}

#[tokio::test]
async fn pod_changes_arrive_as_apply_and_delete() {
    let api = FakeApi::start().await;
    let mut feed = Running::start(&api);
    feed.all_listed().await;

    api.apply(Kind::Pod, pod("web-0", "10.0.0.1"));
    let Event::Apply(Object::Pod(added), _) = feed.next(PODS).await else {
        panic!("expected ADDED as Apply")
    };
    assert_eq!(
        *added.ips,
        ["10.0.0.1".parse::<std::net::IpAddr>().unwrap()]
    );

    api.apply(Kind::Pod, pod("web-0", "10.0.0.9"));
    let Event::Apply(Object::Pod(modified), _) = feed.next(PODS).await else {
        panic!("expected MODIFIED as Apply")
    };
    assert_eq!(
        *modified.ips,
        ["10.0.0.9".parse::<std::net::IpAddr>().unwrap()]
    );

    assert!(api.delete(Kind::Pod, "default", "web-0"));
    assert_eq!(
        feed.until(PODS, |_| true).await,
        ["Delete Pod default/web-0"]
    );

    // Other kinds flow the same way, each under its own source.
    api.apply(Kind::Service, service("db"));
    assert_eq!(
        feed.until(SERVICES, |_| true).await,
        ["Apply Service default/db"]
    );
    feed.stop().await;
    api.stop().await;
}

#[tokio::test]
async fn expired_history_makes_every_kind_relist() {
    let api = FakeApi::start().await;
    cluster(&api);
    let mut feed = Running::start(&api);
    feed.all_listed().await;

    // While the watches are down, web-1 goes, web-2 comes, and history is compacted: the
    // reconnecting watch from the old resourceVersion gets 410 Gone and kube relists.
    api.end_watches();
    assert!(api.delete(Kind::Pod, "default", "web-1"));
    api.apply(Kind::Pod, pod("web-2", "10.0.0.3"));
    api.expire_history();

    assert_eq!(
        feed.list(PODS).await,
        [
            "Init",
            "InitApply Pod default/web-0",
            "InitApply Pod default/web-2",
            "InitDone"
        ]
    );
    assert_eq!(
        feed.list(SERVICES).await,
        ["Init", "InitApply Service default/web", "InitDone"]
    );
    assert!(api.stats().gone_served >= 1);

    // And the new watch goes on from the relist.
    api.apply(Kind::Pod, pod("web-3", "10.0.0.4"));
    assert_eq!(
        feed.until(PODS, |_| true).await,
        ["Apply Pod default/web-3"]
    );
    feed.stop().await;
    api.stop().await;
}

#[tokio::test]
async fn dropped_watch_reconnects_and_replays_what_it_missed() {
    let api = FakeApi::start().await;
    cluster(&api);
    let mut feed = Running::start(&api);
    feed.all_listed().await;
    api.wait_for("four open watches", |s| s.open_watches == 4)
        .await;

    // Cut mid-stream; changes made before the client is back are replayed from history,
    // without a relist.
    api.drop_watches();
    api.apply(Kind::Pod, pod("web-2", "10.0.0.3"));
    assert!(api.delete(Kind::Pod, "default", "web-0"));

    assert_eq!(
        feed.until(PODS, |e| matches!(e, Event::Delete(..))).await,
        ["Apply Pod default/web-2", "Delete Pod default/web-0"]
    );
    api.wait_for("the watches to reconnect", |s| {
        s.watches >= 8 && s.open_watches == 4
    })
    .await;
    api.apply(Kind::Pod, pod("web-3", "10.0.0.4"));
    assert_eq!(
        feed.until(PODS, |_| true).await,
        ["Apply Pod default/web-3"]
    );
    feed.stop().await;
    api.stop().await;
}

#[tokio::test]
async fn server_errors_during_watch_are_retried() {
    let api = FakeApi::start().await;
    cluster(&api);
    let mut feed = Running::start(&api);
    feed.all_listed().await;

    // The watches end; two of the four reconnects get a 500 and retry after a backoff.
    api.fail_next(2, FaultKind::Status500);
    api.end_watches();
    api.apply(Kind::Pod, pod("web-2", "10.0.0.3"));
    api.apply(Kind::Service, service("db"));
    assert_eq!(
        feed.until(PODS, |_| true).await,
        ["Apply Pod default/web-2"]
    );
    assert_eq!(
        feed.until(SERVICES, |_| true).await,
        ["Apply Service default/db"]
    );
    api.wait_for("the faults to be served", |s| s.faults_served == 2)
        .await;
    feed.stop().await;
    api.stop().await;
}

#[tokio::test]
async fn failed_lists_are_retried_and_restart_with_init() {
    for fault in [FaultKind::Status500, FaultKind::Garbage] {
        let api = FakeApi::start().await;
        cluster(&api);
        // Each watcher's first list request fails; kube starts the list again.
        api.fail_next(4, fault);
        let mut feed = Running::start(&api);

        assert_eq!(
            feed.list(PODS).await,
            [
                "Init",
                "Init",
                "InitApply Pod default/web-0",
                "InitApply Pod default/web-1",
                "InitDone"
            ],
            "{fault:?}"
        );
        for source in [SERVICES, ENDPOINT_SLICES, STATEFUL_SETS] {
            let events = feed.list(source).await;
            assert_eq!(
                events.iter().filter(|e| *e == "Init").count(),
                2,
                "{events:?}"
            );
        }
        assert_eq!(api.stats().faults_served, 4);
        feed.stop().await;
        api.stop().await;
    }
}

#[tokio::test]
async fn garbage_on_a_watch_is_retried() {
    let api = FakeApi::start().await;
    let mut feed = Running::start(&api);
    feed.all_listed().await;

    api.fail_next(1, FaultKind::Garbage);
    api.end_watches();
    api.wait_for("the garbage to be served", |s| s.faults_served == 1)
        .await;
    api.apply(Kind::Pod, pod("web-0", "10.0.0.1"));
    assert_eq!(
        feed.until(PODS, |_| true).await,
        ["Apply Pod default/web-0"]
    );
    feed.stop().await;
    api.stop().await;
}

#[tokio::test]
async fn malformed_object_becomes_a_problem_and_the_rest_continue() {
    let api = FakeApi::start().await;
    api.apply(Kind::Pod, pod("bad", "10.0.0.999"));
    api.apply(Kind::Pod, pod("web-0", "10.0.0.1"));
    let mut feed = Running::start(&api);

    assert_eq!(
        feed.list(PODS).await,
        [
            "Init",
            "Problem Pod default/bad",
            "InitApply Pod default/web-0",
            "InitDone"
        ]
    );

    api.apply(Kind::Pod, pod("worse", "not-an-ip"));
    api.apply(Kind::Pod, pod("web-1", "10.0.0.2"));
    let Event::Problem(problem) = feed.next(PODS).await else {
        panic!("expected a problem")
    };
    assert_eq!(problem.object, "Pod default/worse");
    assert!(problem.message.contains("not-an-ip"), "{}", problem.message);
    assert_eq!(problem.origin.map(|o| o.to_string()).as_deref(), Some(PODS));
    assert_eq!(
        feed.until(PODS, |_| true).await,
        ["Apply Pod default/web-1"]
    );

    // A bad object can still be deleted: a deletion needs only its name.
    assert!(api.delete(Kind::Pod, "default", "worse"));
    assert_eq!(
        feed.until(PODS, |_| true).await,
        ["Delete Pod default/worse"]
    );
    feed.stop().await;
    api.stop().await;
}

#[tokio::test]
async fn bookmarks_move_the_watch_without_events() {
    let api = FakeApi::start().await;
    cluster(&api);
    let mut feed = Running::start(&api);
    feed.all_listed().await;
    api.wait_for("four open watches", |s| s.open_watches == 4)
        .await;

    api.bookmark();
    api.apply(Kind::Pod, pod("web-2", "10.0.0.3"));
    assert_eq!(
        feed.until(PODS, |_| true).await,
        ["Apply Pod default/web-2"]
    );
    feed.stop().await;
    api.stop().await;
}

/// The fake pages lists as the API server does: kube's own client follows `continue`.
#[tokio::test]
async fn fake_api_pages_lists_and_serves_namespaces() {
    let api = FakeApi::start().await;
    for i in 0..5 {
        api.apply(Kind::Pod, pod(&format!("web-{i}"), "10.0.0.1"));
    }
    api.apply(
        Kind::Pod,
        json!({"metadata": {"name": "other", "namespace": "prod"}, "spec": {"containers": []}}),
    );
    let client = api.client();

    let pods: Api<Pod> = Api::all(client.clone());
    let first = pods.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().expect("a continue token");
    let second = pods
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await
        .unwrap();
    let names: Vec<String> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        ["web-0", "web-1", "web-2", "web-3", "web-4", "other"]
    );
    assert!(second.metadata.continue_.is_none());

    let prod: Api<Pod> = Api::namespaced(client.clone(), "prod");
    let listed = prod.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    let one = prod.get("other").await.unwrap();
    assert_eq!(one.metadata.resource_version.as_deref(), Some("106"));

    // A continue token from before a compaction is gone.
    api.expire_history();
    let err = pods
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .expect_err("an expired continue token fails");
    assert!(
        err.to_string().contains("410") || err.to_string().contains("too old"),
        "{err}"
    );
    api.stop().await;
}

/// `client()` reads a kubeconfig and picks the context asked for; the feed then runs through it.
#[tokio::test]
async fn client_from_a_kubeconfig_context() {
    let api = FakeApi::start().await;
    api.apply(Kind::Pod, pod("web-0", "10.0.0.1"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: elsewhere\n\
             clusters:\n- name: fake\n  cluster:\n    server: {}\n\
             - name: gone\n  cluster:\n    server: http://127.0.0.1:1\n\
             users:\n- name: nobody\n  user: {{}}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: nobody\n\
             - name: elsewhere\n  context:\n    cluster: gone\n    user: nobody\n",
            api.url()
        ),
    )
    .unwrap();

    let client = kube_feed::client(Some(path.clone()), Some("fake".into()))
        .await
        .expect("a client for context fake");
    let (tx, mut rx) = mpsc::channel(16);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(kube_feed::run(client, tx, shutdown.clone()));
    let pods = loop {
        let event = tokio::time::timeout(TIMEOUT, rx.recv())
            .await
            .expect("an event in time")
            .expect("the feed runs");
        if event.source.as_str() == PODS
            && let Event::InitApply(object, _) = event.event
        {
            break object;
        }
    };
    assert_eq!(pods.reference().to_string(), "Pod default/web-0");
    shutdown.cancel();
    tokio::time::timeout(TIMEOUT, task).await.unwrap().unwrap();

    let err = kube_feed::client(Some(path.clone()), Some("nope".into()))
        .await
        .err()
        .expect("no such context");
    assert!(err.to_string().contains("kubeconfig"), "{err}");
    let missing = dir.path().join("missing");
    let err = kube_feed::client(Some(missing.clone()), None)
        .await
        .err()
        .expect("no such file");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
    api.stop().await;
}
