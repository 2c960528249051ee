//! The synthetic cluster of the `propagation` and `lookup_cost` benches, as model objects:
//! [`NAMESPACES`] namespaces of headless Services (`svc-<s>`, named port `web` 80, selector
//! `app: web-<s>`), each with [`PODS_PER_SERVICE`] ready Pods (`web-<s>-<i>`, hostname and
//! subdomain set, IPs counted up from 10.0.0.0), and the first full list that loads it.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use stsdns::feed::event::{Event, SourceEvent, SourceId};
use stsdns::model::{
    ContainerPort, Hostname, Namespace, Object, ObjectKey, Origin, Pod, Protocol, Service,
    ServiceKey, ServiceKind, ServiceName, ServicePort, TargetPort,
};

const NAMESPACES: usize = 10;
const PODS_PER_SERVICE: usize = 3;

/// A cluster size a bench can be asked for.
pub(crate) struct Size {
    pub(crate) label: &'static str,
    pub(crate) services_per_namespace: usize,
}

/// The sizes the benches know; the goals compare `1k` and `100k` (propagation) or `3k` and
/// `100k` (lookups).
pub(crate) const SIZES: [Size; 5] = [
    Size {
        label: "1k",
        services_per_namespace: 34,
    },
    Size {
        label: "3k",
        services_per_namespace: 100,
    },
    Size {
        label: "10k",
        services_per_namespace: 334,
    },
    Size {
        label: "30k",
        services_per_namespace: 1000,
    },
    Size {
        label: "100k",
        services_per_namespace: 3334,
    },
];

/// A small deterministic PRNG (xorshift64*), so every run makes the same choices.
pub(crate) struct XorShift(pub(crate) u64);

impl XorShift {
    pub(crate) fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let value = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 16;
        usize::try_from(value % u64::try_from(bound).unwrap()).unwrap()
    }
}

fn pod_ip(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        10,
        ((index >> 16) & 0xFF) as u8,
        ((index >> 8) & 0xFF) as u8,
        (index & 0xFF) as u8,
    )
}

/// Where the benches' objects say they were read.
pub(crate) fn origin() -> Origin {
    Origin {
        source: Arc::from("bench"),
        line: None,
    }
}

/// The cluster's Services, and its Pods each with its host name
/// (`web-<s>-<i>.svc-<s>.ns-<n>.svc.cluster.local.`).
pub(crate) fn cluster(size: &Size) -> (Vec<Service>, Vec<(Pod, String)>) {
    let mut services = Vec::new();
    let mut pods = Vec::new();
    for n in 0..NAMESPACES {
        let namespace = Namespace::new(&format!("ns-{n}")).unwrap();
        for s in 0..size.services_per_namespace {
            let app = format!("web-{s}");
            services.push(Service {
                key: ServiceKey {
                    namespace: namespace.clone(),
                    name: ServiceName::new(&format!("svc-{s}")).unwrap(),
                },
                kind: ServiceKind::Headless,
                ports: vec![ServicePort {
                    name: Some("web".into()),
                    protocol: Protocol::Tcp,
                    port: 80,
                    target_port: TargetPort::Named("web".into()),
                }],
                selector: Some([("app".to_owned(), app.clone())].into()),
                publish_not_ready_addresses: false,
            });
            for i in 0..PODS_PER_SERVICE {
                let name = format!("web-{s}-{i}");
                let index = pods.len();
                let host = format!("{name}.svc-{s}.ns-{n}.svc.cluster.local.");
                let pod = Pod {
                    key: ObjectKey {
                        namespace: namespace.clone(),
                        name: Arc::from(name.as_str()),
                    },
                    labels: [("app".to_owned(), app.clone())].into(),
                    hostname: Some(Hostname::new(&name).unwrap()),
                    subdomain: Some(format!("svc-{s}").into()),
                    ips: [IpAddr::V4(pod_ip(index))].into(),
                    ready: true,
                    terminating: false,
                    container_ports: [ContainerPort {
                        name: Some("web".into()),
                        protocol: Protocol::Tcp,
                        port: 80,
                    }]
                    .into(),
                };
                pods.push((pod, host));
            }
        }
    }
    (services, pods)
}

/// The first full list of `source`: every Service, then every Pod.
pub(crate) fn first_list<'a>(
    source: &SourceId,
    services: &[Service],
    pods: impl Iterator<Item = &'a Pod>,
) -> Vec<SourceEvent> {
    let send = |event| SourceEvent {
        source: source.clone(),
        event,
    };
    let objects = (services.iter().map(|s| Object::from(s.clone())))
        .chain(pods.map(|p| Object::from(p.clone())));
    std::iter::once(send(Event::Init))
        .chain(objects.map(|o| send(Event::InitApply(o, origin()))))
        .chain(std::iter::once(send(Event::InitDone)))
        .collect()
}
