//! `stsdns peers`: peer discovery for StatefulSet sidecars, in one SRV lookup per poll.
//!
//! This is the client half of stsdns, a replacement for Kubernetes' unmaintained `peer-finder`.
//! It asks any DNS server that answers the bare-name SRV of a headless Service
//! (`<svc>.<ns>.svc.<domain>`: stsdns, CoreDNS, or a secondary such as Knot) for its targets,
//! orders them by StatefulSet ordinal, and runs hooks with the list on standard input.
//!
//! - [`Settings`] is what the user typed; [`Settings::resolve`] fills the defaults from the
//!   environment and `resolv.conf` ([`ResolvConf`]) and validates everything into [`Options`].
//! - [`lookup`] is one poll: one SRV query (over UDP, then TCP when the answer is truncated),
//!   turned into an ordered `Vec<Peer>`.
//! - [`once`] waits for one acceptable list; [`watch`] polls and runs the [`Hooks`] the way
//!   peer-finder does: `--on-start` once the list contains this pod, `--on-change` after that.
//!
//! The module is a DNS client only: it never touches the serving side (`feed`, `snapshot`,
//! `server`). From the rest of the crate it takes the name grammar ([`names`]), the validated
//! label types and the cluster-domain rule ([`config::parse_zones`]). It logs with `tracing`
//! and never prints: the caller renders the [`Peer`]s ([`render_text`], [`render_json`]).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use hickory_net::NetError;
use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::config;
use crate::model::{Hostname, InvalidLabel, Namespace, ServiceKey, ServiceName};
use crate::records::names;

/// How long one query to one server may take before it counts as unanswered. Short enough
/// that a dead server is noticed within a couple of polls, long enough for a loaded one.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest wait between polls while the server fails (the backoff doubles up to this).
/// Never shorter than `--interval`.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The cluster domain when neither `--domain` nor the search list of `resolv.conf` gives one.
pub const DEFAULT_DOMAIN: &str = "cluster.local";

/// The port of the nameservers listed in `resolv.conf` (it has no syntax for another).
const DNS_PORT: u16 = 53;

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why `stsdns peers` cannot go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `--service` is not a valid Service name.
    #[error("invalid --service")]
    Service(#[source] InvalidLabel),
    /// `--namespace` (or `POD_NAMESPACE`) is not a valid namespace.
    #[error("invalid --namespace")]
    Namespace(#[source] InvalidLabel),
    /// No namespace was given and `resolv.conf` does not tell it.
    #[error("cannot tell the namespace: give --namespace or set POD_NAMESPACE")]
    NoNamespace(#[source] ResolvConfError),
    /// `--domain` (or the one taken from `resolv.conf`) is not a valid cluster domain.
    #[error("invalid cluster domain {domain:?} (--domain)")]
    Domain {
        /// The rejected domain.
        domain: String,
        /// Why it is invalid.
        #[source]
        source: config::Error,
    },
    /// No server was given and `resolv.conf` lists none.
    #[error("cannot tell which DNS server to ask: give --server")]
    NoServer(#[source] ResolvConfError),
    /// [`watch`] was given options resolved without this pod's name.
    #[error("watching the peers needs this pod's name: give --self")]
    NoSelfName,
    /// `--self` is not a valid DNS name.
    #[error("invalid --self {value:?}")]
    SelfName {
        /// What was given.
        value: String,
        /// Why it is invalid.
        #[source]
        source: hickory_proto::ProtoError,
    },
    /// This host's name cannot be the first label of a DNS name.
    #[error("cannot make this pod's name from the hostname {hostname:?}: give --self")]
    Hostname {
        /// The hostname, as the system reports it.
        hostname: String,
        /// Why it is not a DNS label.
        #[source]
        source: InvalidLabel,
    },
    /// A name built from valid labels is still too long for DNS.
    #[error("the name of {what} is too long for DNS")]
    NameTooLong {
        /// Which name.
        what: String,
        /// hickory's reason.
        #[source]
        source: hickory_proto::ProtoError,
    },
    /// No server answered the query.
    #[error("no answer from {servers} for {name} {record_type}", servers = list(servers))]
    Unreachable {
        /// The servers tried, in order.
        servers: Vec<SocketAddr>,
        /// The name asked for.
        name: Box<Name>,
        /// The type asked for.
        record_type: RecordType,
        /// The last server's failure.
        #[source]
        source: Box<NetError>,
    },
    /// The server answered with an error code other than NXDOMAIN.
    #[error("{server} answered {code} for {name} SRV{hint}", hint = rcode_hint(*code))]
    Rcode {
        /// The server that answered.
        server: SocketAddr,
        /// The name asked for.
        name: Box<Name>,
        /// The response code.
        code: ResponseCode,
    },
    /// NXDOMAIN for the Service, and the namespace has no Services in DNS either.
    #[error(
        "{server} knows no Service in namespace {namespace} ({namespace_name} does not exist): check --namespace and --domain"
    )]
    NoNamespaceInDns {
        /// The server that answered.
        server: SocketAddr,
        /// The namespace.
        namespace: Namespace,
        /// `<ns>.svc.<domain>`.
        namespace_name: Box<Name>,
    },
    /// NXDOMAIN for the Service (its namespace exists, or that could not be told).
    #[error(
        "{name} does not exist on {server}: Service {service} does not exist in namespace {namespace} or has no ready endpoints (a headless Service has no DNS name until a Pod is ready, unless it sets publishNotReadyAddresses)",
        service = key.name, namespace = key.namespace
    )]
    NoService {
        /// The server that answered.
        server: SocketAddr,
        /// The Service.
        key: ServiceKey,
        /// `<svc>.<ns>.svc.<domain>`.
        name: Box<Name>,
    },
    /// `--timeout` passed before the wait was over.
    #[error(
        "gave up after {timeout} waiting for {waiting_for} (asking {servers})",
        timeout = humantime::format_duration(*timeout), servers = list(servers)
    )]
    TimedOut {
        /// The `--timeout`.
        timeout: Duration,
        /// What was awaited.
        waiting_for: String,
        /// The servers asked.
        servers: Vec<SocketAddr>,
        /// The last failure seen, if the last poll failed.
        #[source]
        last: Option<Box<Error>>,
    },
    /// A hook could not be started.
    #[error("cannot run the {hook} hook {command:?} with sh")]
    HookSpawn {
        /// Which hook.
        hook: HookKind,
        /// The command.
        command: String,
        /// Why it could not start.
        #[source]
        source: io::Error,
    },
    /// Waiting for a hook failed.
    #[error("lost track of the {hook} hook {command:?}")]
    HookWait {
        /// Which hook.
        hook: HookKind,
        /// The command.
        command: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A hook exited non-zero (or was killed): `peers` exits with the same status.
    #[error("the {hook} hook {command:?} failed: {status}{hint}", hint = status_hint(*status))]
    HookFailed {
        /// Which hook.
        hook: HookKind,
        /// The command.
        command: String,
        /// How it ended.
        status: ExitStatus,
    },
    /// The peer list could not be rendered as JSON.
    #[error("cannot render the peers as JSON")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// The process exit code this error calls for: the hook's own status when a hook failed
    /// (128 + signal when it was killed), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::HookFailed { status, .. } => exit_code_of(*status),
            _ => 1,
        }
    }

    /// Whether this is an answer ("there is no such name") rather than a failure to get one:
    /// such polls are repeated at the normal interval, failures with backoff.
    fn is_negative_answer(&self) -> bool {
        matches!(self, Self::NoService { .. } | Self::NoNamespaceInDns { .. })
    }
}

