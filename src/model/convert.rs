//! Kubernetes API objects → model: the only place besides the feeds that sees API structs.
//!
//! A document is a JSON value (YAML is turned into one by the feed) or JSON text
//! ([`convert_json`], for `kubectl get -o json` dumps: no value tree is built). It is checked for
//! `apiVersion`/`kind`, deserialized into its `k8s-openapi` type (so every field has the type
//! Kubernetes gives it), then cut down to the model. Errors name the object and the field.

use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::value::{MapAccessDeserializer, StringDeserializer};
use serde::de::{DeserializeSeed, IgnoredAny};
use serde_json::Value;
use serde_json::value::RawValue;

use super::types::*;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Why a document could not be turned into a model object.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The document is not a mapping.
    #[error(
        "the document is not a mapping (a Kubernetes object has apiVersion, kind and metadata)"
    )]
    NotAnObject,
    /// `kind` is missing.
    #[error("the object has no kind")]
    MissingKind,
    /// The kind is one we use, but under an apiVersion we do not read.
    #[error("{kind} {object}: apiVersion {api_version:?} is not supported (use {expected})")]
    UnsupportedApiVersion {
        /// The object's kind.
        kind: String,
        /// `namespace/name`, as far as known.
        object: String,
        /// What the document says.
        api_version: String,
        /// What we read.
        expected: &'static str,
    },
    /// `metadata.name` is missing.
    #[error("{kind} without metadata.name")]
    MissingName {
        /// The object's kind.
        kind: String,
    },
    /// A field has the wrong type or is missing.
    #[error("{kind} {object}: {}{source}", field_prefix(path))]
    Field {
        /// The object's kind.
        kind: String,
        /// `namespace/name`.
        object: String,
        /// The field's path, e.g. `spec.ports[0].port`.
        path: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// JSON text that is well-formed but not a value serde_json reads (nested too deeply, a
    /// number out of range).
    #[error("the object is not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// A value has the right type but is not valid.
    #[error("{kind} {object}: {message}")]
    Invalid {
        /// The object's kind.
        kind: String,
        /// `namespace/name`.
        object: String,
        /// What is wrong.
        message: String,
    },
}

impl ConvertError {
    /// How to fix the document, when the error alone does not say.
    pub fn fix(&self) -> Option<String> {
        match self {
            Self::NotAnObject => Some(
                "write the object as a mapping with apiVersion, kind and metadata, as \
                 `kubectl get -o yaml` prints it"
                    .into(),
            ),
            Self::MissingKind => {
                Some("add kind: Service, EndpointSlice, Pod or StatefulSet".into())
            }
            Self::UnsupportedApiVersion { expected, .. } => {
                Some(format!("set apiVersion: {expected}"))
            }
            Self::MissingName { .. } => Some("set metadata.name".into()),
            Self::Field { kind, path, .. } if path == "." => Some(format!(
                "compare the object with what `kubectl explain {}` shows",
                explain_path(kind, path)
            )),
            Self::Field { kind, path, .. } => Some(format!(
                "give {path} the type the Kubernetes API defines (`kubectl explain {}` shows it)",
                explain_path(kind, path)
            )),
            Self::Json(_) => Some("fix the JSON (kubectl get -o json prints it valid)".into()),
            Self::Invalid { .. } => None,
        }
    }
}

/// `field spec.ports[0].port: ` before a field's error; nothing for the object itself (`.`).
fn field_prefix(path: &str) -> String {
    if path == "." || path.is_empty() {
        String::new()
    } else {
        format!("field {path}: ")
    }
}

/// `spec.ports[0].port` of a Service → `service.spec.ports.port`, what `kubectl explain` takes.
fn explain_path(kind: &str, path: &str) -> String {
    let mut explain = kind.to_ascii_lowercase();
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        let field = segment.split('[').next().unwrap_or(segment);
        if !field.is_empty() {
            explain.push('.');
            explain.push_str(field);
        }
    }
    explain
}

