//! The `stsdns` command line: `serve`, `check` and `peers`. The only place that uses `anyhow`, installs a
//! tracing subscriber, or prints.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use stsdns::app;
use stsdns::config::{self, FeedSource, PodsMode, ServeConfig, ZoneConfig};
use stsdns::model::diagnose::Severity;
use stsdns::peers::SelfName;
use stsdns::records;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// mimalloc returns freed memory to the system and keeps allocation cheap while a large feed
/// is parsed and indexed; glibc's malloc kept most of a 100k-pod parse resident.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Authoritative DNS for Kubernetes headless Services and StatefulSets.
///
/// Answers A/AAAA for <pod>.<svc>.<ns>.svc.cluster.local, the peer list of a StatefulSet as one
/// SRV lookup, and PTR back, from Kubernetes manifests (Service, EndpointSlice, Pod,
/// StatefulSet) as `kubectl get -o yaml` prints them.
#[derive(Debug, Parser)]
#[command(name = "stsdns", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "STSDNS_LOG_FORMAT")]
    log_format: LogFormat,

    /// Only log errors (RUST_LOG overrides).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,

    /// Log more: -v for debug, -vv for every query (RUST_LOG overrides).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve DNS over UDP and TCP. With no --feed, serves the example cluster (zones/).
    Serve(ServeArgs),
    /// Validate a feed without serving: print every record as zone text, then the problems.
    ///
    /// Zone text goes to standard output (load it into Knot or BIND), problems to standard
    /// error. Exits 1 when any problem is an error.
    Check(CheckArgs),
    /// Find the peers of a StatefulSet pod from one SRV lookup (a peer-finder replacement).
    ///
    /// Polls <svc>.<ns>.svc.<domain> SRV on any DNS server (stsdns, CoreDNS, ...), lists the
    /// targets in StatefulSet ordinal order, and runs --on-start once the list contains this
    /// pod, then --on-change on every change, with the list on standard input (one FQDN per
    /// line) and PEERS, PEER_COUNT and SELF_ORDINAL in the environment. With no --on-change it
    /// exits after --on-start (an init container); with no hook at all it just waits for this
    /// pod to be listed. A failing hook makes it exit with the hook's status.
    Peers(PeersArgs),
}

#[derive(Debug, Args)]
struct ZoneArgs {
    /// Cluster domain to serve (repeatable).
    #[arg(
        long = "zone",
        value_name = "DOMAIN",
        default_value = "cluster.local",
        env = "STSDNS_ZONE"
    )]
    zones: Vec<String>,

    /// TTL of answers, in seconds (0 is honoured).
    #[arg(long, value_name = "SECONDS", default_value_t = 5, env = "STSDNS_TTL")]
    ttl: u32,

    /// TTL of negative answers (NXDOMAIN, NODATA), in seconds: the SOA minimum.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 5,
        env = "STSDNS_NEGATIVE_TTL"
    )]
    negative_ttl: u32,

    /// Answer <a-b-c-d>.<ns>.pod.<zone>: disabled, insecure (any IP in a namespace that
    /// exists) or verified (only IPs of existing Pods).
    #[arg(long, value_enum, default_value_t = PodsMode::Disabled, env = "STSDNS_PODS")]
    pods: PodsMode,
}

impl ZoneArgs {
    fn config(&self) -> anyhow::Result<ZoneConfig> {
        Ok(ZoneConfig {
            zones: config::parse_zones(&self.zones)?,
            ttl: self.ttl,
            negative_ttl: self.negative_ttl,
            pods: self.pods,
        })
    }
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// A manifest file or directory (YAML or JSON, as `kubectl get -o yaml|json` prints), reloaded
    /// when it changes; or a stream of watch events (`kubectl get … --watch --output-watch-events
    /// -o json`): `-` for standard input, a FIFO, or a file that is followed as it grows.
    /// Repeatable. Default: the example cluster built into the binary.
    #[arg(long = "feed", value_name = "PATH", env = "STSDNS_FEED")]
    feeds: Vec<PathBuf>,

    /// Watch Services, EndpointSlices, Pods and StatefulSets of a live cluster (in-cluster service
    /// account, or the kubeconfig).
    #[arg(long, env = "STSDNS_KUBE")]
    kube: bool,

