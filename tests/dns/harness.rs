//! The test harness: a real stsdns server on 127.0.0.1:0 (UDP and TCP), fed from manifests,
//! and real DNS clients to query it.
//!
//! - [`TestServer`] runs the library's server in-process; it stops when dropped.
//! - [`query`] asks with hickory's client over UDP or TCP; [`exchange`] sends a hand-built
//!   message (EDNS sizes, odd flags) over a plain socket and decodes the reply.
//! - [`manifests`] holds small builders for Kubernetes YAML, so fixtures read like the files
//!   users write.

use std::net::SocketAddr;
use std::sync::Once;
use std::time::Duration;

use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use stsdns::app;
use stsdns::config::{FeedSource, PodsMode, ServeConfig, ZoneConfig};
use stsdns::feed;
use stsdns::model::ClusterState;
use stsdns::snapshot::{SnapshotReader, SnapshotWriter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Every network wait in the tests is bounded by this.
pub const TIMEOUT: Duration = Duration::from_secs(10);

static TRACING: Once = Once::new();

/// Installs one tracing subscriber for the whole test binary (`RUST_LOG` to see it).
pub fn init_tracing() {
    TRACING.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    });
}

/// A running server on loopback; dropped, it shuts down.
pub struct TestServer {
    /// The address, for UDP and TCP.
    pub addr: SocketAddr,
    /// Publishes new states.
    pub writer: SnapshotWriter,
    /// Reads what is published.
    pub reader: SnapshotReader,
    /// The zone settings it serves with.
    pub zone: ZoneConfig,
    shutdown: CancellationToken,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestServer {
    /// Starts a server with nothing published yet: in-zone queries get SERVFAIL.
    pub async fn start_empty(zone: ZoneConfig) -> Self {
        init_tracing();
        let config = ServeConfig {
            listen: vec!["127.0.0.1:0".parse().expect("valid address")],
            feeds: Vec::new(),
            zone: zone.clone(),
            serial_file: None,
            threads: 2,
        };
        let shutdown = CancellationToken::new();
        let running = app::start(&config, shutdown.clone())
            .await
            .expect("server starts");
        Self {
            addr: running.addresses[0],
            writer: running.writer,
            reader: running.reader,
            zone,
            shutdown,
        }
    }

    /// Starts a server serving `state`.
    pub async fn with_state(state: &ClusterState, zone: ZoneConfig) -> Self {
        let server = Self::start_empty(zone).await;
        server.publish(state);
        server
    }

    /// Starts a server serving the given manifests (YAML, one or more documents).
    pub async fn with_manifests(yaml: &str, zone: ZoneConfig) -> Self {
        Self::with_state(&state_from_yaml(yaml), zone).await
    }

    /// Starts a server serving the example cluster in `zones/` with default settings.
    pub async fn example() -> Self {
        let loaded = app::load(&[FeedSource::Embedded]).expect("the example loads");
        Self::with_state(&loaded.state, ZoneConfig::default()).await
    }

    /// Publishes `state`; returns the new serial.
    pub fn publish(&self, state: &ClusterState) -> u32 {
        app::publish(&self.writer, state, &self.zone).expect("records build")
    }

    /// Queries over UDP with hickory's client.
    pub async fn udp(&self, name: &str, record_type: RecordType) -> Message {
        query(self.addr, name, record_type, Transport::Udp).await
    }

    /// Queries over TCP with hickory's client.
    pub async fn tcp(&self, name: &str, record_type: RecordType) -> Message {
        query(self.addr, name, record_type, Transport::Tcp).await
    }
}

/// The whole `serve` pipeline in-process: feeds → reconciler → server on 127.0.0.1:0.
pub struct LiveServer {
    /// The address, for UDP and TCP.
    pub addr: SocketAddr,
    /// Reads what the reconciler publishes.
    pub reader: SnapshotReader,
    shutdown: CancellationToken,
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl LiveServer {
    /// Starts feeds, reconciler and server; does not wait for the first state.
    pub async fn start(feeds: Vec<FeedSource>, zone: ZoneConfig) -> Self {
        Self::start_with(feeds, zone, None).await
    }

    /// Like [`LiveServer::start`], keeping the serial in `serial_file`.
    pub async fn start_with(
        feeds: Vec<FeedSource>,
        zone: ZoneConfig,
        serial_file: Option<std::path::PathBuf>,
    ) -> Self {
        init_tracing();
        let config = ServeConfig {
            listen: vec!["127.0.0.1:0".parse().expect("valid address")],
            feeds,
            zone,
            serial_file,
            threads: 2,
        };
        let shutdown = CancellationToken::new();
        let serving = app::serve(&config, shutdown.clone())
            .await
            .expect("serve starts");
        Self {
            addr: serving.addresses[0],
            reader: serving.reader,
            shutdown,
        }
    }

    /// Waits (bounded) for the first complete state; returns its serial.
    pub async fn ready(&mut self) -> u32 {
        tokio::time::timeout(TIMEOUT, self.reader.ready())
            .await
            .expect("the first state is published in time");
        self.serial().expect("ready means published")
    }

    /// The serial of the current snapshot.
    pub fn serial(&self) -> Option<u32> {
        self.reader.load().map(|s| s.serial)
    }

    /// Waits (bounded) until a snapshot other than `serial` is published; returns its serial.
    pub async fn changed_from(&mut self, serial: u32) -> u32 {
        tokio::time::timeout(TIMEOUT, self.reader.changed_from(serial))
            .await
            .expect("a new snapshot is published in time");
        self.serial().expect("published")
    }
}

/// Parses manifests into a state; panics on any error problem so fixtures stay honest.
pub fn state_from_yaml(yaml: &str) -> ClusterState {
    let mut loaded = feed::Loaded::default();
    feed::file::parse_into(&mut loaded, "fixture.yaml", yaml);
    let errors: Vec<String> = loaded
        .problems
        .iter()
        .filter(|p| p.severity == stsdns::model::diagnose::Severity::Error)
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "fixture has errors: {errors:#?}");
    let mut state = ClusterState::new();
    for (object, origin) in loaded.objects {
        state.insert(object, origin);
    }
    state
}

/// Zone settings with `--pods` set.
pub fn zone_with_pods(pods: PodsMode) -> ZoneConfig {
    ZoneConfig {
        pods,
        ..ZoneConfig::default()
    }
}

/// The transport of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

/// Both transports, for tests that must hold over each.
pub const TRANSPORTS: [Transport; 2] = [Transport::Udp, Transport::Tcp];

/// One query with hickory's client (EDNS on, as hickory sends it).
pub async fn query(
    addr: SocketAddr,
    name: &str,
    record_type: RecordType,
    transport: Transport,
) -> Message {
    let name = Name::from_ascii(name).expect("valid query name");
    let provider = TokioRuntimeProvider::default();
    let response = match transport {
        Transport::Udp => {
            let stream = UdpClientStream::builder(addr, provider)
                .with_timeout(Some(TIMEOUT))
                .build();
            let (mut client, bg) = Client::<TokioRuntimeProvider>::from_sender(stream);
            let bg = tokio::spawn(bg);
            let response = client.query(name, DNSClass::IN, record_type).await;
            bg.abort();
            response
        }
        Transport::Tcp => {
            let (stream, sender) = TcpClientStream::new(addr, None, Some(TIMEOUT), provider);
            let (mut client, bg) = Client::<TokioRuntimeProvider>::with_timeout(
                stream.await.expect("tcp connects"),
                sender,
                TIMEOUT,
            );
            let bg = tokio::spawn(bg);
            let response = client.query(name, DNSClass::IN, record_type).await;
            bg.abort();
            response
        }
    };
    response.expect("the server answers").into_message()
}

/// A query message for `name`/`record_type`, with EDNS when `edns_payload` is given.
pub fn query_message(name: &str, record_type: RecordType, edns_payload: Option<u16>) -> Message {
    let mut message = Message::new(0x5151, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(
        Name::from_ascii(name).expect("valid name"),
        record_type,
    ));
    if let Some(payload) = edns_payload {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        message.set_edns(edns);
    }
    message
}

/// Sends raw bytes and returns the raw reply, or `None` when nothing comes back within `wait`.
pub async fn exchange_bytes(
    addr: SocketAddr,
    bytes: &[u8],
    transport: Transport,
    wait: Duration,
) -> Option<Vec<u8>> {
    match transport {
        Transport::Udp => {
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("bind");
            socket.send_to(bytes, addr).await.expect("send");
            let mut buf = vec![0u8; 65535];
            let received = tokio::time::timeout(wait, socket.recv(&mut buf))
                .await
                .ok()?
                .ok()?;
            buf.truncate(received);
            Some(buf)
        }
        Transport::Tcp => {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let length = u16::try_from(bytes.len()).expect("message fits TCP framing");
            stream
                .write_all(&length.to_be_bytes())
                .await
                .expect("write");
            stream.write_all(bytes).await.expect("write");
            let mut len = [0u8; 2];
            tokio::time::timeout(wait, stream.read_exact(&mut len))
                .await
                .ok()?
                .ok()?;
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
            tokio::time::timeout(wait, stream.read_exact(&mut buf))
                .await
                .ok()?
                .ok()?;
            Some(buf)
        }
    }
}

/// Sends a hand-built message and decodes the reply.
pub async fn exchange(
    addr: SocketAddr,
    message: &Message,
    transport: Transport,
) -> (Message, usize) {
    let bytes = message.to_vec().expect("query encodes");
    let reply = exchange_bytes(addr, &bytes, transport, TIMEOUT)
        .await
        .expect("the server replies");
    let size = reply.len();
    (Message::from_vec(&reply).expect("reply decodes"), size)
}

/// The answer records as `name ttl type rdata` lines, in answer order.
pub fn answers(message: &Message) -> Vec<String> {
    message.answers.iter().map(show).collect()
}

/// The additional records (without OPT) as lines, sorted.
pub fn additionals(message: &Message) -> Vec<String> {
    let mut lines: Vec<String> = message
        .additionals
        .iter()
        .filter(|r| r.record_type() != RecordType::OPT)
        .map(show)
        .collect();
    lines.sort();
    lines
}

/// A record as `name ttl type rdata`.
pub fn show(record: &Record) -> String {
    format!(
        "{} {} {} {}",
        record.name,
        record.ttl,
        record.record_type(),
        record.data
    )
}

/// Just the rdata of the answers, sorted: for sets whose order does not matter.
pub fn rdata(message: &Message) -> Vec<String> {
    let mut data: Vec<String> = message.answers.iter().map(|r| r.data.to_string()).collect();
    data.sort();
    data
}

/// Asserts a negative answer: the response code, AA, no answer, and the zone's SOA in authority.
pub fn assert_negative(message: &Message, code: ResponseCode, zone: &str) {
    assert_eq!(message.metadata.response_code, code, "{message}");
    assert!(message.metadata.authoritative, "AA must be set: {message}");
    assert!(message.answers.is_empty(), "no answers expected: {message}");
    let soa: Vec<&Record> = message
        .authorities
        .iter()
        .filter(|r| matches!(r.data, RData::SOA(_)))
        .collect();
    assert_eq!(soa.len(), 1, "one SOA in authority: {message}");
    assert_eq!(soa[0].name.to_string(), zone, "{message}");
}

/// Asserts NOERROR with AA set.
pub fn assert_answer(message: &Message) {
    assert_eq!(
        message.metadata.response_code,
        ResponseCode::NoError,
        "{message}"
    );
    assert!(message.metadata.authoritative, "AA must be set: {message}");
}

/// Builders for the Kubernetes manifests that fixtures are written in.
pub mod manifests {
    /// A headless Service; `ports` are `(name, port, target)` with an empty name for unnamed.
    pub fn headless_service(
        namespace: &str,
        name: &str,
        app: &str,
        ports: &[(&str, u16, &str)],
        publish_not_ready: bool,
    ) -> String {
        service(namespace, name, "None", app, ports, publish_not_ready)
    }