/// The kind a misspelt `kind` probably meant: one of the four we read, ignoring letter case and
/// at most two edits away (`Sevice` → `Service`, `statefulset` → `StatefulSet`).
pub fn suggest_kind(kind: &str) -> Option<&'static str> {
    const KINDS: [&str; 4] = ["Service", "EndpointSlice", "Pod", "StatefulSet"];
    let lower = kind.to_ascii_lowercase();
    KINDS
        .into_iter()
        .map(|k| (edit_distance(&lower, &k.to_ascii_lowercase()), k))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance over bytes (kinds are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

/// `Kind namespace/name` of a raw document, as far as it tells; empty when it has neither a kind
/// nor a name. Names documents that fail before conversion (a YAML syntax error further down).
pub fn describe_document(doc: &Value) -> String {
    let Value::Object(map) = doc else {
        return String::new();
    };
    let kind = map.get("kind").and_then(Value::as_str);
    let has_name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .is_some();
    match (kind, has_name) {
        (Some(kind), true) => format!("{kind} {}", describe_meta(map)),
        (Some(kind), false) => kind.to_owned(),
        (None, true) => describe_meta(map),
        (None, false) => String::new(),
    }
}

/// What a document turned out to be.
#[derive(Debug)]
pub enum Document {
    /// An object we use.
    Object(Object),
    /// A list (`kind: List`, `ServiceList`, …): its items, to be converted one by one.
    List(Vec<Value>),
    /// A kind we do not use (ConfigMap, Deployment, …): skipped.
    Ignored {
        /// Its kind.
        kind: String,
        /// `namespace/name`, as far as the metadata tells.
        object: String,
        /// Whether Kubernetes has such a kind at all: a misspelt kind deserves a warning.
        known: bool,
    },
    /// A known kind under an old apiVersion that we still read, with a hint.
    Deprecated(Object, String),
}

/// Kinds of the Kubernetes API that stsdns does not use; anything outside this list and the four
/// kinds we read is probably a typo.
const OTHER_KNOWN_KINDS: &[&str] = &[
    "Namespace",
    "ConfigMap",
    "Secret",
    "Deployment",
    "ReplicaSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "Endpoints",
    "Ingress",
    "IngressClass",
    "NetworkPolicy",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "StorageClass",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ClusterRole",
    "ClusterRoleBinding",
    "Node",
    "Event",
    "LimitRange",
    "ResourceQuota",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "CustomResourceDefinition",
    "ReplicationController",
    "ControllerRevision",
    "Lease",
    "PriorityClass",
    "PodTemplate",
    "CSIDriver",
    "CSINode",
    "VolumeAttachment",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "APIService",
    "RuntimeClass",
    "Status",
];

/// Whether a document of `kind` is a list whose items are converted one by one: `kind: List`,
/// or `ServiceList`, `PodList`, … with an `items` field (what `kubectl get -o json` prints).
pub fn is_list(kind: &str, has_items: bool) -> bool {
    kind == "List" || (kind.ends_with("List") && has_items)
}

impl ConvertError {
    /// A list whose `items` is neither a list nor null.
    pub fn items_not_a_list(kind: String) -> Self {
        Self::Invalid {
            kind,
            object: String::new(),
            message: "items is not a list".into(),
        }
    }
}

/// The four kinds stsdns reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadKind {
    Service,
    Pod,
    EndpointSlice,
    StatefulSet,
}

/// What a document's `kind` and `apiVersion` make of it, before its other fields are read.
enum Class {
    /// A list; its kind, for messages.
    List(String),
    /// Settled already: a kind DNS does not use.
    Done(Document),
    /// One of the kinds we read; `Some` hint for an old apiVersion read as the current one.
    Read {
        kind: ReadKind,
        deprecated: Option<String>,
    },
}

/// Sorts a document by kind and apiVersion; `object` gives `namespace/name` for messages. The
/// one place that decides, whether the document is a value or JSON text.
fn classify(
    kind: String,
    api_version: String,
    has_items: bool,
    object: impl FnOnce() -> String,
) -> Result<Class, ConvertError> {
    if is_list(&kind, has_items) {
        return Ok(Class::List(kind));
    }
    let (read, expected) = match kind.as_str() {
        "Service" => (ReadKind::Service, "v1"),
        "Pod" => (ReadKind::Pod, "v1"),
        "EndpointSlice" => (ReadKind::EndpointSlice, "discovery.k8s.io/v1"),
        "StatefulSet" => (ReadKind::StatefulSet, "apps/v1"),
        _ => {
            let known = OTHER_KNOWN_KINDS.contains(&kind.as_str());
            return Ok(Class::Done(Document::Ignored {
                kind,
                object: object(),
                known,
            }));
        }
    };
    if api_version == expected {
        return Ok(Class::Read {
            kind: read,
            deprecated: None,
        });
    }
    let object_name = object();
    if read == ReadKind::StatefulSet
        && matches!(api_version.as_str(), "apps/v1beta1" | "apps/v1beta2")
    {
        Ok(Class::Read {
            kind: read,
            deprecated: Some(format!(
                "{kind} {object_name}: apiVersion {api_version} was removed in Kubernetes 1.16; read as apps/v1"
            )),
        })
    } else {
        Err(ConvertError::UnsupportedApiVersion {
            kind,
            object: object_name,
            api_version,
            expected,
        })
    }
}

