//! A fake Kubernetes API server on loopback that speaks the real list/watch HTTP protocol for
//! Services, EndpointSlices, Pods and StatefulSets, so kube-rs's own client and watcher can be
//! tested without a cluster (none can be installed on our machines).
//!
//! What it does like the API server:
//! - `GET /api/v1/{services,pods}`, `/apis/discovery.k8s.io/v1/endpointslices`,
//!   `/apis/apps/v1/statefulsets`, and the namespaced forms `…/namespaces/{ns}/{plural}` (plus
//!   `…/{plural}/{name}` for one object). Lists are `{"kind":"PodList","metadata":
//!   {"resourceVersion":"N"},"items":[…]}` with items in namespace/name order and without
//!   `apiVersion`/`kind`, as the API server sends them; `limit` and `continue` page them.
//! - Every change takes the next value of one global resourceVersion counter, written into the
//!   object's `metadata.resourceVersion`.
//! - `?watch=true&resourceVersion=N` answers with a chunked body of JSON lines
//!   `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK","object":{…}}`: the changes after N, then every
//!   new change as it happens, until `timeoutSeconds` or the test ends the watch.
//!   `resourceVersion=0` starts with a synthetic ADDED per object; none starts from now.
//! - After [`FakeApi::expire_history`], a watch from an older resourceVersion gets an `ERROR`
//!   event with a `Status` of code 410 (reason `Expired`), and a `continue` token from before
//!   gets an HTTP 410, which is what makes clients relist.
//!
//! Faults for tests: [`FakeApi::drop_watches`] cuts every open watch mid-stream (the client sees
//! a broken chunked body), [`FakeApi::end_watches`] ends them cleanly (as `timeoutSeconds`
//! does), and [`FakeApi::fail_next`] answers the next requests with a 500 `Status` or with a
//! body that is not JSON.
//!
//! Not modelled: label and field selectors, `resourceVersionMatch` (lists are always the
//! latest state, which satisfies `NotOlderThan`), streaming lists (`sendInitialEvents`), writes,
//! authentication and TLS. A list continued after changes shows the current objects rather than
//! a snapshot at the first page's resourceVersion.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use stsdns::model::Kind;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::harness::TIMEOUT;

/// How the next requests fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// HTTP 500 with a `Status` body (reason `InternalError`).
    Status500,
    /// HTTP 200, `application/json`, with a body that is not JSON.
    Garbage,
}

/// What the server has seen, for tests that must wait for the client to act.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Every request.
    pub requests: u64,
    /// List requests answered (a page each).
    pub lists: u64,
    /// Watch requests answered with a stream (including those that got a 410 event).
    pub watches: u64,
    /// Watches open now.
    pub open_watches: usize,
    /// Requests answered with an injected fault.
    pub faults_served: u64,
    /// Watches and lists answered with 410 Gone.
    pub gone_served: u64,
}

/// The resource a path names.
#[derive(Debug, Clone, Copy)]
struct Resource {
    kind: Kind,
    /// `/api/v1` or `/apis/<group>/<version>`.
    prefix: &'static str,
    plural: &'static str,
    api_version: &'static str,
}

const RESOURCES: [Resource; 4] = [
    Resource {
        kind: Kind::Service,
        prefix: "/api/v1",
        plural: "services",
        api_version: "v1",
    },
    Resource {
        kind: Kind::Pod,
        prefix: "/api/v1",
        plural: "pods",
        api_version: "v1",
    },
    Resource {
        kind: Kind::EndpointSlice,
        prefix: "/apis/discovery.k8s.io/v1",
        plural: "endpointslices",
        api_version: "discovery.k8s.io/v1",
    },
    Resource {
        kind: Kind::StatefulSet,
        prefix: "/apis/apps/v1",
        plural: "statefulsets",
        api_version: "apps/v1",
    },
];

fn resource(kind: Kind) -> Resource {
    RESOURCES
        .into_iter()
        .find(|r| r.kind == kind)
        .expect("every kind has a resource")
}