    /// A Service with the given clusterIP (`None` for headless).
    pub fn service(
        namespace: &str,
        name: &str,
        cluster_ip: &str,
        app: &str,
        ports: &[(&str, u16, &str)],
        publish_not_ready: bool,
    ) -> String {
        let mut yaml = format!(
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  clusterIP: {cluster_ip}\n  publishNotReadyAddresses: {publish_not_ready}\n  selector:\n    app: {app}\n  ports:\n"
        );
        for (port_name, port, target) in ports {
            yaml.push_str(&format!(
                "  - port: {port}\n    targetPort: {target}\n    protocol: TCP\n"
            ));
            if !port_name.is_empty() {
                yaml.push_str(&format!("    name: {port_name}\n"));
            }
        }
        yaml
    }

    /// A StatefulSet pod: hostname = name, subdomain = `service`, one container port `web`.
    pub fn pod(
        namespace: &str,
        name: &str,
        app: &str,
        service: &str,
        ips: &[&str],
        ready: bool,
    ) -> String {
        let ready = if ready { "True" } else { "False" };
        let mut yaml = format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  labels:\n    app: {app}\nspec:\n  hostname: {name}\n  subdomain: {service}\n  containers:\n  - name: main\n    image: nginx\n    ports:\n    - name: web\n      containerPort: 80\nstatus:\n  phase: Running\n  conditions:\n  - type: Ready\n    status: \"{ready}\"\n"
        );
        if let Some(first) = ips.first() {
            yaml.push_str(&format!("  podIP: {first}\n  podIPs:\n"));
            for ip in ips {
                yaml.push_str(&format!("  - ip: {ip}\n"));
            }
        }
        yaml
    }