    /// The kubeconfig for --kube (default: in-cluster, then KUBECONFIG, then ~/.kube/config).
    #[arg(
        long,
        value_name = "PATH",
        requires = "kube",
        env = "STSDNS_KUBECONFIG"
    )]
    kubeconfig: Option<PathBuf>,

    /// The kubeconfig context for --kube (default: the current context).
    #[arg(long, value_name = "NAME", requires = "kube", env = "STSDNS_CONTEXT")]
    context: Option<String>,

    /// UDP worker threads, each with its own socket (default: the number of CPUs).
    #[arg(long, value_name = "N", env = "STSDNS_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,

    /// Keep the SOA serial in this file, so it never goes backwards across restarts.
    #[arg(long, value_name = "PATH", env = "STSDNS_SERIAL_FILE")]
    serial_file: Option<PathBuf>,

    /// Address to answer on, UDP and TCP (repeatable; port 0 picks a free port).
    #[arg(
        long,
        value_name = "ADDR:PORT",
        default_value = "127.0.0.1:5353",
        env = "STSDNS_LISTEN"
    )]
    listen: Vec<SocketAddr>,

    #[command(flatten)]
    zone: ZoneArgs,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// A manifest file or directory. Default: the example cluster built into the binary.
    #[arg(value_name = "FEED")]
    feed: Option<PathBuf>,

    /// Also write each zone to DIR/<zone>.zone (for loading into Knot or BIND).
    #[arg(long, value_name = "DIR")]
    write_zones: Option<PathBuf>,

    #[command(flatten)]
    zone: ZoneArgs,
}

#[derive(Debug, Args)]
struct PeersArgs {
    /// The Service that governs the StatefulSet (its headless `serviceName`).
    #[arg(long, value_name = "SVC")]
    service: String,

    /// The Service's namespace. Default: the first search domain of --resolv-conf
    /// (`<ns>.svc.<domain>`).
    #[arg(long, value_name = "NS", env = "POD_NAMESPACE")]
    namespace: Option<String>,

    /// The cluster domain. Default: what follows `svc.` in the search list of
    /// --resolv-conf, else cluster.local.
    #[arg(long, value_name = "DOMAIN")]
    domain: Option<String>,

    /// DNS server to ask (repeatable, tried in order). Default: the nameservers of
    /// --resolv-conf, port 53.
    #[arg(long = "server", value_name = "ADDR:PORT")]
    servers: Vec<SocketAddr>,

    /// Time between polls (`1s`, `500ms`, ...). Failures back off from it, up to 30s.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = positive_duration)]
    interval: Duration,

    /// Give up (exit 1, naming the server and the last error) when what is awaited (this
    /// pod in the list, --min-peers, or --once's answer) has not come within DURATION.
    /// Default: wait forever, as peer-finder does.
    #[arg(long, value_name = "DURATION", value_parser = positive_duration)]
    timeout: Option<Duration>,

    /// This pod's name: an FQDN, or one label completed as <label>.<svc>.<ns>.svc.<domain>.
    /// Default: this host's name under the Service.
    #[arg(long = "self", value_name = "FQDN", conflicts_with = "once")]
    self_name: Option<String>,

    /// The resolver configuration the defaults come from.
    #[arg(long, value_name = "PATH", default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,

    /// Run CMD (`sh -c`) once the list contains this pod (and --min-peers): the init step,
    /// e.g. writing a ZooKeeper myid and server list.
    #[arg(long, value_name = "CMD", conflicts_with = "once")]
    on_start: Option<String>,

    /// Run CMD (`sh -c`) whenever the list changes after that (also the first time, when
    /// there is no --on-start). Without it, peers exits 0 after --on-start.
    #[arg(long, value_name = "CMD", conflicts_with = "once")]
    on_change: Option<String>,

    /// Print the list and exit. One poll whose failure is final, unless --min-peers or
    /// --timeout ask to wait.
    #[arg(long)]
    once: bool,

    /// Output of --once: one FQDN per line, or JSON with host, port, ordinal and address.
    #[arg(long, value_enum, default_value_t = PeersFormat::Text, requires = "once")]
    format: PeersFormat,

