//! The Kubernetes API feed: kube-rs watchers on Services, EndpointSlices, Pods and StatefulSets.
//!
//! Each kind has its own watcher and its own [`SourceId`] (`kube:services`, `kube:endpointslices`,
//! `kube:pods`, `kube:statefulsets`), so a relist of one kind (after a `410 Gone`) replaces only
//! that kind's objects. kube's [`watcher::Event`] maps one to one onto our [`Event`]; every
//! object is cut down to the model (`model::convert`) on the way in, so no API struct outlives
//! the event it came in.
//!
//! An object that cannot be used becomes an [`Event::Problem`] naming it, and the watch goes
//! on. A failed request (5xx, an answer that is not JSON, 410 Gone) is logged at `warn` with the
//! source and retried with kube's default backoff (800 ms doubling to 30 s, with jitter); after
//! a 410 kube relists, and the new `Init`…`InitDone` is forwarded like the first. A watch cut
//! mid-stream is not an error to kube: it logs `eof in poll` and resumes at once from the last
//! resourceVersion it saw, so nothing is missed and nothing is relisted.
//!
//! This module reads the API and sends events; it never touches the model's state or the
//! server. Its neighbours: `app.rs` spawns [`run`], the reconciler consumes the events.

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use kube::Resource;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::event::{Event, EventSender, SourceEvent, SourceId};
use crate::model::convert::{self, ConvertError};
use crate::model::diagnose::{Problem, Severity};
use crate::model::{Interner, Kind, Namespace, Object, ObjectKey, ObjectRef, Origin};

/// Why a client for the Kubernetes API could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig given with `--kubeconfig` could not be read or used.
    #[error("cannot use kubeconfig {path}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What kube said.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The default kubeconfig (`KUBECONFIG` or `~/.kube/config`) could not be used with the
    /// context asked for.
    #[error(
        "cannot use context {context:?} of the default kubeconfig (KUBECONFIG or ~/.kube/config)"
    )]
    Context {
        /// The context.
        context: String,
        /// What kube said.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// Neither an in-cluster service account nor a kubeconfig was found.
    #[error("no Kubernetes configuration: not running in a pod, and no usable kubeconfig")]
    Infer(#[source] kube::config::InferConfigError),
    /// The configuration was found but no client could be built from it (TLS, auth plugin).
    #[error("cannot build a Kubernetes client")]
    Client(#[source] kube::Error),
}

/// Shorthand for this module's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The source id of the Service watcher.
pub const SERVICES: &str = "kube:services";
/// The source id of the EndpointSlice watcher.
pub const ENDPOINT_SLICES: &str = "kube:endpointslices";
/// The source id of the Pod watcher.
pub const PODS: &str = "kube:pods";
/// The source id of the StatefulSet watcher.
pub const STATEFUL_SETS: &str = "kube:statefulsets";

/// The four sources this feed sends as: every one must deliver its first full list
/// (`InitDone`) before the state is complete.
pub fn sources() -> Vec<SourceId> {
    [SERVICES, ENDPOINT_SLICES, PODS, STATEFUL_SETS]
        .into_iter()
        .map(SourceId::new)
        .collect()
}

/// A client for the API server.
///
/// With `kubeconfig`, that file is used (with `context`, or its current context). Without it,
/// but with `context`, the default kubeconfig (`KUBECONFIG`, else `~/.kube/config`) is used
/// with that context. With neither, kube's inference applies: the default kubeconfig when there
/// is one, else the pod's service account (`KUBERNETES_SERVICE_HOST` and
/// `/var/run/secrets/kubernetes.io/serviceaccount/`), which is what a Deployment in the cluster
/// gets.
pub async fn client(kubeconfig: Option<PathBuf>, context: Option<String>) -> Result<kube::Client> {
    let options = KubeConfigOptions {
        context: context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match (kubeconfig, context) {
        (Some(path), _) => {
            let file = Kubeconfig::read_from(&path).map_err(|source| Error::Kubeconfig {
                path: path.clone(),
                source,
            })?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|source| Error::Kubeconfig { path, source })?
        }
        (None, Some(context)) => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|source| Error::Context { context, source })?,
        (None, None) => kube::Config::infer().await.map_err(Error::Infer)?,
    };
    info!(cluster = %config.cluster_url, "connecting to the Kubernetes API");
    kube::Client::try_from(config).map_err(Error::Client)
}

/// Watches the four kinds cluster-wide and sends their events into `tx` until `shutdown` is
/// cancelled or the receiver is gone.
///
/// Watch failures never end this function: they are logged and retried with backoff. A list
/// that fails half-way is restarted, so a source may send `Init` again before its `InitDone`;
/// the receiver then drops what it buffered since the earlier `Init`.
pub async fn run(client: kube::Client, tx: EventSender, shutdown: CancellationToken) {
    info!("watching Services, EndpointSlices, Pods and StatefulSets");
    tokio::join!(
        watch::<core::Service>(
            Api::all(client.clone()),
            SERVICES,
            Kind::Service,
            |s| convert::service(s).map(Object::from),
            tx.clone(),
            shutdown.clone(),
        ),
        watch::<discovery::EndpointSlice>(
            Api::all(client.clone()),
            ENDPOINT_SLICES,
            Kind::EndpointSlice,
            |s| convert::endpoint_slice(s).map(Object::from),
            tx.clone(),
            shutdown.clone(),
        ),
        watch::<core::Pod>(
            Api::all(client.clone()),
            PODS,
            Kind::Pod,
            |p| convert::pod(p).map(Object::from),
            tx.clone(),
            shutdown.clone(),
        ),
        // The API server requires spec.selector on apps/v1, so it is always there.
        watch::<apps::StatefulSet>(
            Api::all(client),
            STATEFUL_SETS,
            Kind::StatefulSet,
            |s| convert::statefulset(s, true).map(Object::from),
            tx,
            shutdown,
        ),
    );
}

/// One kind's watch loop: kube's watcher with backoff, each event converted and sent.
async fn watch<K>(
    api: Api<K>,
    source: &'static str,
    kind: Kind,
    convert: fn(K) -> Result<Object, ConvertError>,
    tx: EventSender,
    shutdown: CancellationToken,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let span = info_span!("feed", source);
    async move {
        let mut feed = KindFeed {
            id: SourceId::new(source),
            origin: Origin {
                source: Arc::from(source),
                line: None,
            },
            kind,
            convert,
            strings: Interner::default(),
        };
        let stream = watcher(api, watcher::Config::default()).default_backoff();
        let mut stream = std::pin::pin!(stream);
        loop {
            let next = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                next = stream.next() => next,
            };
            let event = match next {
                Some(Ok(event)) => feed.event(event),
                Some(Err(err)) => {
                    // The source is a field too: the span is only seen at info and below.
                    warn!(source, error = %err, "watch failed; retrying with backoff");
                    continue;
                }
                // kube's watcher never ends; if it did, there is nothing left to read.
                None => break,
            };
            let event = SourceEvent {
                source: feed.id.clone(),
                event,
            };
            let sent = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                sent = tx.send(event) => sent,
            };
            if sent.is_err() {
                debug!("event receiver gone; stopping");
                break;
            }
        }
        debug!("watch stopped");
    }
    .instrument(span)
    .await;
}