/// What a watch stream is told.
enum Message {
    /// One JSON line.
    Line(Bytes),
    /// End the response cleanly.
    End,
    /// Break the response off mid-stream.
    Drop,
}

/// One open watch.
struct Watcher {
    namespace: Option<String>,
    tx: mpsc::UnboundedSender<Message>,
}

/// One change in a kind's history.
struct Change {
    resource_version: u64,
    namespace: String,
    line: Bytes,
}

/// One kind's objects, history and watchers.
#[derive(Default)]
struct Store {
    /// By (namespace, name); each with apiVersion, kind and resourceVersion set.
    objects: BTreeMap<(String, String), Value>,
    history: Vec<Change>,
    watchers: Vec<Watcher>,
}

impl Store {
    fn record(&mut self, resource_version: u64, namespace: &str, line: Bytes) {
        for watcher in &self.watchers {
            if watcher
                .namespace
                .as_deref()
                .is_none_or(|ns| ns == namespace)
            {
                // A closed receiver is a client that went away; it is pruned below.
                let _ = watcher.tx.send(Message::Line(line.clone()));
            }
        }
        self.watchers.retain(|w| !w.tx.is_closed());
        self.history.push(Change {
            resource_version,
            namespace: namespace.to_owned(),
            line,
        });
    }
}

struct State {
    /// The last resourceVersion handed out.
    resource_version: u64,
    /// Watches and continue tokens from before this resourceVersion get 410 Gone.
    oldest: u64,
    stores: HashMap<Kind, Store>,
    faults: VecDeque<FaultKind>,
}

struct Shared {
    state: Mutex<State>,
    stats: watch::Sender<Stats>,
}

/// The fake API server; it stops when dropped or with [`FakeApi::stop`].
pub struct FakeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