/// Why a default cannot be taken from `resolv.conf`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolvConfError {
    /// The file cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file has no `search` line.
    #[error("{} has no search line", path.display())]
    NoSearch {
        /// The file.
        path: PathBuf,
    },
    /// The first search domain is not a Kubernetes namespace domain.
    #[error("the first search domain of {}, {first:?}, is not <namespace>.svc.<cluster-domain>", path.display())]
    NotNamespaceDomain {
        /// The file.
        path: PathBuf,
        /// The first search domain.
        first: String,
    },
    /// The file lists no nameserver.
    #[error("{} lists no nameserver", path.display())]
    NoNameserver {
        /// The file.
        path: PathBuf,
    },
}

/// One of the two hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    /// `--on-start`: the first list that contains this pod.
    OnStart,
    /// `--on-change`: every later change.
    OnChange,
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::OnStart => "--on-start",
            Self::OnChange => "--on-change",
        })
    }
}

/// What `resolv.conf` tells a pod: its nameservers and its search list.
///
/// In a pod, kubelet writes `search <ns>.svc.<domain> svc.<domain> <domain>`, which gives both
/// the namespace and the cluster domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// The file it was read from (for messages).
    pub path: PathBuf,
    /// The `nameserver` lines.
    pub nameservers: Vec<IpAddr>,
    /// The `search` domains, lowercase, without trailing dots.
    pub search: Vec<String>,
}

impl ResolvConf {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<Self, ResolvConfError> {
        let bytes = std::fs::read(path).map_err(|source| ResolvConfError::Read {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self::parse(path, &bytes))
    }