/// Converts one document: an object, a list, or something skipped.
pub fn convert_document(doc: Value) -> Result<Document, ConvertError> {
    let Value::Object(map) = &doc else {
        return Err(ConvertError::NotAnObject);
    };
    let kind = map
        .get("kind")
        .and_then(Value::as_str)
        .ok_or(ConvertError::MissingKind)?
        .to_owned();
    let api_version = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();

    let (read, deprecated) = match classify(kind, api_version, map.contains_key("items"), || {
        describe_meta(map)
    })? {
        Class::List(kind) => {
            return match map.get("items") {
                Some(Value::Array(items)) => Ok(Document::List(items.clone())),
                Some(Value::Null) | None => Ok(Document::List(Vec::new())),
                Some(_) => Err(ConvertError::items_not_a_list(kind)),
            };
        }
        Class::Done(document) => return Ok(document),
        Class::Read { kind, deprecated } => (kind, deprecated),
    };
    let mut doc = doc;
    if deprecated.is_some() {
        // k8s-openapi checks apiVersion; the old StatefulSet versions read as apps/v1.
        if let Some(map) = doc.as_object_mut() {
            map.insert("apiVersion".into(), Value::from("apps/v1"));
        }
    }

    let object = match read {
        ReadKind::Service => service(typed(doc, "Service")?)?.into(),
        ReadKind::Pod => pod(typed(lenient_pod(doc), "Pod")?)?.into(),
        ReadKind::EndpointSlice => endpoint_slice(typed(doc, "EndpointSlice")?)?.into(),
        ReadKind::StatefulSet => {
            let (doc, had_selector) = lenient_statefulset(doc);
            statefulset(typed(doc, "StatefulSet")?, had_selector)?.into()
        }
    };
    Ok(match deprecated {
        Some(hint) => Document::Deprecated(object, hint),
        None => Document::Object(object),
    })
}

/// Converts one document given as JSON text (an item of a `kubectl get -o json` List), with the
/// same result as [`convert_document`] of its value, without building the value.
///
/// A Service, Pod or EndpointSlice is deserialized straight into its `k8s-openapi` type
/// ([`Streamed`]). Otherwise a first pass reads only `apiVersion`, `kind`,
/// `metadata.name`/`namespace` and whether there is a `spec.selector`; a StatefulSet is then
/// deserialized. Anything out of the ordinary (an object that does not deserialize, an old
/// apiVersion, a list) takes the value path, so errors read the same.
pub fn convert_json(text: &str) -> Result<Document, ConvertError> {
    if let Ok(Streamed(converted)) = serde_json::from_str(text) {
        return converted;
    }
    let mut header = ObjectHeader::default();
    match HeaderSeed(&mut header).deserialize(&mut serde_json::Deserializer::from_str(text)) {
        Ok(true) => {}
        Ok(false) => return Err(ConvertError::NotAnObject),
        // Settled, or not JSON: what [`Streamed`] could not deserialize.
        Err(_) => return convert_json_value(text),
    }
    let kind = header.kind.clone().ok_or(ConvertError::MissingKind)?;
    let api_version = header.api_version.clone().unwrap_or_default();
    let object = || describe_names(header.name.as_deref(), header.namespace.as_deref());
    match classify(kind, api_version, header.has_items, object)? {
        Class::Done(document) => Ok(document),
        Class::Read {
            kind: ReadKind::StatefulSet,
            deprecated: None,
        } => match serde_json::from_str(text) {
            Ok(sts) => {
                statefulset(sts, header.had_selector()).map(|sts| Document::Object(sts.into()))
            }
            // Deserializing the value again names the field that failed.
            Err(_) => convert_json_value(text),
        },
        Class::List(_) | Class::Read { .. } => convert_json_value(text),
    }
}

/// A document converted while it is read from a JSON stream, in one pass over most of its text
/// where [`convert_json`] of its text takes two (a List item's text is found first): when its
/// `apiVersion` and `kind` settle how to read it. The fields before them are kept as text and
/// given again (kubectl prints keys sorted: a Pod's and a Service's come first, an
/// EndpointSlice's after `addressType` and `endpoints`). Any other document, or one that does
/// not deserialize, fails with an error, to be read as text with [`convert_json`], which gives
/// every message; a converted one is what [`convert_json`] gives.
pub struct Streamed(pub Result<Document, ConvertError>);

impl<'de> serde::Deserialize<'de> for Streamed {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(StreamedVisitor)
    }
}

struct StreamedVisitor;

impl<'de> serde::de::Visitor<'de> for StreamedVisitor {
    type Value = Streamed;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a Kubernetes object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Streamed, A::Error> {
        use serde::de::Error;
        let mut header = ObjectHeader::default();
        let mut read = Vec::new();
        while header.kind.is_none() || header.api_version.is_none() {
            let Some(key) = map.next_key::<String>()? else {
                return Err(A::Error::custom("no kind and apiVersion"));
            };
            let value: &'de RawValue = map.next_value()?;
            // A later duplicate wins, as in a value (k8s-openapi then fails on the first).
            let field = match key.as_str() {
                "kind" => Some(&mut header.kind),
                "apiVersion" => Some(&mut header.api_version),
                _ => None,
            };
            if let Some(field) = field {
                *field = Some(serde_json::from_str(value.get()).map_err(A::Error::custom)?);
            }
            read.push((key, value));
        }
        let Some(kind) = header.settled_kind() else {
            return Err(A::Error::custom("kind and apiVersion do not settle it"));
        };
        let rest = Replay {
            read: read.into_iter(),
            value: None,
            rest: map,
        };
        let rest = MapAccessDeserializer::new(rest);
        use serde::Deserialize;
        let converted = match kind {
            ReadKind::Service => service(core::Service::deserialize(rest)?).map(Object::from),
            // k8s-openapi fills in a missing `spec.containers`, as `lenient_pod` does for values.
            ReadKind::Pod => pod(core::Pod::deserialize(rest)?).map(Object::from),
            ReadKind::EndpointSlice => {
                endpoint_slice(discovery::EndpointSlice::deserialize(rest)?).map(Object::from)
            }
            // Never settled: `lenient_statefulset` needs to know whether `spec` has a selector.
            ReadKind::StatefulSet => return Err(A::Error::custom("a StatefulSet")),
        };
        Ok(Streamed(converted.map(Document::Object)))
    }
}