/// What one watcher needs to turn kube's events into ours.
struct KindFeed<K> {
    id: SourceId,
    origin: Origin,
    kind: Kind,
    convert: fn(K) -> Result<Object, ConvertError>,
    /// Strings the objects of the list in progress share (dropped at `InitDone`, so it never
    /// outgrows one list).
    strings: Interner,
}

impl<K: Resource> KindFeed<K> {
    /// Maps one kube event onto ours, converting the object it carries.
    fn event(&mut self, event: watcher::Event<K>) -> Event {
        match event {
            watcher::Event::Init => {
                debug!("list started");
                self.strings = Interner::default();
                Event::Init
            }
            watcher::Event::InitDone => {
                info!("list complete");
                self.strings = Interner::default();
                Event::InitDone
            }
            watcher::Event::InitApply(object) => match self.object(object) {
                Ok(mut object) => {
                    object.share_strings(&mut self.strings);
                    Event::InitApply(object, self.origin.clone())
                }
                Err(problem) => Event::Problem(problem),
            },
            watcher::Event::Apply(object) => match self.object(object) {
                Ok(object) => Event::Apply(object, self.origin.clone()),
                Err(problem) => Event::Problem(problem),
            },
            // A deletion needs only the object's identity: an object whose last version could
            // not be converted must still be deletable.
            watcher::Event::Delete(object) => match self.reference(&object) {
                Ok(reference) => Event::Delete(reference, self.origin.clone()),
                Err(problem) => Event::Problem(problem),
            },
        }
    }

    /// The object cut down to the model, or a problem naming it.
    fn object(&self, object: K) -> Result<Object, Problem> {
        let name = self.describe(&object);
        (self.convert)(object).map_err(|err| self.problem(name, err.to_string()))
    }