    /// Parses the text of a `resolv.conf` with the `resolv-conf` crate. Lines it does not
    /// understand are skipped (and logged at debug), as the C library skips them.
    pub fn parse(path: &Path, bytes: &[u8]) -> Self {
        let (parsed, errors) = resolv_conf::Config::parse_with_errors(bytes);
        for error in errors {
            debug!(path = %path.display(), %error, "skipped a resolv.conf line");
        }
        Self {
            path: path.to_owned(),
            nameservers: parsed.nameservers.iter().map(IpAddr::from).collect(),
            search: parsed
                .get_search()
                .map(|domains| {
                    domains
                        .iter()
                        .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The namespace: the first label of the first search domain when that domain is
    /// `<ns>.svc.<domain>` (`default.svc.cluster.local` gives `default`).
    pub fn namespace(&self) -> Result<&str, ResolvConfError> {
        let first = self
            .search
            .first()
            .ok_or_else(|| ResolvConfError::NoSearch {
                path: self.path.clone(),
            })?;
        match first.split('.').collect::<Vec<_>>().as_slice() {
            [namespace, "svc", domain @ ..] if !namespace.is_empty() && !domain.is_empty() => {
                Ok(namespace)
            }
            _ => Err(ResolvConfError::NotNamespaceDomain {
                path: self.path.clone(),
                first: first.clone(),
            }),
        }
    }

    /// The cluster domain: what follows `svc.` in the first search domain that has it
    /// (`default.svc.cluster.local` or `svc.cluster.local` give `cluster.local`).
    pub fn cluster_domain(&self) -> Option<&str> {
        self.search.iter().find_map(|domain| {
            let rest = if let Some(rest) = domain.strip_prefix("svc.") {
                rest
            } else {
                domain.split_once(".svc.").map(|(_, rest)| rest)?
            };
            (!rest.is_empty()).then_some(rest)
        })
    }

    /// The nameservers, on port 53.
    pub fn servers(&self) -> Result<Vec<SocketAddr>, ResolvConfError> {
        if self.nameservers.is_empty() {
            return Err(ResolvConfError::NoNameserver {
                path: self.path.clone(),
            });
        }
        Ok(self
            .nameservers
            .iter()
            .map(|ip| SocketAddr::new(*ip, DNS_PORT))
            .collect())
    }
}

/// What the user typed (flags and environment), before defaults and validation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The governing Service of the StatefulSet.
    pub service: String,
    /// The namespace (`--namespace`, else `POD_NAMESPACE`).
    pub namespace: Option<String>,
    /// The cluster domain.
    pub domain: Option<String>,
    /// The servers to ask, in order.
    pub servers: Vec<SocketAddr>,
    /// Where this pod's name comes from.
    pub self_name: SelfName,
    /// Where the defaults come from.
    pub resolv_conf: PathBuf,
    /// Time between polls.
    pub interval: Duration,
    /// Give up when the wait is not over after this long.
    pub timeout: Option<Duration>,
    /// Wait until at least this many peers are listed.
    pub min_peers: usize,
}

/// Where this pod's own name (`--self`) comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelfName {
    /// Given: an FQDN, or one label completed as `<label>.<svc>.<ns>.svc.<domain>`.
    Given(String),
    /// This host's name under the Service, as peer-finder makes it.
    FromHostname,
    /// Not needed (`--once` does not look for itself).
    Unused,
}

/// Validated settings of one `stsdns peers` run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The governing Service.
    pub service: ServiceKey,
    /// The cluster domain (fully qualified, lowercase).
    pub domain: Name,
    /// `<svc>.<ns>.svc.<domain>.`: the name asked for.
    pub service_name: Name,
    /// The servers to ask, in order.
    pub servers: Vec<SocketAddr>,
    /// This pod's FQDN (lowercase); `None` when not asked for ([`SelfName::Unused`]).
    pub self_name: Option<Name>,
    /// Time between polls.
    pub interval: Duration,
    /// Give up when the wait is not over after this long (`None`: never).
    pub timeout: Option<Duration>,
    /// Wait until at least this many peers are listed.
    pub min_peers: usize,
}

impl Settings {
    /// Fills the defaults (namespace, domain and servers from `resolv.conf`, this pod's name
    /// from the hostname) and validates every name.
    pub fn resolve(self) -> Result<Options> {
        // Read once; only an error for the defaults that need it.
        let resolv = ResolvConf::read(&self.resolv_conf);

        let service = ServiceName::new(&self.service).map_err(Error::Service)?;
        let namespace = match self.namespace {
            Some(namespace) => namespace,
            None => match resolv {
                Ok(ref conf) => conf.namespace().map_err(Error::NoNamespace)?.to_owned(),
                Err(error) => return Err(Error::NoNamespace(error)),
            },
        };
        let namespace = Namespace::new(&namespace).map_err(Error::Namespace)?;

        let domain = match (&self.domain, &resolv) {
            (Some(domain), _) => domain.clone(),
            (None, Ok(conf)) => conf.cluster_domain().unwrap_or(DEFAULT_DOMAIN).to_owned(),
            (None, Err(error)) => {
                debug!(%error, "no resolv.conf: the cluster domain defaults to {DEFAULT_DOMAIN}");
                DEFAULT_DOMAIN.to_owned()
            }
        };
        let zone = config::parse_zones(std::slice::from_ref(&domain))
            .map_err(|source| Error::Domain {
                domain: domain.clone(),
                source,
            })?
            .pop()
            .expect("one zone in, one zone out");

        let servers = if !self.servers.is_empty() {
            self.servers
        } else {
            match resolv {
                Ok(conf) => conf.servers().map_err(Error::NoServer)?,
                Err(error) => return Err(Error::NoServer(error)),
            }
        };

        let key = ServiceKey {
            namespace,
            name: service,
        };
        let service_name = names::service(&key, &zone).map_err(|source| Error::NameTooLong {
            what: format!("Service {key}"),
            source,
        })?;
        let self_name = match self.self_name {
            SelfName::Given(value) => Some(self_from_flag(&value, &service_name)?),
            SelfName::FromHostname => {
                let hostname = gethostname::gethostname().to_string_lossy().into_owned();
                Some(self_from_hostname(&hostname, &service_name)?)
            }
            SelfName::Unused => None,
        };

        Ok(Options {
            service: key,
            domain: zone,
            service_name,
            servers,
            self_name,
            interval: self.interval,
            timeout: self.timeout,
            min_peers: self.min_peers,
        })
    }
}

/// `--self`: an FQDN, or a single label completed as `<label>.<svc>.<ns>.svc.<domain>`.
fn self_from_flag(value: &str, service_name: &Name) -> Result<Name> {
    let invalid = |source| Error::SelfName {
        value: value.to_owned(),
        source,
    };
    let trimmed = value.trim_end_matches('.');
    if trimmed.contains('.') {
        Ok(Name::from_ascii(format!("{trimmed}."))
            .map_err(invalid)?
            .to_lowercase())
    } else {
        // From the label's bytes, as the server makes the names it answers (no IDNA mapping,
        // which would refuse an `xn--` label that is a valid pod name).
        Ok(Name::from_ascii(trimmed)
            .and_then(|label| label.append_domain(service_name))
            .map_err(invalid)?
            .to_lowercase())
    }
}

/// This pod's FQDN from its hostname, as peer-finder makes it: the hostname's first label (a
/// pod's hostname is its name, or its FQDN with `setHostnameAsFQDN`) under the Service.
pub fn self_from_hostname(hostname: &str, service_name: &Name) -> Result<Name> {
    let label = hostname.split('.').next().unwrap_or_default();
    let host = Hostname::new(&label.to_ascii_lowercase()).map_err(|source| Error::Hostname {
        hostname: hostname.to_owned(),
        source,
    })?;
    names::endpoint(&host, service_name).map_err(|source| Error::NameTooLong {
        what: format!("host {host}"),
        source,
    })
}

/// One peer: an SRV target of the Service's bare name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Peer {
    /// The FQDN, lowercase, without the trailing dot.
    pub host: String,
    /// The lowest port the SRV answer gives for this host.
    pub port: u16,
    /// The StatefulSet ordinal: the number after the last `-` of the first label.
    pub ordinal: Option<u64>,
    /// The host's first address (IPv4 before IPv6, then ascending) from the additional
    /// section (`None` when the server sent none).
    pub address: Option<IpAddr>,
    /// Every port the SRV answer gives for this host, ascending.
    pub ports: Vec<u16>,
    /// Every address of the host in the additional section, sorted as for `address`, so that
    /// every server gives the same list.
    pub addresses: Vec<IpAddr>,
}

/// The ordinal of a StatefulSet pod name's first label (`web-10` → 10), by the same rule
/// that orders them ([`names::ordinal_order`]).
pub fn ordinal(label: &str) -> Option<u64> {
    let (stem, number, _) = names::ordinal_order(label);
    // The stem is the whole label exactly when the label has no `-<digits>` suffix.
    (stem.len() < label.len()).then_some(number)
}

/// The first label of a name, as text.
fn first_label(name: &Name) -> String {
    name.iter()
        .next()
        .map(|label| String::from_utf8_lossy(label).to_ascii_lowercase())
        .unwrap_or_default()
}

/// A name as peers are listed: lowercase, no trailing dot.
fn host_text(name: &Name) -> String {
    name.to_lowercase()
        .to_string()
        .trim_end_matches('.')
        .to_owned()
}

/// The peers an SRV answer lists: one per target, with its ports and the addresses of the
/// additional section, in ordinal order, then by name.
pub fn peers_from_answer(message: &Message) -> Vec<Peer> {
    let mut addresses: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    for record in &message.additionals {
        let ip = match &record.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(aaaa) => IpAddr::V6(aaaa.0),
            _ => continue,
        };
        addresses
            .entry(host_text(&record.name))
            .or_default()
            .push(ip);
    }
    let mut by_host: BTreeMap<String, (String, Vec<u16>)> = BTreeMap::new();
    for record in &message.answers {
        let RData::SRV(srv) = &record.data else {
            continue;
        };
        // A target of "." means "no service here" (RFC 2782).
        if srv.target.is_root() {
            continue;
        }
        let (_, ports) = by_host
            .entry(host_text(&srv.target))
            .or_insert_with(|| (first_label(&srv.target), Vec::new()));
        if !ports.contains(&srv.port) {
            ports.push(srv.port);
        }
    }
    let mut peers: Vec<(String, Peer)> = by_host
        .into_iter()
        .map(|(host, (label, mut ports))| {
            ports.sort_unstable();
            let mut addresses = addresses.get(&host).cloned().unwrap_or_default();
            // IpAddr orders every IPv4 address before every IPv6 one.
            addresses.sort_unstable();
            addresses.dedup();
            let peer = Peer {
                ordinal: ordinal(&label),
                port: ports.first().copied().unwrap_or_default(),
                address: addresses.first().copied(),
                host,
                ports,
                addresses,
            };
            (label, peer)
        })
        .collect();
    peers.sort_by(|(a, pa), (b, pb)| {
        names::ordinal_order(a)
            .cmp(&names::ordinal_order(b))
            .then_with(|| pa.host.cmp(&pb.host))
    });
    peers.into_iter().map(|(_, peer)| peer).collect()
}