impl FakeApi {
    /// Starts the server on 127.0.0.1 with an OS-chosen port and no objects.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("bound address");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                resource_version: 100,
                oldest: 0,
                stores: HashMap::new(),
                faults: VecDeque::new(),
            }),
            stats: watch::Sender::new(Stats::default()),
        });
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(listener, shared.clone(), shutdown.clone()));
        Self {
            addr,
            shared,
            shutdown,
            task: Some(task),
        }
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube client for this server: plain HTTP, no authentication.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url().parse().expect("valid URL"));
        kube::Client::try_from(config).expect("client for the fake API")
    }

    /// Stops accepting and cuts every open connection.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(TIMEOUT, task)
                .await
                .expect("fake API stops")
                .expect("fake API task");
        }
    }

    /// Creates or replaces an object (ADDED or MODIFIED), as `kubectl apply` would. Sets
    /// `apiVersion`, `kind`, `metadata.namespace` (default `default`) and
    /// `metadata.resourceVersion`; returns the new resourceVersion.
    pub fn apply(&self, kind: Kind, mut object: Value) -> u64 {
        let resource = resource(kind);
        let map = object.as_object_mut().expect("an object is a JSON object");
        map.insert("apiVersion".into(), resource.api_version.into());
        map.insert("kind".into(), kind.as_str().into());
        let metadata = map
            .entry("metadata")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("metadata is an object");
        let name = metadata
            .get("name")
            .and_then(Value::as_str)
            .expect("metadata.name")
            .to_owned();
        let namespace = metadata
            .entry("namespace")
            .or_insert_with(|| "default".into())
            .as_str()
            .expect("metadata.namespace is a string")
            .to_owned();

        let mut state = self.shared.state.lock().unwrap();
        state.resource_version += 1;
        let rv = state.resource_version;
        metadata.insert("resourceVersion".into(), rv.to_string().into());
        let store = state.stores.entry(kind).or_default();
        let key = (namespace.clone(), name);
        let kind_of_change = if store.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        let line = watch_line(kind_of_change, &object);
        store.objects.insert(key, object);
        store.record(rv, &namespace, line);
        rv
    }

    /// Deletes an object (DELETED, carrying the object with the deletion's resourceVersion);
    /// returns whether it existed.
    pub fn delete(&self, kind: Kind, namespace: &str, name: &str) -> bool {
        let mut state = self.shared.state.lock().unwrap();
        let Some(mut object) = state
            .stores
            .entry(kind)
            .or_default()
            .objects
            .remove(&(namespace.to_owned(), name.to_owned()))
        else {
            return false;
        };
        state.resource_version += 1;
        let rv = state.resource_version;
        object["metadata"]["resourceVersion"] = rv.to_string().into();
        let line = watch_line("DELETED", &object);
        state
            .stores
            .entry(kind)
            .or_default()
            .record(rv, namespace, line);
        true
    }

    /// Compacts the history: a watch from any resourceVersion handed out so far gets a 410
    /// `ERROR` event, and a `continue` token from before gets HTTP 410. Open watches go on.
    pub fn expire_history(&self) {
        let mut state = self.shared.state.lock().unwrap();
        state.resource_version += 1;
        state.oldest = state.resource_version;
        for store in state.stores.values_mut() {
            store.history.clear();
        }
    }

    /// Cuts every open watch mid-stream: the client sees a broken connection.
    pub fn drop_watches(&self) {
        self.tell_watchers(|| Message::Drop);
    }

    /// Ends every open watch cleanly, as the API server does when `timeoutSeconds` expires.
    pub fn end_watches(&self) {
        self.tell_watchers(|| Message::End);
    }

    /// Sends a BOOKMARK with the current resourceVersion on every open watch.
    pub fn bookmark(&self) {
        let state = self.shared.state.lock().unwrap();
        let rv = state.resource_version.to_string();
        for (kind, store) in &state.stores {
            let object = json!({"apiVersion": resource(*kind).api_version, "kind": kind.as_str(),
                "metadata": {"resourceVersion": rv}});
            let line = watch_line("BOOKMARK", &object);
            for watcher in &store.watchers {
                let _ = watcher.tx.send(Message::Line(line.clone()));
            }
        }
    }

    /// Answers the next `n` requests (of any resource, list or watch) with `fault`.
    pub fn fail_next(&self, n: usize, fault: FaultKind) {
        let mut state = self.shared.state.lock().unwrap();
        state.faults.extend(std::iter::repeat_n(fault, n));
    }

    /// What the server has seen so far.
    pub fn stats(&self) -> Stats {
        self.shared.stats.borrow().clone()
    }

    /// Waits (within [`TIMEOUT`]) until the stats satisfy `done`.
    pub async fn wait_for(&self, what: &str, done: impl FnMut(&Stats) -> bool) -> Stats {
        let mut rx = self.shared.stats.subscribe();
        tokio::time::timeout(TIMEOUT, rx.wait_for(done))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}: {:?}", self.stats()))
            .expect("stats sender lives as long as the server")
            .clone()
    }

    fn tell_watchers(&self, message: impl Fn() -> Message) {
        let mut state = self.shared.state.lock().unwrap();
        for store in state.stores.values_mut() {
            for watcher in store.watchers.drain(..) {
                let _ = watcher.tx.send(message());
            }
        }
    }
}

/// `{"type": …, "object": …}` and a newline.
fn watch_line(kind_of_change: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind_of_change, "object": object}))
        .expect("JSON values serialize");
    line.push(b'\n');
    Bytes::from(line)
}

/// The accept loop; connections are cut when it ends.
async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = accepted else { continue };
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| handle(shared.clone(), request));
            // A client that hangs up mid-response is normal for watches.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
    connections.shutdown().await;
}