    /// The kind, namespace and name of a deleted object.
    fn reference(&self, object: &K) -> Result<ObjectRef, Problem> {
        let meta = object.meta();
        let name = meta.name.as_deref().unwrap_or_default();
        let namespace = meta.namespace.as_deref().unwrap_or("default");
        match Namespace::new(namespace) {
            Ok(namespace) if !name.is_empty() => Ok(ObjectRef {
                kind: self.kind,
                key: ObjectKey {
                    namespace,
                    name: Arc::from(name),
                },
            }),
            Ok(_) => Err(self.problem(
                self.describe(object),
                format!("deleted {} without metadata.name", self.kind),
            )),
            Err(err) => Err(self.problem(
                self.describe(object),
                format!("deleted {}: metadata.namespace: {err}", self.kind),
            )),
        }
    }

    /// `Kind namespace/name`, from the raw metadata.
    fn describe(&self, object: &K) -> String {
        let meta = object.meta();
        format!(
            "{} {}/{}",
            self.kind,
            meta.namespace.as_deref().unwrap_or("default"),
            meta.name.as_deref().unwrap_or("<no name>")
        )
    }

    /// The problem with an object that is skipped.
    fn problem(&self, object: String, message: String) -> Problem {
        // Logged at debug: whoever receives the Problem logs it (app::log_problems) at warn.
        debug!(
            source = %self.id,
            object,
            reason = message,
            "skipped an object that cannot be used"
        );
        Problem {
            severity: Severity::Error,
            origin: Some(self.origin.clone()),
            object,
            message: format!("{message}; skipped"),
            fix: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod_feed() -> KindFeed<core::Pod> {
        KindFeed {
            id: SourceId::new(PODS),
            origin: Origin {
                source: Arc::from(PODS),
                line: None,
            },
            kind: Kind::Pod,
            convert: |p| convert::pod(p).map(Object::from),
            strings: Interner::default(),
        }
    }

    fn pod(name: &str, ip: &str) -> core::Pod {
        core::Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("prod".into()),
                ..ObjectMeta::default()
            },
            status: Some(core::PodStatus {
                pod_ip: Some(ip.into()),
                ..core::PodStatus::default()
            }),
            ..core::Pod::default()
        }
    }

    #[test]
    fn events_map_one_to_one() {
        let mut feed = pod_feed();
        assert_eq!(feed.event(watcher::Event::Init), Event::Init);
        assert_eq!(feed.event(watcher::Event::InitDone), Event::InitDone);
        let Event::InitApply(Object::Pod(p), origin) =
            feed.event(watcher::Event::InitApply(pod("web-0", "10.0.0.1")))
        else {
            panic!("expected InitApply of a Pod")
        };
        assert_eq!(p.key.to_string(), "prod/web-0");
        assert_eq!(origin.to_string(), PODS);
        assert!(matches!(
            feed.event(watcher::Event::Apply(pod("web-0", "10.0.0.2"))),
            Event::Apply(Object::Pod(_), _)
        ));
    }

    #[test]
    fn the_objects_of_a_list_share_their_strings() {
        let mut feed = pod_feed();
        feed.event(watcher::Event::Init);
        let mut namespaces = Vec::new();
        for (name, ip) in [("web-0", "10.0.0.1"), ("web-1", "10.0.0.2")] {
            let Event::InitApply(Object::Pod(p), _) =
                feed.event(watcher::Event::InitApply(pod(name, ip)))
            else {
                panic!("expected InitApply of a Pod")
            };
            namespaces.push(p.key.namespace.clone());
        }
        assert_eq!(namespaces[0], namespaces[1]);
        assert!(std::ptr::eq(namespaces[0].as_str(), namespaces[1].as_str()));
    }

    #[test]
    fn bad_object_becomes_a_problem_naming_it() {
        let mut feed = pod_feed();
        let Event::Problem(problem) = feed.event(watcher::Event::Apply(pod("web-0", "10.0.0.999")))
        else {
            panic!("expected a problem")
        };
        assert_eq!(problem.object, "Pod prod/web-0");
        assert!(
            problem.message.contains("10.0.0.999"),
            "{}",
            problem.message
        );
        assert_eq!(problem.origin.map(|o| o.to_string()).as_deref(), Some(PODS));
    }

    #[test]
    fn delete_needs_only_the_identity() {
        let mut feed = pod_feed();
        let Event::Delete(reference, _) =
            feed.event(watcher::Event::Delete(pod("web-0", "not an ip")))
        else {
            panic!("expected a delete")
        };
        assert_eq!(reference.to_string(), "Pod prod/web-0");
    }

    #[test]
    fn four_sources() {
        let ids: Vec<String> = sources().iter().map(ToString::to_string).collect();
        assert_eq!(
            ids,
            [
                "kube:services",
                "kube:endpointslices",
                "kube:pods",
                "kube:statefulsets"
            ]
        );
    }
}