/// The peers as text: one FQDN per line.
pub fn render_text(peers: &[Peer]) -> String {
    peers.iter().map(|p| format!("{}\n", p.host)).collect()
}

/// The peers as a JSON array of objects (`host`, `port`, `ordinal`, `address`, `ports`,
/// `addresses`), with a trailing newline.
pub fn render_json(peers: &[Peer]) -> Result<String> {
    let mut text = serde_json::to_string_pretty(peers)?;
    text.push('\n');
    Ok(text)
}

/// How a query travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// One query to one server with hickory's client, bounded by [`QUERY_TIMEOUT`].
async fn query(
    server: SocketAddr,
    name: &Name,
    record_type: RecordType,
    transport: Transport,
) -> Result<Message, NetError> {
    let exchange = async {
        let provider = TokioRuntimeProvider::default();
        // The background half drives the connection; it runs beside the query in this task
        // and is dropped with it, so nothing outlives a poll.
        match transport {
            Transport::Udp => {
                let stream = UdpClientStream::builder(server, provider)
                    .with_timeout(Some(QUERY_TIMEOUT))
                    .build();
                let (mut client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
                tokio::select! {
                    response = client.query(name.clone(), DNSClass::IN, record_type) => {
                        Ok(response?.into_message())
                    }
                    () = background => Err(NetError::Message("the connection closed before the answer")),
                }
            }
            Transport::Tcp => {
                let (stream, sender) =
                    TcpClientStream::new(server, None, Some(QUERY_TIMEOUT), provider);
                let (mut client, background) = Client::<TokioRuntimeProvider>::with_timeout(
                    stream.await?,
                    sender,
                    QUERY_TIMEOUT,
                );
                tokio::select! {
                    response = client.query(name.clone(), DNSClass::IN, record_type) => {
                        Ok(response?.into_message())
                    }
                    () = background => Err(NetError::Message("the connection closed before the answer")),
                }
            }
        }
    };
    tokio::time::timeout(QUERY_TIMEOUT, exchange)
        .await
        .unwrap_or(Err(NetError::Timeout))
}

/// Asks each server in turn until one answers (UDP, then TCP when truncated). SERVFAIL and
/// REFUSED pass to the next server; the last such answer is returned when no server does better.
async fn ask(
    servers: &[SocketAddr],
    name: &Name,
    record_type: RecordType,
) -> Result<(SocketAddr, Message)> {
    let mut last_failure = None;
    let mut last_refusal = None;
    for &server in servers {
        let mut answer = query(server, name, record_type, Transport::Udp).await;
        if matches!(&answer, Ok(message) if message.metadata.truncation) {
            debug!(%server, %name, "answer truncated, asking again over TCP");
            answer = query(server, name, record_type, Transport::Tcp).await;
        }
        match answer {
            Ok(message)
                if matches!(
                    message.metadata.response_code,
                    ResponseCode::ServFail | ResponseCode::Refused
                ) =>
            {
                debug!(%server, code = %message.metadata.response_code, "trying the next server");
                last_refusal = Some((server, message));
            }
            Ok(message) => return Ok((server, message)),
            Err(error) => {
                debug!(%server, %error, "no answer");
                last_failure = Some(error);
            }
        }
    }
    if let Some(refusal) = last_refusal {
        return Ok(refusal);
    }
    Err(Error::Unreachable {
        servers: servers.to_vec(),
        name: Box::new(name.clone()),
        record_type,
        source: Box::new(last_failure.unwrap_or(NetError::NoConnections)),
    })
}

/// One poll: the SRV query for the Service's bare name, as an ordered peer list.
///
/// NOERROR with no answers (NODATA) is an empty list. NXDOMAIN is an error that says which
/// name is missing: a second query for `<ns>.svc.<domain>` tells a wrong namespace or domain
/// from a Service that does not exist or has no ready endpoints.
pub async fn lookup(options: &Options) -> Result<Vec<Peer>> {
    let (server, message) = ask(&options.servers, &options.service_name, RecordType::SRV).await?;
    match message.metadata.response_code {
        ResponseCode::NoError => Ok(peers_from_answer(&message)),
        ResponseCode::NXDomain => Err(explain_nxdomain(options, server).await),
        code => Err(Error::Rcode {
            server,
            name: Box::new(options.service_name.clone()),
            code,
        }),
    }
}

/// Tells a missing namespace from a missing (or not ready) Service.
async fn explain_nxdomain(options: &Options, server: SocketAddr) -> Error {
    let no_service = Error::NoService {
        server,
        key: options.service.clone(),
        name: Box::new(options.service_name.clone()),
    };
    let Ok(namespace_name) = names::namespace(&options.service.namespace, &options.domain) else {
        return no_service;
    };
    match query(server, &namespace_name, RecordType::SOA, Transport::Udp).await {
        Ok(message) if message.metadata.response_code == ResponseCode::NXDomain => {
            Error::NoNamespaceInDns {
                server,
                namespace: options.service.namespace.clone(),
                namespace_name: Box::new(namespace_name),
            }
        }
        _ => no_service,
    }
}

/// The `--on-start` and `--on-change` commands, run with `sh -c`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    /// Runs once, when the list first contains this pod (and `--min-peers`).
    pub on_start: Option<String>,
    /// Runs on every later change (and for the first list when there is no `on_start`).
    pub on_change: Option<String>,
}