/// Splits a query string; the clients we serve send no characters that need decoding.
fn query(request: &Request<Incoming>) -> HashMap<String, String> {
    request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Which resource, namespace and object a path names.
fn route(path: &str) -> Option<(Resource, Option<String>, Option<String>)> {
    RESOURCES.into_iter().find_map(|resource| {
        let rest = path.strip_prefix(resource.prefix)?;
        let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        match segments.as_slice() {
            [plural] if *plural == resource.plural => Some((resource, None, None)),
            ["namespaces", ns, plural] if *plural == resource.plural => {
                Some((resource, Some((*ns).to_owned()), None))
            }
            ["namespaces", ns, plural, name] if *plural == resource.plural => {
                Some((resource, Some((*ns).to_owned()), Some((*name).to_owned())))
            }
            _ => None,
        }
    })
}

fn full(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(
            Full::new(Bytes::from(body))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .expect("valid response")
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    full(
        status,
        serde_json::to_vec(value).expect("JSON values serialize"),
    )
}

/// A `Status` object, as the API server sends with every error.
fn status(code: StatusCode, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16()})
}

fn error_response(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    json_response(code, &status(code, reason, message))
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    shared.stats.send_modify(|s| s.requests += 1);
    if request.method() != Method::GET {
        return Ok(error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the fake API only reads",
        ));
    }
    let fault = shared.state.lock().unwrap().faults.pop_front();
    if let Some(fault) = fault {
        shared.stats.send_modify(|s| s.faults_served += 1);
        return Ok(match fault {
            FaultKind::Status500 => error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "an error on the server (\"injected fault\") has prevented the request from succeeding",
            ),
            FaultKind::Garbage => full(StatusCode::OK, b"<html>\x00 this is {not JSON".to_vec()),
        });
    }
    let Some((resource, namespace, name)) = route(request.uri().path()) else {
        return Ok(error_response(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        ));
    };
    let query = query(&request);
    let response = if let Some(name) = name {
        get(&shared, resource, namespace.unwrap_or_default(), name)
    } else if matches!(query.get("watch").map(String::as_str), Some("true" | "1")) {
        watch(&shared, resource, namespace, &query)
    } else {
        list(&shared, resource, namespace, &query)
    };
    Ok(response)
}

fn get(shared: &Shared, resource: Resource, namespace: String, name: String) -> Response<Body> {
    let state = shared.state.lock().unwrap();
    let object = state
        .stores
        .get(&resource.kind)
        .and_then(|s| s.objects.get(&(namespace, name.clone())));
    match object {
        Some(object) => json_response(StatusCode::OK, object),
        None => error_response(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{} \"{name}\" not found", resource.plural),
        ),
    }
}

/// One page of a list. The continue token is `<list resourceVersion>.<namespace>.<name>` of
/// the last item served (namespaces hold no dots; names may).
fn list(
    shared: &Shared,
    resource: Resource,
    namespace: Option<String>,
    query: &HashMap<String, String>,
) -> Response<Body> {
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|&l| l > 0);
    let state = shared.state.lock().unwrap();
    let (list_rv, after) = match query.get("continue").filter(|c| !c.is_empty()) {
        None => (state.resource_version, None),
        Some(token) => {
            let parsed = token.split_once('.').and_then(|(rv, key)| {
                let (ns, name) = key.split_once('.')?;
                Some((rv.parse::<u64>().ok()?, (ns.to_owned(), name.to_owned())))
            });
            match parsed {
                Some((rv, _)) if rv < state.oldest => {
                    drop(state);
                    shared.stats.send_modify(|s| s.gone_served += 1);
                    return error_response(
                        StatusCode::GONE,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent \
                         list result. You can start a new list without the continue parameter.",
                    );
                }
                Some((rv, key)) => (rv, Some(key)),
                None => {
                    return error_response(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "continue key is not valid",
                    );
                }
            }
        }
    };
    let empty = BTreeMap::new();
    let objects = state
        .stores
        .get(&resource.kind)
        .map_or(&empty, |s| &s.objects);
    let mut matching = objects
        .iter()
        .filter(|((ns, _), _)| namespace.as_ref().is_none_or(|want| want == ns))
        .filter(|(key, _)| after.as_ref().is_none_or(|after| *key > after));
    let mut items = Vec::new();
    let mut last = None;
    for (key, object) in matching.by_ref().take(limit.unwrap_or(usize::MAX)) {
        let mut item = object.clone();
        if let Some(map) = item.as_object_mut() {
            // List items carry no apiVersion/kind: the list's kind says it.
            map.remove("apiVersion");
            map.remove("kind");
        }
        items.push(item);
        last = Some(key.clone());
    }
    let remaining = matching.count();
    drop(state);

    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if remaining > 0
        && let Some((ns, name)) = last
    {
        metadata["continue"] = format!("{list_rv}.{ns}.{name}").into();
        metadata["remainingItemCount"] = remaining.into();
    }
    shared.stats.send_modify(|s| s.lists += 1);
    json_response(
        StatusCode::OK,
        &json!({"apiVersion": resource.api_version,
            "kind": format!("{}List", resource.kind.as_str()),
            "metadata": metadata, "items": items}),
    )
}