    /// An EndpointSlice for `service`: endpoints are `(address, hostname or "", ready)`;
    /// ports are `(name or "", port)`.
    pub fn endpoint_slice(
        namespace: &str,
        name: &str,
        service: &str,
        address_type: &str,
        endpoints: &[(&str, &str, bool)],
        ports: &[(&str, u16)],
    ) -> String {
        let mut yaml = format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  labels:\n    kubernetes.io/service-name: {service}\naddressType: {address_type}\nendpoints:\n"
        );
        for (address, hostname, ready) in endpoints {
            yaml.push_str(&format!(
                "- addresses: [\"{address}\"]\n  conditions:\n    ready: {ready}\n"
            ));
            if !hostname.is_empty() {
                yaml.push_str(&format!("  hostname: {hostname}\n"));
            }
        }
        yaml.push_str("ports:\n");
        for (port_name, port) in ports {
            yaml.push_str(&format!("- port: {port}\n  protocol: TCP\n"));
            if !port_name.is_empty() {
                yaml.push_str(&format!("  name: {port_name}\n"));
            }
        }
        if ports.is_empty() {
            yaml.push_str("  []\n");
        }
        yaml
    }

    /// A StatefulSet `name` governed by `service`, selecting `app`.
    pub fn statefulset(
        namespace: &str,
        name: &str,
        service: &str,
        app: &str,
        replicas: u32,
    ) -> String {
        format!(
            "---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  serviceName: {service}\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app: {app}\n  template:\n    metadata:\n      labels:\n        app: {app}\n    spec:\n      containers:\n      - name: main\n        image: nginx\n"
        )
    }
}