/// What a wait is for, for the timeout message.
#[derive(Debug, Clone)]
enum Waiting<'a> {
    /// The first list with this pod (its FQDN as listed) and enough peers.
    Start(&'a Options, String),
    /// One answer with enough peers.
    Once(&'a Options),
}

impl fmt::Display for Waiting<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options = match self {
            Self::Start(options, self_host) => {
                write!(
                    f,
                    "{self_host} to be listed in {} SRV",
                    options.service_name
                )?;
                options
            }
            Self::Once(options) => {
                write!(f, "an answer for {} SRV", options.service_name)?;
                options
            }
        };
        if options.min_peers > 0 {
            write!(f, " with at least {} peer(s)", options.min_peers)?;
        }
        Ok(())
    }
}

/// Repeats [`lookup`] until it answers: failures are logged (once per distinct message) and
/// retried with backoff, all bounded by the `--timeout` deadline until [`Poller::started`].
struct Poller<'a> {
    options: &'a Options,
    deadline: Option<Instant>,
    failures: u32,
    last_error: Option<Error>,
    last_logged: Option<String>,
}

impl<'a> Poller<'a> {
    fn new(options: &'a Options) -> Self {
        Self {
            options,
            deadline: options.timeout.map(|timeout| Instant::now() + timeout),
            failures: 0,
            last_error: None,
            last_logged: None,
        }
    }

    /// The wait is over: from now on, polls are not bounded by `--timeout`.
    fn started(&mut self) {
        self.deadline = None;
    }