/// Counts an open watch while its body lives.
struct OpenWatch(Arc<Shared>);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.stats.send_modify(|s| s.open_watches -= 1);
    }
}

/// A watch response: history after the asked resourceVersion, then live changes.
fn watch(
    shared: &Arc<Shared>,
    resource: Resource,
    namespace: Option<String>,
    query: &HashMap<String, String>,
) -> Response<Body> {
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let (tx, rx) = mpsc::unbounded_channel();
    let in_namespace = |ns: &str| namespace.as_deref().is_none_or(|want| want == ns);

    let mut state = shared.state.lock().unwrap();
    let asked = query.get("resourceVersion").map(String::as_str);
    let mut gone = false;
    match asked {
        None | Some("") => {}
        Some("0") => {
            // "Any version": start with the current objects, as the watch cache does.
            if let Some(store) = state.stores.get(&resource.kind) {
                for ((ns, _), object) in &store.objects {
                    if in_namespace(ns) {
                        let _ = tx.send(Message::Line(watch_line("ADDED", object)));
                    }
                }
            }
        }
        Some(text) => {
            let from: u64 = text.parse().unwrap_or(0);
            if from < state.oldest {
                let error = status(
                    StatusCode::GONE,
                    "Expired",
                    &format!("too old resource version: {from} ({})", state.oldest),
                );
                let _ = tx.send(Message::Line(watch_line("ERROR", &error)));
                let _ = tx.send(Message::End);
                gone = true;
            } else if let Some(store) = state.stores.get(&resource.kind) {
                for change in &store.history {
                    if change.resource_version > from && in_namespace(&change.namespace) {
                        let _ = tx.send(Message::Line(change.line.clone()));
                    }
                }
            }
        }
    }
    if !gone {
        state
            .stores
            .entry(resource.kind)
            .or_default()
            .watchers
            .push(Watcher {
                namespace: namespace.clone(),
                tx,
            });
    }
    drop(state);
    shared.stats.send_modify(|s| {
        s.watches += 1;
        s.open_watches += 1;
        if gone {
            s.gone_served += 1;
        }
    });

    struct Body {
        rx: mpsc::UnboundedReceiver<Message>,
        deadline: Instant,
        done: bool,
        _open: OpenWatch,
    }
    let body = Body {
        rx,
        deadline,
        done: false,
        _open: OpenWatch(shared.clone()),
    };
    let frames = stream::unfold(body, |mut body| async move {
        if body.done {
            return None;
        }
        match tokio::time::timeout_at(body.deadline, body.rx.recv()).await {
            Ok(Some(Message::Line(line))) => Some((Ok(Frame::data(line)), body)),
            Ok(Some(Message::Drop)) => {
                body.done = true;
                // An error from the body makes hyper close the connection mid-chunk.
                let cut = std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "watch cut by the test",
                );
                Some((Err(cut), body))
            }
            Ok(Some(Message::End) | None) | Err(_) => None,
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(StreamBody::new(frames).boxed_unsync())
        .expect("valid response")
}
