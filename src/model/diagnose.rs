//! Problems with a cluster state, explained with the object and the fix.
//!
//! These are the mistakes people make with StatefulSets and headless Services (the walkthrough
//! in `shared/seeds/000_*`): each [`Problem`] names the object, where it was read, what is wrong
//! and how to fix it. `stsdns check` prints them; `serve` logs them.

use std::fmt;

use super::{ClusterState, Kind, Object, ObjectKey, ObjectRef, Origin, ServiceKind};

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Something will not resolve the way its author meant; `check` exits non-zero.
    Error,
    /// Worth knowing: not published yet, or ignored input.
    Warning,
}

/// One problem, with enough context to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// Where the offending document was read, when known.
    pub origin: Option<Origin>,
    /// `Kind namespace/name`, or empty when the document has no identity.
    pub object: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when there is a clear fix.
    pub fix: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{severity}: ")?;
        if let Some(origin) = &self.origin {
            write!(f, "{origin}: ")?;
        }
        if !self.object.is_empty() && !self.message.contains(&self.object) {
            write!(f, "{}: ", self.object)?;
        }
        f.write_str(&self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "; fix: {fix}")?;
        }
        Ok(())
    }
}

fn problem(
    severity: Severity,
    state: &ClusterState,
    kind: Kind,
    key: &ObjectKey,
    message: String,
    fix: Option<String>,
) -> Problem {
    Problem {
        severity,
        origin: state.origin(&ObjectRef {
            kind,
            key: key.clone(),
        }),
        object: format!("{kind} {key}"),
        message,
        fix,
    }
}

fn show_labels(labels: &std::collections::BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

/// Every problem of the state, in a stable order: StatefulSets, then EndpointSlices, then Pods.
pub fn diagnose(state: &ClusterState) -> Vec<Problem> {
    let mut problems = Vec::new();
    for sts in state.statefulsets() {
        let key = &sts.key;
        match &sts.selector {
            None => problems.push(problem(
                Severity::Error,
                state,
                Kind::StatefulSet,
                key,
                "has no spec.selector (apps/v1 requires one; the API server rejects it with \
                 'missing required field \"selector\"')"
                    .into(),
                Some(format!(
                    "add spec.selector.matchLabels: {}",
                    show_labels(&sts.template_labels)
                )),
            )),
            Some(selector) if selector.is_empty() || !selector.matches(&sts.template_labels) => {
                problems.push(problem(
                    Severity::Error,
                    state,
                    Kind::StatefulSet,
                    key,
                    format!(
                        "spec.selector does not match the template labels {} (the API server \
                         rejects it: 'selector does not match template labels')",
                        show_labels(&sts.template_labels)
                    ),
                    Some(
                        "make spec.selector.matchLabels a subset of spec.template.metadata.labels"
                            .into(),
                    ),
                ))
            }
            Some(_) => {}
        }
        match &sts.service_name {
            None => problems.push(problem(
                Severity::Error,
                state,
                Kind::StatefulSet,
                key,
                "has no spec.serviceName, so its pods get no per-pod DNS names".into(),
                Some("set spec.serviceName to a headless Service (clusterIP: None) selecting its pods".into()),
            )),
            Some(name) => match state.service(&key.namespace, name) {
                None => problems.push(problem(
                    Severity::Error,
                    state,
                    Kind::StatefulSet,
                    key,
                    format!(
                        "spec.serviceName names Service {}/{name}, which does not exist",
                        key.namespace
                    ),
                    Some(format!(
                        "create a headless Service {name} (clusterIP: None) in namespace {} \
                         selecting {}",
                        key.namespace,
                        show_labels(&sts.template_labels)
                    )),
                )),
                Some(svc) if svc.kind != ServiceKind::Headless => problems.push(problem(
                    Severity::Error,
                    state,
                    Kind::StatefulSet,
                    key,
                    format!(
                        "spec.serviceName names Service {}/{name}, which is not headless, so \
                         pods get no names like {}-0.{name}.{}.svc",
                        key.namespace, key.name, key.namespace
                    ),
                    Some(format!("set clusterIP: None on Service {}/{name}", key.namespace)),
                )),
                Some(_) => {}
            },
        }
    }

    for slice in state.endpoint_slices() {
        if slice.service.is_none() {
            problems.push(problem(
                Severity::Warning,
                state,
                Kind::EndpointSlice,
                &slice.key,
                format!(
                    "has no label {} and belongs to no Service; it is ignored",
                    super::convert::SERVICE_NAME_LABEL
                ),
                Some(format!(
                    "add metadata.labels.{}: <service name>",
                    super::convert::SERVICE_NAME_LABEL
                )),
            ));
        }
    }

    // Pods a headless Service would publish if they were ready.
    for svc in state.services() {
        if svc.kind != ServiceKind::Headless || svc.publish_not_ready_addresses {
            continue;
        }
        let Some(selector) = &svc.selector else {
            continue;
        };
        if state.has_slices(&svc.key) {
            continue;
        }
        let pods = state.pods_selected(&svc.key.namespace, selector);
        for pod in pods {
            if pod.ready && !pod.terminating {
                continue;
            }
            let why = if pod.terminating {
                "terminating"
            } else {
                "not Ready"
            };
            problems.push(problem(
                Severity::Warning,
                state,
                Kind::Pod,
                &pod.key,
                format!(
                    "is {why}, so Service {} does not publish it (no A, SRV or PTR record)",
                    svc.key
                ),
                Some(format!(
                    "wait for its readiness probe to pass (kubectl describe pod {} -n {}), or set \
                     publishNotReadyAddresses: true on Service {} to publish pods before they are ready",
                    pod.key.name, pod.key.namespace, svc.key
                )),
            ));
        }
    }
    problems
}

/// A problem for an object read twice: the later document wins.
pub fn duplicate(object: &Object, first: &Origin, second: &Origin) -> Problem {
    Problem {
        severity: Severity::Error,
        origin: Some(second.clone()),
        object: object.describe(),
        message: format!(
            "{} is defined twice (first at {first}); the later one is used",
            object.describe()
        ),
        fix: Some("remove one of the two documents".into()),
    }
}