    /// The next answer (possibly an empty list).
    async fn poll(&mut self, waiting: &Waiting<'_>) -> Result<Vec<Peer>> {
        loop {
            let result = match self.deadline {
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline, lookup(self.options)).await {
                        Ok(result) => result,
                        Err(_) => return Err(self.timed_out(waiting)),
                    }
                }
                None => lookup(self.options).await,
            };
            match result {
                Ok(peers) => {
                    if self.last_logged.take().is_some() {
                        info!(service = %self.options.service_name, "the peer lookup answers again");
                    }
                    self.failures = 0;
                    self.last_error = None;
                    return Ok(peers);
                }
                Err(error) => {
                    let message = chain(&error);
                    if self.last_logged.as_deref() == Some(message.as_str()) {
                        debug!(error = %message, "peer lookup failed again");
                    } else {
                        warn!(error = %message, "peer lookup failed; retrying");
                        self.last_logged = Some(message);
                    }
                    let delay = if error.is_negative_answer() {
                        self.options.interval
                    } else {
                        self.failures = self.failures.saturating_add(1);
                        backoff(self.options.interval, self.failures)
                    };
                    self.last_error = Some(error);
                    self.sleep(delay, waiting).await?;
                }
            }
        }
    }

    /// Waits `--interval` before the next poll.
    async fn pause(&mut self, waiting: &Waiting<'_>) -> Result<()> {
        self.sleep(self.options.interval, waiting).await
    }

    async fn sleep(&mut self, delay: Duration, waiting: &Waiting<'_>) -> Result<()> {
        match self.deadline {
            Some(deadline) if Instant::now() + delay >= deadline => {
                tokio::time::sleep_until(deadline).await;
                Err(self.timed_out(waiting))
            }
            _ => {
                tokio::time::sleep(delay).await;
                Ok(())
            }
        }
    }

    fn timed_out(&mut self, waiting: &Waiting<'_>) -> Error {
        Error::TimedOut {
            timeout: self.options.timeout.unwrap_or_default(),
            waiting_for: waiting.to_string(),
            servers: self.options.servers.clone(),
            last: self.last_error.take().map(Box::new),
        }
    }
}

/// The wait after the `failures`-th failure in a row: `interval`, doubled per failure, at
/// most [`MAX_BACKOFF`] (or `interval`, if that is longer).
fn backoff(interval: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    interval
        .saturating_mul(factor)
        .min(MAX_BACKOFF.max(interval))
}

/// Polls until one answer lists at least `--min-peers` peers, and returns it.
///
/// With neither `--min-peers` nor `--timeout`, this is one poll and its failure is final (as
/// `dig` would be); with either, failures are retried until the list is there or the timeout.
pub async fn once(options: &Options) -> Result<Vec<Peer>> {
    if options.min_peers == 0 && options.timeout.is_none() {
        return lookup(options).await;
    }
    let mut poller = Poller::new(options);
    let waiting = Waiting::Once(options);
    let mut reported = None;
    loop {
        let peers = poller.poll(&waiting).await?;
        if peers.len() >= options.min_peers {
            return Ok(peers);
        }
        if reported != Some(peers.len()) {
            info!(
                peers = peers.len(),
                min_peers = options.min_peers,
                "waiting for more peers"
            );
            reported = Some(peers.len());
        }
        poller.pause(&waiting).await?;
    }
}

/// Polls forever (as peer-finder): once the list contains this pod (and `--min-peers`), runs
/// `on_start` (or `on_change` when there is no `on_start`), then `on_change` whenever the list
/// changes again. A list without this pod is never delivered: it is logged and waited out.
///
/// Returns `Ok` after the first list when there is no `on_change` (the init-container
/// pattern); an error when a hook fails or `--timeout` passes before the first list.
pub async fn watch(options: &Options, hooks: &Hooks) -> Result<()> {
    let self_name = options.self_name.as_ref().ok_or(Error::NoSelfName)?;
    let self_host = host_text(self_name);
    let mut poller = Poller::new(options);
    let waiting = Waiting::Start(options, self_host.clone());
    let mut delivered: Option<Vec<String>> = None;
    let mut reported: Option<Vec<String>> = None;
    loop {
        let peers = poller.poll(&waiting).await?;
        let hosts: Vec<String> = peers.iter().map(|p| p.host.clone()).collect();
        if delivered.as_ref() != Some(&hosts) {
            let listed = hosts.contains(&self_host);
            if !listed || hosts.len() < options.min_peers {
                if reported.as_ref() != Some(&hosts) {
                    if listed {
                        info!(peers = %hosts.join(" "), min_peers = options.min_peers, "waiting for more peers");
                    } else {
                        info!(self = %self_host, peers = %hosts.join(" "), "have not found myself yet");
                    }
                    reported = Some(hosts);
                }
            } else {
                let first = delivered.is_none();
                let hook = if first {
                    hooks
                        .on_start
                        .as_deref()
                        .map(|command| (HookKind::OnStart, command))
                        .or_else(|| {
                            hooks
                                .on_change
                                .as_deref()
                                .map(|command| (HookKind::OnChange, command))
                        })
                } else {
                    hooks
                        .on_change
                        .as_deref()
                        .map(|command| (HookKind::OnChange, command))
                };
                info!(
                    was = %delivered.as_deref().unwrap_or_default().join(" "),
                    now = %hosts.join(" "),
                    "peer list updated"
                );
                if let Some((kind, command)) = hook {
                    run_hook(kind, command, &peers, self_name).await?;
                }
                if first && hooks.on_change.is_none() {
                    return Ok(());
                }
                poller.started();
                reported = None;
                delivered = Some(hosts);
            }
        }
        poller.pause(&waiting).await?;
    }
}