/// A mapping whose first entries were read already, as text: gives them again, then the rest.
struct Replay<'de, A> {
    read: std::vec::IntoIter<(String, &'de RawValue)>,
    /// The value of the entry just given again.
    value: Option<&'de RawValue>,
    rest: A,
}

impl<'de, A: serde::de::MapAccess<'de>> serde::de::MapAccess<'de> for Replay<'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        match self.read.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(StringDeserializer::new(key)).map(Some)
            }
            None => self.rest.next_key_seed(seed),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        match self.value.take() {
            // Read as the stream is (from a `str`), so that every field type is deserialized
            // by one and the same code.
            Some(value) => seed
                .deserialize(&mut serde_json::Deserializer::from_str(value.get()))
                .map_err(serde::de::Error::custom),
            None => self.rest.next_value_seed(seed),
        }
    }
}

/// [`convert_document`] of JSON text parsed into a value: the path of every case
/// [`convert_json`] does not settle itself.
fn convert_json_value(text: &str) -> Result<Document, ConvertError> {
    match serde_json::from_str::<Value>(text) {
        Ok(value) => convert_document(value),
        Err(err) => Err(ConvertError::Json(err)),
    }
}

/// A mapping key, read as its index in `self.0` (`None` for any other key) without copying it.
struct KeyIn(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for KeyIn {
    type Value = Option<usize>;
    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl serde::de::Visitor<'_> for KeyIn {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|k| *k == key))
    }
}

/// Drains a sequence nobody reads (serde_json wants it read to its end).
fn drain_seq<'de, A: serde::de::SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Drains a mapping nobody reads.
fn drain_map<'de, A: serde::de::MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Implements a visitor that gives `$other` for anything but a mapping (`visit_map` is given).
macro_rules! only_maps {
    ($other:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            drain_seq(seq).map(|()| $other)
        }
    };
}

/// What [`convert_json`] reads of a document before deserializing it: the fields that decide how,
/// read leniently (a `kind` that is not a string is no kind, as for a value). Later duplicate keys
/// win, as in a value.
#[derive(Default)]
struct ObjectHeader {
    kind: Option<String>,
    api_version: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
    has_items: bool,
    spec: SpecHeader,
}

/// What `lenient_statefulset` needs to know of `spec`.
#[derive(Default, Clone, Copy)]
enum SpecHeader {
    #[default]
    Absent,
    /// A mapping, with or without `selector`.
    Map { selector: bool },
    /// Something else (null, …): left as it is.
    Other,
}

impl ObjectHeader {
    /// Whether `lenient_statefulset` would find a selector (it fills in only a mapping's).
    fn had_selector(&self) -> bool {
        !matches!(
            self.spec,
            SpecHeader::Absent | SpecHeader::Map { selector: false }
        )
    }

    /// Whether `kind` and `apiVersion` alone settle how to read the document: a Service, Pod or
    /// EndpointSlice of the current apiVersion is deserialized whole, and `k8s-openapi` checks
    /// every `kind` and `apiVersion` key it meets, so a later duplicate that says otherwise
    /// still fails over to the value path. (A StatefulSet needs `spec` read too.)
    fn settles(&self) -> bool {
        self.settled_kind().is_some()
    }

    /// The kind read, when [`Self::settles`].
    fn settled_kind(&self) -> Option<ReadKind> {
        match (self.kind.as_deref(), self.api_version.as_deref()) {
            (Some("Service"), Some("v1")) => Some(ReadKind::Service),
            (Some("Pod"), Some("v1")) => Some(ReadKind::Pod),
            (Some("EndpointSlice"), Some("discovery.k8s.io/v1")) => Some(ReadKind::EndpointSlice),
            _ => None,
        }
    }
}

/// Fills an [`ObjectHeader`]; gives whether the document is a mapping. Stops with an error once
/// [`ObjectHeader::settles`]: such a document is read by [`Streamed`], and comes here only when
/// it does not deserialize, for the value path to name what failed.
struct HeaderSeed<'a>(&'a mut ObjectHeader);

impl<'de> DeserializeSeed<'de> for HeaderSeed<'_> {
    type Value = bool;
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for HeaderSeed<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a Kubernetes object")
    }
    only_maps!(false);
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        const KEYS: &[&str] = &["kind", "apiVersion", "metadata", "items", "spec"];
        let header = self.0;
        while let Some(key) = map.next_key_seed(KeyIn(KEYS))? {
            match key {
                Some(0) => header.kind = map.next_value::<Lenient>()?.0,
                Some(1) => header.api_version = map.next_value::<Lenient>()?.0,
                Some(2) => {
                    let meta = map.next_value::<MetaHeader>()?;
                    (header.name, header.namespace) = (meta.name, meta.namespace);
                }
                Some(3) => {
                    header.has_items = true;
                    map.next_value::<IgnoredAny>()?;
                }
                Some(4) => header.spec = map.next_value::<SpecHeaderValue>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            if key.is_some_and(|k| k < 2) && header.settles() {
                return Err(serde::de::Error::custom("settled"));
            }
        }
        Ok(true)
    }
}