    /// Wait until at least N peers are listed.
    #[arg(long, value_name = "N", default_value_t = 0)]
    min_peers: usize,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PeersFormat {
    /// One FQDN per line.
    Text,
    /// A JSON array of {host, port, ordinal, address, ports, addresses}.
    Json,
}

fn init_tracing(cli: &Cli) {
    let default = match (cli.quiet, cli.verbose) {
        (true, _) => "stsdns=error,warn",
        (false, 0) => "stsdns=info,warn",
        (false, 1) => "stsdns=debug,warn",
        (false, _) => "stsdns=trace,warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only for a person at a terminal: logs collected from a pipe (kubectl logs,
    // journald, a test) must not carry escape codes.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    // First, before the allocator touches much: the state and the answers are hundreds of
    // thousands of small objects, and with transparent huge pages each 2 MiB page the allocator
    // touched was resident whole (VmHWM at 100k Pods: 215 MiB with them, about 200 without).
    // Only this process is affected. Under THP mode `madvise`, what is allocated before `main`
    // stays on small pages because mimalloc is built not to ask for huge ones (its `no_thp`
    // feature); under `always`, those first pages are huge whatever this does.
    #[cfg(target_os = "linux")]
    let huge_pages = rustix::thread::disable_transparent_huge_pages(true);
    let cli = Cli::parse();
    init_tracing(&cli);
    #[cfg(target_os = "linux")]
    if let Err(error) = huge_pages {
        tracing::debug!(%error, "transparent huge pages stay enabled");
    }
    let result = match &cli.command {
        Command::Serve(args) => serve(args),
        Command::Check(args) => check(args),
        Command::Peers(args) => peers(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("stsdns: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let mut feeds: Vec<FeedSource> = args.feeds.iter().cloned().map(FeedSource::Path).collect();
    if args.kube {
        feeds.push(FeedSource::Kube {
            kubeconfig: args.kubeconfig.clone(),
            context: args.context.clone(),
        });
    }
    if feeds.is_empty() {
        feeds.push(FeedSource::Embedded);
    }
    let config = ServeConfig {
        listen: args.listen.clone(),
        feeds,
        zone: args.zone.config()?,
        serial_file: args.serial_file.clone(),
        threads: args.threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, usize::from),
            usize::from,
        ),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Before anything else: from here on Ctrl-C and SIGTERM stop the server cleanly.
        let signal = shutdown_signal()?;
        tokio::pin!(signal);
        let shutdown = CancellationToken::new();
        let serving = app::serve(&config, shutdown.clone()).await?;
        let addresses: Vec<String> = serving.addresses.iter().map(ToString::to_string).collect();
        let zones: Vec<String> = config.zone.zones.iter().map(ToString::to_string).collect();
        let mut reader = serving.reader.clone();
        let mut server = serving.server;
        let mut reconciler = serving.reconciler;
        if !reader.is_ready() {
            tracing::info!(addresses = %addresses.join(","), "answering SERVFAIL until the first complete state");
        }
        let stop = tokio::select! {
            () = reader.ready() => false,
            () = &mut signal => true,
            result = &mut server => {
                result.context("the server task failed")?.context("the server stopped")?;
                return Ok(ExitCode::FAILURE);
            }
            result = &mut reconciler => {
                result.context("the reconciler failed")??;
                return Ok(ExitCode::FAILURE);
            }
        };
        if !stop {
            let snapshot = reader.load().context("the first snapshot was just published")?;
            let (objects, records) = app::describe(&snapshot);
            // Not println!: a closed stdout must not stop the server.
            if let Err(err) = writeln!(
                std::io::stdout(),
                "stsdns listening on udp={list} tcp={list} zones={zones} objects={objects} records={records} serial={serial}",
                list = addresses.join(","),
                zones = zones.join(","),
                serial = snapshot.serial,
            ) {
                tracing::warn!(%err, "cannot write the listening line to standard output");
            }
            tokio::select! {
                () = &mut signal => {}
                result = &mut server => {
                    result.context("the server task failed")?.context("the server stopped")?;
                    return Ok(ExitCode::FAILURE);
                }
                result = &mut reconciler => {
                    result.context("the reconciler failed")??;
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        tracing::info!("shutting down");
        shutdown.cancel();
        server.await.context("the server task failed")?.context("the server stopped")?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Takes over Ctrl-C and SIGTERM now, so that from here on they stop the server cleanly instead
/// of killing the process; the returned future completes on either.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

/// A positive duration such as `1s`, `500ms` or `2m`.
fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be more than zero".into()),
        Ok(duration) => Ok(duration),
        Err(err) => Err(err.to_string()),
    }
}

fn peers(args: &PeersArgs) -> anyhow::Result<ExitCode> {
    let settings = stsdns::peers::Settings {
        service: args.service.clone(),
        // An empty POD_NAMESPACE (a Downward API typo) counts as unset.
        namespace: args.namespace.clone().filter(|ns| !ns.is_empty()),
        domain: args.domain.clone(),
        servers: args.servers.clone(),
        self_name: match (&args.self_name, args.once) {
            (_, true) => SelfName::Unused,
            (Some(name), false) => SelfName::Given(name.clone()),
            (None, false) => SelfName::FromHostname,
        },
        resolv_conf: args.resolv_conf.clone(),
        interval: args.interval,
        timeout: args.timeout,
        min_peers: args.min_peers,
    };
    let options = settings.resolve()?;
    let hooks = stsdns::peers::Hooks {
        on_start: args.on_start.clone(),
        on_change: args.on_change.clone(),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        if args.once {
            return anyhow::Ok(stsdns::peers::once(&options).await.map(Some));
        }
        let signal = shutdown_signal()?;
        Ok(tokio::select! {
            result = stsdns::peers::watch(&options, &hooks) => result.map(|()| None),
            () = signal => {
                tracing::info!("stopping");
                Ok(None)
            }
        })
    })?;
    match result {
        Ok(Some(list)) => {
            let text = match args.format {
                PeersFormat::Text => stsdns::peers::render_text(&list),
                PeersFormat::Json => stsdns::peers::render_json(&list)?,
            };
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
            {
                // A reader that stopped early (`| head`) got what it wanted.
                Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(err).context("cannot write the peers to standard output")
                }
                _ => Ok(ExitCode::SUCCESS),
            }
        }
        Ok(None) => Ok(ExitCode::SUCCESS),
        Err(err) => {
            // A failed hook's status is ours, so scripts can tell it from our own failures.
            let code = err.exit_code();
            eprintln!("stsdns: error: {:#}", anyhow::Error::new(err));
            Ok(ExitCode::from(code))
        }
    }
}

fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let zone = args.zone.config()?;
    let source = match &args.feed {
        Some(path) => FeedSource::Path(path.clone()),
        None => FeedSource::Embedded,
    };
    let loaded = app::load(std::slice::from_ref(&source))?;
    let serial = app::next_serial(None);
    let snapshot =
        records::build(&loaded.state, &zone, serial).context("cannot build the records")?;

    let text = records::zone_text(&snapshot);
    let mut stdout = std::io::stdout().lock();
    let written = text
        .iter()
        .try_for_each(|(_, zone_text)| stdout.write_all(zone_text.as_bytes()))
        .and_then(|()| stdout.flush());
    match written {
        // The reader has what it wanted (`stsdns check | head`): go on with the problems.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.context("cannot write the zone text to standard output")?,
    }
    drop(stdout);
    if let Some(dir) = &args.write_zones {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (origin, zone_text) in &text {
            let file = dir.join(format!(
                "{}zone",
                origin.to_string().trim_start_matches('.')
            ));
            std::fs::write(&file, zone_text)
                .with_context(|| format!("cannot write {}", file.display()))?;
        }
    }

    for problem in &loaded.problems {
        eprintln!("{problem}");
    }
    let errors = loaded.errors();
    let warnings = loaded
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Warning)
        .count();
    eprintln!(
        "checked {files} file(s): {objects} objects, {records} records, {errors} error(s), {warnings} warning(s)",
        files = loaded.files,
        objects = loaded.state.len(),
        records = snapshot.record_count(),
    );
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