/// Knot DNS as a second server: `knotd` on 127.0.0.1 serving zone text (what
/// `stsdns check --write-zones` prints), for tests that must hold against any DNS server.
/// The launcher is the one `interop` wrote, shared here.
pub mod knot {
    use std::net::{SocketAddr, TcpListener, UdpSocket};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use hickory_proto::op::{Message, ResponseCode};
    use hickory_proto::rr::RecordType;

    use super::{TIMEOUT, Transport, exchange_bytes, query_message};

    /// How often a bounded wait looks again.
    const POLL: Duration = Duration::from_millis(10);

    /// The path of a program from a Debian package, or a failure that says what to install.
    pub fn require(program: &str, package: &str) -> PathBuf {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let sbin = ["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from);
        std::env::split_paths(&path)
            .chain(sbin)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "{program} is not installed: install the Debian package {package} \
                     (apt-get install {package}); CI installs it in .ci/run"
                )
            })
    }

    /// A port free for both UDP and TCP on 127.0.0.1 right now (knotd binds it a moment later).
    pub fn free_port() -> u16 {
        loop {
            let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
            let port = udp.local_addr().expect("addr").port();
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }

    /// A knotd child serving the zone files of a directory on 127.0.0.1; killed and reaped
    /// when dropped.
    pub struct KnotServer {
        child: Child,
        /// The address it answers on, UDP and TCP.
        pub addr: SocketAddr,
        log: PathBuf,
    }

    impl Drop for KnotServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl KnotServer {
        /// Starts knotd on the zones (`cluster.local.`, …) whose files are `<zone>zone` in
        /// `dir/zones` (as `check --write-zones dir/zones` writes them), and waits, bounded,
        /// until it answers the SOA of every zone. Its configuration, run directory, database
        /// and log go in `dir`.
        pub async fn start(dir: &Path, zones: &[String]) -> Self {
            let knotd = require("knotd", "knot");
            // The port is free when picked but knotd binds it later: try again on a clash.
            let mut last_log = String::new();
            for _ in 0..3 {
                let port = free_port();
                let config = dir.join("knot.conf");
                let log = dir.join("knot.log");
                for sub in ["run", "db"] {
                    std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
                }
                let mut text = format!(
                    "server:\n    rundir: \"{run}\"\n    listen: 127.0.0.1@{port}\n\
                     log:\n  - target: stderr\n    any: info\n\
                     database:\n    storage: \"{db}\"\n\
                     template:\n  - id: default\n    storage: \"{zones}\"\n    \
                     semantic-checks: off\n    zonefile-sync: -1\n    zonefile-load: whole\n    \
                     journal-content: none\n\
                     zone:\n",
                    run = dir.join("run").display(),
                    db = dir.join("db").display(),
                    zones = dir.join("zones").display(),
                );
                for zone in zones {
                    text.push_str(&format!("  - domain: {zone}\n    file: {zone}zone\n"));
                }
                std::fs::write(&config, text).expect("write knot.conf");
                let child = Command::new(&knotd)
                    .arg("-c")
                    .arg(&config)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(&log).expect("create knot.log"))
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot start {}: {e}", knotd.display()));
                let mut knot = Self {
                    child,
                    addr: SocketAddr::from(([127, 0, 0, 1], port)),
                    log,
                };
                if knot.wait_until_answering(zones).await {
                    return knot;
                }
                last_log = knot.log();
            }
            panic!("knotd did not come up:\n{last_log}");
        }

        /// What knotd has logged so far.
        pub fn log(&self) -> String {
            std::fs::read_to_string(&self.log).unwrap_or_default()
        }

        /// Polls every zone's SOA until each answers NOERROR; false if knotd exits first.
        async fn wait_until_answering(&mut self, zones: &[String]) -> bool {
            let deadline = Instant::now() + TIMEOUT;
            let mut pending: Vec<&String> = zones.iter().collect();
            while !pending.is_empty() {
                if self.child.try_wait().expect("try_wait").is_some() {
                    return false;
                }
                assert!(
                    Instant::now() < deadline,
                    "knotd did not answer within {TIMEOUT:?}:\n{}",
                    self.log()
                );
                let bytes = query_message(pending[0], RecordType::SOA, None)
                    .to_vec()
                    .expect("encodes");
                let reply = exchange_bytes(
                    self.addr,
                    &bytes,
                    Transport::Udp,
                    Duration::from_millis(200),
                )
                .await;
                match reply.and_then(|r| Message::from_vec(&r).ok()) {
                    Some(m) if m.metadata.response_code == ResponseCode::NoError => {
                        pending.remove(0);
                    }
                    _ => tokio::time::sleep(POLL).await,
                }
            }
            true
        }
    }
}