/// A string, or `None` for any other value.
struct Lenient(Option<String>);

impl<'de> serde::Deserialize<'de> for Lenient {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Lenient;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_str<E>(self, value: &str) -> Result<Lenient, E> {
                Ok(Lenient(Some(value.to_owned())))
            }
            fn visit_string<E>(self, value: String) -> Result<Lenient, E> {
                Ok(Lenient(Some(value)))
            }
            fn visit_unit<E>(self) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Lenient, A::Error> {
                drain_seq(seq).map(|()| Lenient(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Lenient, A::Error> {
                drain_map(map).map(|()| Lenient(None))
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

/// `metadata.name` and `metadata.namespace`, leniently.
#[derive(Default)]
struct MetaHeader {
    name: Option<String>,
    namespace: Option<String>,
}

impl<'de> serde::Deserialize<'de> for MetaHeader {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = MetaHeader;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("metadata")
            }
            only_maps!(MetaHeader::default());
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<MetaHeader, A::Error> {
                let mut meta = MetaHeader::default();
                while let Some(key) = map.next_key_seed(KeyIn(&["name", "namespace"]))? {
                    match key {
                        Some(0) => meta.name = map.next_value::<Lenient>()?.0,
                        Some(1) => meta.namespace = map.next_value::<Lenient>()?.0,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(meta)
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

/// `spec`, as far as [`SpecHeader`] tells.
struct SpecHeaderValue(SpecHeader);

impl<'de> serde::Deserialize<'de> for SpecHeaderValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = SpecHeaderValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("spec")
            }
            only_maps!(SpecHeaderValue(SpecHeader::Other));
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<SpecHeaderValue, A::Error> {
                let mut selector = false;
                while let Some(key) = map.next_key_seed(KeyIn(&["selector"]))? {
                    selector |= key.is_some();
                    map.next_value::<IgnoredAny>()?;
                }
                Ok(SpecHeaderValue(SpecHeader::Map { selector }))
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

/// `namespace/name` from raw metadata, for messages about objects that fail to deserialize.
fn describe_meta(map: &serde_json::Map<String, Value>) -> String {
    let meta = map.get("metadata");
    describe_names(
        meta.and_then(|m| m.get("name")).and_then(Value::as_str),
        meta.and_then(|m| m.get("namespace"))
            .and_then(Value::as_str),
    )
}

/// `namespace/name`, with what is missing filled in.
fn describe_names(name: Option<&str>, namespace: Option<&str>) -> String {
    format!(
        "{}/{}",
        namespace.unwrap_or("default"),
        name.unwrap_or("<no name>")
    )
}

/// Deserializes into a `k8s-openapi` type, naming the field that failed.
fn typed<T: serde::de::DeserializeOwned>(doc: Value, kind: &str) -> Result<T, ConvertError> {
    let object = match &doc {
        Value::Object(map) => describe_meta(map),
        _ => String::new(),
    };
    serde_path_to_error::deserialize(doc).map_err(|err| ConvertError::Field {
        kind: kind.to_owned(),
        object,
        path: err.path().to_string(),
        source: err.into_inner(),
    })
}

/// Hand-written Pods often leave out `spec.containers`; DNS does not need them.
fn lenient_pod(mut doc: Value) -> Value {
    if let Some(spec) = doc.get_mut("spec").and_then(Value::as_object_mut) {
        spec.entry("containers")
            .or_insert_with(|| Value::Array(Vec::new()));
    }
    doc
}

/// A StatefulSet without `spec.selector` is one of the mistakes `check` explains, so it must
/// still load: the selector is filled in for deserialization and remembered as missing.
fn lenient_statefulset(mut doc: Value) -> (Value, bool) {
    let mut had_selector = true;
    if let Some(map) = doc.as_object_mut() {
        map.entry("spec")
            .or_insert_with(|| Value::Object(Default::default()));
    }
    if let Some(spec) = doc.get_mut("spec").and_then(Value::as_object_mut) {
        if !spec.contains_key("selector") {
            had_selector = false;
            spec.insert("selector".into(), Value::Object(Default::default()));
        }
        spec.entry("template")
            .or_insert_with(|| Value::Object(Default::default()));
    }
    (doc, had_selector)
}

fn invalid(
    kind: &str,
    object: &impl std::fmt::Display,
    message: impl Into<String>,
) -> ConvertError {
    ConvertError::Invalid {
        kind: kind.into(),
        object: object.to_string(),
        message: message.into(),
    }
}

/// Namespace and name from metadata; the namespace defaults to `default` as `kubectl apply` does.
fn names(meta: &meta::ObjectMeta, kind: &str) -> Result<(Namespace, String), ConvertError> {
    let name = meta
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ConvertError::MissingName { kind: kind.into() })?;
    let namespace_text = meta.namespace.as_deref().unwrap_or("default");
    let namespace = Namespace::new(namespace_text).map_err(|e| {
        invalid(
            kind,
            &format!("{namespace_text}/{name}"),
            format!("metadata.namespace: {e}"),
        )
    })?;
    Ok((namespace, name))
}

fn object_key(meta: &meta::ObjectMeta, kind: &str) -> Result<ObjectKey, ConvertError> {
    let (namespace, name) = names(meta, kind)?;
    Ok(ObjectKey {
        namespace,
        name: Arc::from(name),
    })
}

fn protocol(
    value: Option<&str>,
    kind: &str,
    object: &impl std::fmt::Display,
) -> Result<Protocol, ConvertError> {
    match value.unwrap_or("TCP").to_ascii_uppercase().as_str() {
        "TCP" => Ok(Protocol::Tcp),
        "UDP" => Ok(Protocol::Udp),
        "SCTP" => Ok(Protocol::Sctp),
        other => Err(invalid(
            kind,
            object,
            format!("unknown protocol {other:?} (TCP, UDP or SCTP)"),
        )),
    }
}

fn port_number(
    value: i32,
    kind: &str,
    object: &impl std::fmt::Display,
    field: &str,
) -> Result<u16, ConvertError> {
    u16::try_from(value)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| {
            invalid(
                kind,
                object,
                format!("{field}: {value} is not a port number (1-65535)"),
            )
        })
}

fn ip(
    value: &str,
    kind: &str,
    object: &impl std::fmt::Display,
    field: &str,
) -> Result<IpAddr, ConvertError> {
    value.parse().map_err(|_| {
        invalid(
            kind,
            object,
            format!("{field}: {value:?} is not an IP address"),
        )
    })
}

/// v1 Service → [`Service`].
pub fn service(svc: core::Service) -> Result<Service, ConvertError> {
    const KIND: &str = "Service";
    let (namespace, name) = names(&svc.metadata, KIND)?;
    let object = format!("{namespace}/{name}");
    let name = ServiceName::new(&name)
        .map_err(|e| invalid(KIND, &object, format!("metadata.name: {e}")))?;
    let spec = svc.spec.unwrap_or_default();

    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        let target = spec
            .external_name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid(KIND, &object, "type ExternalName without spec.externalName"))?;
        let target = target.trim_end_matches('.').to_ascii_lowercase();
        // Checked here, as a DNS name: the builder could not make its CNAME.
        hickory_proto::rr::Name::from_ascii(format!("{target}."))
            .map_err(|e| invalid(KIND, &object, format!("spec.externalName {target:?}: {e}")))?;
        ServiceKind::ExternalName(target)
    } else {
        let ips: Vec<String> = match (spec.cluster_ips, spec.cluster_ip) {
            (Some(ips), _) if !ips.is_empty() => ips,
            (_, Some(ip)) if !ip.is_empty() => vec![ip],
            _ => Vec::new(),
        };
        if ips.iter().any(|ip| ip == "None") {
            ServiceKind::Headless
        } else {
            let mut parsed = Vec::new();
            for (i, text) in ips.iter().enumerate() {
                let addr = ip(text, KIND, &object, &format!("spec.clusterIPs[{i}]"))?;
                if !parsed.contains(&addr) {
                    parsed.push(addr);
                }
            }
            ServiceKind::ClusterIp(parsed)
        }
    };

    let mut ports = Vec::new();
    for (i, p) in spec.ports.unwrap_or_default().into_iter().enumerate() {
        let port = port_number(p.port, KIND, &object, &format!("spec.ports[{i}].port"))?;
        let target_port = match p.target_port {
            None => TargetPort::Number(port),
            Some(IntOrString::Int(n)) => TargetPort::Number(port_number(
                n,
                KIND,
                &object,
                &format!("spec.ports[{i}].targetPort"),
            )?),
            Some(IntOrString::String(s)) => match s.parse::<i32>() {
                Ok(n) => TargetPort::Number(port_number(
                    n,
                    KIND,
                    &object,
                    &format!("spec.ports[{i}].targetPort"),
                )?),
                Err(_) => TargetPort::Named(s),
            },
        };
        ports.push(ServicePort {
            name: port_name(p.name, KIND, &object, &format!("spec.ports[{i}].name"))?,
            protocol: protocol(p.protocol.as_deref(), KIND, &object)?,
            port,
            target_port,
        });
    }

    ports.shrink_to_fit();
    Ok(Service {
        key: ServiceKey { namespace, name },
        kind,
        ports,
        selector: spec.selector.filter(|s| !s.is_empty()).map(Labels::from),
        publish_not_ready_addresses: spec.publish_not_ready_addresses.unwrap_or(false),
    })
}

/// A Service's or EndpointSlice's port name, lowercase: the `_<name>` label of its SRV name, so
/// a DNS label (Kubernetes allows less: an IANA service name, or a DNS label for slices).
fn port_name(
    name: Option<String>,
    kind: &str,
    object: &impl std::fmt::Display,
    field: &str,
) -> Result<Option<String>, ConvertError> {
    let Some(name) = name
        .filter(|n| !n.is_empty())
        .map(|n| n.to_ascii_lowercase())
    else {
        return Ok(None);
    };
    validate_label(&name).map_err(|e| invalid(kind, object, format!("{field}: {e}")))?;
    Ok(Some(name))
}

/// discovery.k8s.io/v1 EndpointSlice → [`EndpointSlice`].
pub fn endpoint_slice(slice: discovery::EndpointSlice) -> Result<EndpointSlice, ConvertError> {
    const KIND: &str = "EndpointSlice";
    let key = object_key(&slice.metadata, KIND)?;
    let service = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SERVICE_NAME_LABEL))
        .map(|n| {
            ServiceName::new(n)
                .map_err(|e| invalid(KIND, &key, format!("label {SERVICE_NAME_LABEL}: {e}")))
        })
        .transpose()?;
    let fqdn = match slice.address_type.as_str() {
        "IPv4" | "IPv6" => false,
        "FQDN" => true,
        other => {
            return Err(invalid(
                KIND,
                &key,
                format!("unknown addressType {other:?} (IPv4, IPv6 or FQDN)"),
            ));
        }
    };

    let mut ports = Vec::new();
    for (i, p) in slice.ports.unwrap_or_default().into_iter().enumerate() {
        // A port without a number means "all ports": it has no SRV record.
        let Some(number) = p.port else { continue };
        ports.push(EndpointPort {
            name: port_name(p.name, KIND, &key, &format!("ports[{i}].name"))?,
            protocol: protocol(p.protocol.as_deref(), KIND, &key)?,
            port: port_number(number, KIND, &key, &format!("ports[{i}].port"))?,
        });
    }

    let mut endpoints = Vec::new();
    for (i, ep) in slice.endpoints.unwrap_or_default().into_iter().enumerate() {
        if fqdn {
            continue;
        }
        let mut addresses = Vec::new();
        for (j, a) in ep.addresses.iter().enumerate() {
            addresses.push(ip(
                a,
                KIND,
                &key,
                &format!("endpoints[{i}].addresses[{j}]"),
            )?);
        }
        let hostname = ep
            .hostname
            .filter(|h| !h.is_empty())
            .map(|h| {
                Hostname::new(&h)
                    .map_err(|e| invalid(KIND, &key, format!("endpoints[{i}].hostname: {e}")))
            })
            .transpose()?;
        let pod_name = ep
            .target_ref
            .filter(|r| r.kind.as_deref() == Some("Pod"))
            .and_then(|r| r.name)
            .map(Arc::from);
        endpoints.push(Endpoint {
            addresses,
            ready: ep.conditions.and_then(|c| c.ready).unwrap_or(true),
            hostname,
            pod_name,
        });
    }
    Ok(EndpointSlice {
        key,
        service,
        ports,
        endpoints,
    })
}

/// v1 Pod → [`Pod`].
pub fn pod(pod: core::Pod) -> Result<Pod, ConvertError> {
    const KIND: &str = "Pod";
    let key = object_key(&pod.metadata, KIND)?;
    let spec = pod.spec.unwrap_or_default();
    let status = pod.status.unwrap_or_default();

    let hostname = spec
        .hostname
        .filter(|h| !h.is_empty())
        .map(|h| Hostname::new(&h).map_err(|e| invalid(KIND, &key, format!("spec.hostname: {e}"))))
        .transpose()?;

    let mut ips = Vec::new();
    let texts: Vec<String> = match (status.pod_ips, status.pod_ip) {
        (Some(list), _) if !list.is_empty() => list.into_iter().map(|p| p.ip).collect(),
        (_, Some(ip)) if !ip.is_empty() => vec![ip],
        _ => Vec::new(),
    };
    for (i, text) in texts.iter().enumerate() {
        let addr = ip(text, KIND, &key, &format!("status.podIPs[{i}]"))?;
        if !ips.contains(&addr) {
            ips.push(addr);
        }
    }

    let ready = status
        .conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");

    let mut container_ports = Vec::new();
    for c in &spec.containers {
        for p in c.ports.iter().flatten() {
            container_ports.push(ContainerPort {
                name: p.name.as_deref().map(Arc::from),
                protocol: protocol(p.protocol.as_deref(), KIND, &key)?,
                port: port_number(
                    p.container_port,
                    KIND,
                    &key,
                    "spec.containers[].ports[].containerPort",
                )?,
            });
        }
    }

    Ok(Pod {
        key,
        labels: pod.metadata.labels.unwrap_or_default().into(),
        hostname,
        subdomain: spec.subdomain.filter(|s| !s.is_empty()).map(Arc::from),
        ips: ips.into_iter().collect(),
        ready,
        terminating: pod.metadata.deletion_timestamp.is_some(),
        container_ports: container_ports.into_iter().collect(),
    })
}

/// apps/v1 StatefulSet → [`StatefulSet`].
pub fn statefulset(
    sts: apps::StatefulSet,
    had_selector: bool,
) -> Result<StatefulSet, ConvertError> {
    const KIND: &str = "StatefulSet";
    let key = object_key(&sts.metadata, KIND)?;
    let spec = sts.spec;
    let selector = if had_selector {
        Some(label_selector(spec.selector, &key)?)
    } else {
        None
    };
    Ok(StatefulSet {
        key,
        service_name: spec.service_name.filter(|s| !s.is_empty()),
        replicas: spec.replicas.unwrap_or(1),
        selector,
        template_labels: spec
            .template
            .metadata
            .and_then(|m| m.labels)
            .unwrap_or_default(),
    })
}

fn label_selector(
    sel: meta::LabelSelector,
    key: &ObjectKey,
) -> Result<LabelSelector, ConvertError> {
    let mut match_expressions = Vec::new();
    for req in sel.match_expressions.unwrap_or_default() {
        let values = req.values.unwrap_or_default();
        match_expressions.push(match req.operator.as_str() {
            "In" => SelectorRequirement::In(req.key, values),
            "NotIn" => SelectorRequirement::NotIn(req.key, values),
            "Exists" => SelectorRequirement::Exists(req.key),
            "DoesNotExist" => SelectorRequirement::DoesNotExist(req.key),
            other => {
                return Err(invalid(
                    "StatefulSet",
                    key,
                    format!("spec.selector: unknown operator {other:?} (In, NotIn, Exists or DoesNotExist)"),
                ));
            }
        });
    }
    Ok(LabelSelector {
        match_labels: sel.match_labels.unwrap_or_default(),
        match_expressions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn headless_service_with_named_target_port() {
        let doc = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {"clusterIP": "None", "selector": {"app": "web"},
                     "ports": [{"name": "HTTP", "port": 80, "targetPort": "http"}]}});
        let Document::Object(Object::Service(svc)) = convert_document(doc).expect("converts")
        else {
            panic!("not a service")
        };
        assert_eq!(svc.kind, ServiceKind::Headless);
        assert_eq!(svc.ports[0].name.as_deref(), Some("http"));
        assert_eq!(svc.ports[0].target_port, TargetPort::Named("http".into()));
    }

    #[test]
    fn wrong_field_type_names_the_field() {
        let doc = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {"ports": [{"port": "eighty"}]}});
        let err = convert_document(doc).expect_err("must fail").to_string();
        assert!(err.contains("Service prod/web"), "{err}");
        assert!(err.contains("spec.ports[0].port"), "{err}");
    }