/// Runs `sh -c command` with the peers on standard input (one FQDN per line) and in the
/// environment: `PEERS` (space-separated), `PEER_COUNT`, `SELF_ORDINAL` (empty when this
/// pod's name has none). Standard output and error are the hook's own.
async fn run_hook(kind: HookKind, command: &str, peers: &[Peer], self_name: &Name) -> Result<()> {
    let hosts: Vec<&str> = peers.iter().map(|p| p.host.as_str()).collect();
    let self_ordinal = ordinal(&first_label(self_name))
        .map(|n| n.to_string())
        .unwrap_or_default();
    info!(hook = %kind, command, peers = hosts.len(), "running hook");
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("PEERS", hosts.join(" "))
        .env("PEER_COUNT", hosts.len().to_string())
        .env("SELF_ORDINAL", self_ordinal)
        .stdin(Stdio::piped())
        // If peers is stopped while a hook runs, the hook goes with it.
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| Error::HookSpawn {
            hook: kind,
            command: command.to_owned(),
            source,
        })?;
    let input = render_text(peers);
    let stdin = child.stdin.take();
    let feed = async move {
        if let Some(mut stdin) = stdin {
            // A hook that does not read its input is fine: ignore the broken pipe.
            if let Err(error) = stdin.write_all(input.as_bytes()).await
                && error.kind() != io::ErrorKind::BrokenPipe
            {
                warn!(%error, "cannot write the peers to the hook's standard input");
            }
            // Dropping stdin closes it, so `cat` and `while read` see the end.
        }
    };
    let (_, status) = tokio::join!(feed, child.wait());
    let status = status.map_err(|source| Error::HookWait {
        hook: kind,
        command: command.to_owned(),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::HookFailed {
            hook: kind,
            command: command.to_owned(),
            status,
        })
    }
}

/// The exit code that reports `status`: its code, or 128 + the signal that killed it.
fn exit_code_of(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1);
    u8::try_from(code).ok().filter(|c| *c != 0).unwrap_or(1)
}

/// What the shell's own exit codes mean.
fn status_hint(status: ExitStatus) -> &'static str {
    match status.code() {
        Some(127) => " (the shell cannot find the command: is it installed and on PATH?)",
        Some(126) => " (the shell found the command but cannot execute it: is it executable?)",
        _ => "",
    }
}

/// What a response code usually means for this query.
fn rcode_hint(code: ResponseCode) -> &'static str {
    match code {
        ResponseCode::Refused => {
            " (the server does not serve this domain: check --domain and --server)"
        }
        ResponseCode::ServFail => " (stsdns answers SERVFAIL until its first sync)",
        _ => "",
    }
}