    #[test]
    fn missing_name_is_an_error() {
        let doc = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}});
        let err = convert_document(doc).expect_err("must fail").to_string();
        assert_eq!(err, "Pod without metadata.name");
    }

    #[test]
    fn statefulset_without_selector_still_loads() {
        let doc = json!({"apiVersion": "apps/v1beta1", "kind": "StatefulSet",
            "metadata": {"name": "kubia"}, "spec": {"serviceName": "kubia", "replicas": 2,
            "template": {"metadata": {"labels": {"app": "kubia"}}, "spec": {"containers": []}}}});
        let Document::Deprecated(Object::StatefulSet(sts), hint) =
            convert_document(doc).expect("loads")
        else {
            panic!("expected a deprecated StatefulSet")
        };
        assert!(sts.selector.is_none());
        assert!(hint.contains("apps/v1beta1"), "{hint}");
    }

    #[test]
    fn wrong_field_type_fix_points_at_kubectl_explain() {
        let doc = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {"ports": [{"port": "eighty"}]}});
        let err = convert_document(doc).expect_err("must fail");
        assert_eq!(
            err.fix().as_deref(),
            Some(
                "give spec.ports[0].port the type the Kubernetes API defines \
                 (`kubectl explain service.spec.ports.port` shows it)"
            )
        );
    }

    #[test]
    fn errors_of_the_whole_object_name_no_field() {
        assert_eq!(field_prefix("."), "");
        assert_eq!(field_prefix("spec.replicas"), "field spec.replicas: ");
    }

    #[test]
    fn misspelt_kinds_get_a_suggestion() {
        assert_eq!(suggest_kind("Sevice"), Some("Service"));
        assert_eq!(suggest_kind("statefulset"), Some("StatefulSet"));
        assert_eq!(suggest_kind("Pods"), Some("Pod"));
        assert_eq!(suggest_kind("EndpointSlices"), Some("EndpointSlice"));
        assert_eq!(suggest_kind("Gateway"), None);
    }

    #[test]
    fn documents_are_described_by_kind_and_name() {
        let doc = json!({"kind": "Sevice", "metadata": {"name": "svc-nginx", "namespace": "prod"}});
        assert_eq!(describe_document(&doc), "Sevice prod/svc-nginx");
        assert_eq!(describe_document(&json!({"kind": "Pod"})), "Pod");
        assert_eq!(describe_document(&json!({"spec": {}})), "");
    }

    #[test]
    fn unknown_kinds_are_told_apart_from_unused_ones() {
        let unused = convert_document(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
        );
        assert!(matches!(unused, Ok(Document::Ignored { known: true, .. })));
        let typo = convert_document(
            json!({"apiVersion": "v1", "kind": "Sevice", "metadata": {"name": "x"}}),
        );
        assert!(matches!(typo, Ok(Document::Ignored { known: false, .. })));
    }
}