/// `a, b, c`.
fn list(servers: &[SocketAddr]) -> String {
    servers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// An error and its causes, `: `-separated, for one log line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, OpCode};
    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::{A, SRV};

    fn conf(text: &str) -> ResolvConf {
        ResolvConf::parse(Path::new("/etc/resolv.conf"), text.as_bytes())
    }

    fn name(text: &str) -> Name {
        Name::from_ascii(text).expect("valid name")
    }

    #[test]
    fn reads_a_pod_resolv_conf() {
        let conf = conf(
            "# kubelet\nsearch prod.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5 edns0 trust-ad\n",
        );
        assert_eq!(conf.namespace().expect("namespace"), "prod");
        assert_eq!(conf.cluster_domain(), Some("cluster.local"));
        assert_eq!(
            conf.servers().expect("servers"),
            ["10.96.0.10:53".parse::<SocketAddr>().expect("addr")]
        );
    }

    #[test]
    fn namespace_needs_a_namespace_search_domain() {
        let cases = [
            ("nameserver 1.1.1.1\n", "has no search line"),
            ("search example.com\n", "\"example.com\", is not"),
            (
                "search svc.cluster.local\n",
                "\"svc.cluster.local\", is not",
            ),
        ];
        for (text, expected) in cases {
            let error = conf(text).namespace().expect_err(text).to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn cluster_domain_comes_from_the_first_svc_search_domain() {
        let cases = [
            (
                "search example.com default.svc.corp.internal\n",
                Some("corp.internal"),
            ),
            ("search svc.k8s.example.\n", Some("k8s.example")),
            ("search example.com\n", None),
            ("nameserver 1.1.1.1\n", None),
        ];
        for (text, expected) in cases {
            assert_eq!(conf(text).cluster_domain(), expected, "{text}");
        }
    }

    fn settings(resolv_conf: &Path) -> Settings {
        Settings {
            service: "web".into(),
            namespace: None,
            domain: None,
            servers: Vec::new(),
            self_name: SelfName::Given("web-3".into()),
            resolv_conf: resolv_conf.to_owned(),
            interval: Duration::from_secs(1),
            timeout: None,
            min_peers: 0,
        }
    }

    #[test]
    fn settings_default_from_resolv_conf() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("resolv.conf");
        std::fs::write(
            &path,
            "search db.svc.corp.internal svc.corp.internal corp.internal\nnameserver 10.0.0.10\nnameserver fd00::10\n",
        )
        .expect("write");
        let options = settings(&path).resolve().expect("resolves");
        assert_eq!(options.service.to_string(), "db/web");
        assert_eq!(options.service_name, name("web.db.svc.corp.internal."));
        assert_eq!(
            options.self_name,
            Some(name("web-3.web.db.svc.corp.internal."))
        );
        assert_eq!(
            options.servers,
            [
                "10.0.0.10:53".parse::<SocketAddr>().expect("addr"),
                "[fd00::10]:53".parse().expect("addr")
            ]
        );

        // Flags win over the file.
        let mut explicit = settings(&path);
        explicit.namespace = Some("prod".into());
        explicit.domain = Some("Cluster.Local".into());
        explicit.servers = vec!["127.0.0.1:5353".parse().expect("addr")];
        explicit.self_name = SelfName::Given("Web-0.web.prod.svc.cluster.local.".into());
        let options = explicit.resolve().expect("resolves");
        assert_eq!(options.service_name, name("web.prod.svc.cluster.local."));
        assert_eq!(
            options.self_name,
            Some(name("web-0.web.prod.svc.cluster.local."))
        );
        assert_eq!(options.servers.len(), 1);
    }

    #[test]
    fn missing_resolv_conf_is_only_an_error_when_a_default_needs_it() {
        let path = Path::new("/nonexistent/resolv.conf");
        let error = settings(path).resolve().expect_err("no namespace");
        assert!(matches!(error, Error::NoNamespace(_)), "{error:?}");
        assert!(chain(&error).contains("cannot read /nonexistent/resolv.conf"));

        let mut no_server = settings(path);
        no_server.namespace = Some("default".into());
        let error = no_server.resolve().expect_err("no server");
        assert!(matches!(error, Error::NoServer(_)), "{error:?}");

        let mut complete = settings(path);
        complete.namespace = Some("default".into());
        complete.servers = vec!["127.0.0.1:53".parse().expect("addr")];
        let options = complete.resolve().expect("nothing needs the file");
        assert_eq!(options.domain, name("cluster.local."));
    }

    #[test]
    fn invalid_names_are_rejected_with_the_flag() {
        let path = Path::new("/nonexistent/resolv.conf");
        let mut bad = settings(path);
        bad.namespace = Some("default".into());
        bad.servers = vec!["127.0.0.1:53".parse().expect("addr")];
        bad.service = "Web_1".into();
        let error = bad.clone().resolve().expect_err("bad service");
        assert!(error.to_string().contains("--service"), "{error}");
        bad.service = "web".into();
        bad.namespace = Some("-x".into());
        let error = bad.resolve().expect_err("bad namespace");
        assert!(error.to_string().contains("--namespace"), "{error}");
    }

    #[test]
    fn self_from_hostname_takes_the_first_label() {
        let service = name("web.default.svc.cluster.local.");
        for hostname in ["web-1", "web-1.web.default.svc.cluster.local", "WEB-1"] {
            assert_eq!(
                self_from_hostname(hostname, &service).expect(hostname),
                name("web-1.web.default.svc.cluster.local."),
            );
        }
        assert!(matches!(
            self_from_hostname("bad_host", &service),
            Err(Error::Hostname { .. })
        ));
    }

    /// `xn--` labels are valid DNS-1123 labels (a pod may be named so) but not valid IDNA:
    /// the name is made from the label's bytes, not mapped as Unicode.
    #[test]
    fn self_names_keep_labels_that_look_like_punycode() {
        let service = name("web.default.svc.cluster.local.");
        let expected = name("xn--a-0.web.default.svc.cluster.local.");
        assert_eq!(
            self_from_hostname("xn--a-0", &service).expect("hostname"),
            expected
        );
        assert_eq!(
            self_from_flag("xn--a-0", &service).expect("--self"),
            expected
        );
        assert_eq!(
            self_from_flag("XN--A-0", &service).expect("--self"),
            expected
        );
        assert!(matches!(
            self_from_flag("web 0", &service),
            Err(Error::SelfName { .. })
        ));
    }

    #[test]
    fn ordinals() {
        assert_eq!(ordinal("web-10"), Some(10));
        assert_eq!(ordinal("my-db-0"), Some(0));
        assert_eq!(ordinal("web"), None);
        assert_eq!(ordinal("web-"), None);
        assert_eq!(ordinal("web-x1"), None);
    }

    #[test]
    fn peers_are_ordered_by_ordinal_deduplicated_and_given_their_addresses() {
        let owner = name("web.default.svc.cluster.local.");
        let target = |host: &str| name(&format!("{host}.web.default.svc.cluster.local."));
        let mut message = Message::new(1, MessageType::Response, OpCode::Query);
        for (host, port) in [
            ("web-10", 80),
            ("web-2", 8080),
            ("web-2", 80),
            ("web-1", 80),
            ("alpha", 80),
        ] {
            message.add_answer(Record::from_rdata(
                owner.clone(),
                5,
                RData::SRV(SRV::new(0, 10, port, target(host))),
            ));
        }
        message.add_answer(Record::from_rdata(
            owner.clone(),
            5,
            RData::SRV(SRV::new(0, 0, 80, Name::root())),
        ));
        message.add_additional(Record::from_rdata(
            target("WEB-2"),
            5,
            RData::A(A::new(10, 0, 0, 2)),
        ));
        let peers = peers_from_answer(&message);
        let hosts: Vec<&str> = peers.iter().map(|p| p.host.as_str()).collect();
        assert_eq!(
            hosts,
            [
                "alpha.web.default.svc.cluster.local",
                "web-1.web.default.svc.cluster.local",
                "web-2.web.default.svc.cluster.local",
                "web-10.web.default.svc.cluster.local",
            ]
        );
        assert_eq!(peers[2].ordinal, Some(2));
        assert_eq!(peers[2].port, 80);
        assert_eq!(peers[2].ports, [80, 8080]);
        assert_eq!(peers[2].address, Some("10.0.0.2".parse().expect("ip")));
        assert_eq!(peers[0].ordinal, None);
        assert_eq!(peers[1].address, None);
        assert_eq!(
            render_text(&peers[..2]),
            "alpha.web.default.svc.cluster.local\nweb-1.web.default.svc.cluster.local\n"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let second = Duration::from_secs(1);
        assert_eq!(backoff(second, 1), second);
        assert_eq!(backoff(second, 2), 2 * second);
        assert_eq!(backoff(second, 4), 8 * second);
        assert_eq!(backoff(second, 40), MAX_BACKOFF);
        assert_eq!(backoff(60 * second, 3), 60 * second);
    }
}
