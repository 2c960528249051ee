//! `stsdns peers`, the built binary, against a live server: stsdns in-process (fed changing
//! states) and Knot DNS (serving the zone text `stsdns check --write-zones` prints).
//!
//! Hooks are real `sh -c` commands that append what they get to a file in a temp dir; every
//! wait is a bounded poll of that file, of the child's stderr, or of its exit.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use stsdns::config::ZoneConfig;

use crate::cli;
use crate::harness::knot::KnotServer;
use crate::harness::manifests::{headless_service, pod, statefulset};
use crate::harness::*;

/// The poll interval the tests give `peers`: short, so a change is seen within a few of them.
const INTERVAL: &str = "50ms";

/// How often a test looks at a file or a child again.
const LOOK: Duration = Duration::from_millis(20);

/// `web`, a headless Service in `default` governing StatefulSet `web`, with `replicas` ready
/// Pods `web-0` … (the endpoints are derived from the Pods, as the EndpointSlice controller
/// would).
fn web(replicas: u32) -> String {
    let mut yaml = headless_service("default", "web", "web", &[("web", 80, "web")], false);
    yaml.push_str(&statefulset("default", "web", "web", "web", replicas));
    for ordinal in 0..replicas {
        yaml.push_str(&pod(
            "default",
            &format!("web-{ordinal}"),
            "web",
            "web",
            &[&format!("10.1.0.{}", 10 + ordinal)],
            true,
        ));
    }
    yaml
}

/// The FQDNs of `web-<ordinal>` for each ordinal, as `peers` lists them.
fn hosts(ordinals: impl IntoIterator<Item = u32>) -> Vec<String> {
    ordinals
        .into_iter()
        .map(|n| format!("web-{n}.web.default.svc.cluster.local"))
        .collect()
}

/// `peers --server ADDR --service SVC --namespace NS --domain cluster.local`, with a
/// resolv.conf that does not exist, so nothing depends on the machine's.
fn peers_args(server: SocketAddr, service: &str, namespace: &str) -> Vec<String> {
    [
        "peers",
        "--server",
        &server.to_string(),
        "--service",
        service,
        "--namespace",
        namespace,
        "--domain",
        "cluster.local",
        "--resolv-conf",
        "/nonexistent/resolv.conf",
        "--interval",
        INTERVAL,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The command for `stsdns ARGS` (clean environment, see [`cli::command`]) without
/// `POD_NAMESPACE`, with `env` added.
fn command(args: &[String], env: &[(&str, &Path)]) -> Command {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut command = cli::command(&args);
    command.env_remove("POD_NAMESPACE");
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// Runs `stsdns ARGS` to completion (bounded), off the async runtime so the in-process server
/// keeps answering.
async fn run(args: Vec<String>) -> Output {
    run_with(command(&args, &[]), args.join(" ")).await
}

async fn run_with(command: Command, what: String) -> Output {
    tokio::task::spawn_blocking(move || cli::run_command(command, &what))
        .await
        .expect("the runner thread")
}

/// A running `stsdns peers`; dropped, it is killed and reaped.
struct PeersChild {
    child: Child,
    stderr: Arc<Mutex<String>>,
    what: String,
}

impl Drop for PeersChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PeersChild {
    fn spawn(args: &[String], env: &[(&str, &Path)]) -> Self {
        let mut child = command(args, env)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("stsdns starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("piped");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut text = sink.lock().expect("stderr buffer");
                text.push_str(&line);
                text.push('\n');
            }
        });
        Self {
            child,
            stderr,
            what: args.join(" "),
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr buffer").clone()
    }

    /// Waits (bounded) until stderr contains `needle`.
    async fn wait_for_stderr(&mut self, needle: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.stderr().contains(needle) {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "{} exited with {status} before logging {needle:?}:\n{}",
                    self.what,
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not log {needle:?} within {TIMEOUT:?}:\n{}",
                self.what,
                self.stderr()
            );
            tokio::time::sleep(LOOK).await;
        }
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits (bounded) for the exit.
    async fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {TIMEOUT:?}:\n{}",
                self.what,
                self.stderr()
            );
            tokio::time::sleep(LOOK).await;
        }
    }
}

/// A hook that appends its standard input to `$OUT`, then a `---` line.
const RECORD_HOOK: &str = r#"cat >> "$OUT" && echo --- >> "$OUT""#;

/// The lists the hook recorded in `file`, in order.
fn recorded(file: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut lists = Vec::new();
    let mut current = Vec::new();
    for line in text.lines() {
        if line == "---" {
            lists.push(std::mem::take(&mut current));
        } else {
            current.push(line.to_owned());
        }
    }
    lists
}

/// Waits (bounded) until the hook has recorded exactly `expected`; fails as soon as what it
/// recorded is not a prefix of `expected`.
async fn wait_for_lists(peers: &PeersChild, file: &Path, expected: &[Vec<String>]) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let lists = recorded(file);
        if lists == expected {
            return;
        }
        assert!(
            lists.len() < expected.len() && expected.starts_with(&lists),
            "the hook got {lists:#?}\nexpected {expected:#?}\nstderr:\n{}",
            peers.stderr()
        );
        assert!(
            Instant::now() < deadline,
            "the hook got {lists:#?} within {TIMEOUT:?}, expected {expected:#?}\nstderr:\n{}",
            peers.stderr()
        );
        tokio::time::sleep(LOOK).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_change_gets_every_scale_step_in_ordinal_order() {
    let server = TestServer::with_manifests(&web(3), ZoneConfig::default()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("lists");
    let mut args = peers_args(server.addr, "web", "default");
    args.extend(
        [
            "--self",
            "web-0",
            "--on-start",
            RECORD_HOOK,
            "--on-change",
            RECORD_HOOK,
        ]
        .map(str::to_owned),
    );
    let mut peers = PeersChild::spawn(&args, &[("OUT", &out)]);

    let mut expected = vec![hosts(0..3)];
    wait_for_lists(&peers, &out, &expected).await;

    server.publish(&state_from_yaml(&web(5)));
    expected.push(hosts(0..5));
    wait_for_lists(&peers, &out, &expected).await;

    server.publish(&state_from_yaml(&web(3)));
    expected.push(hosts(0..3));
    wait_for_lists(&peers, &out, &expected).await;

    // Nothing changes any more, so nothing more is delivered: a few polls later the hook has
    // still run exactly three times, and the sidecar is still watching.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(recorded(&out), expected, "{}", peers.stderr());
    assert!(peers.running(), "{}", peers.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_start_waits_until_this_pod_is_published_then_exits_zero() {
    // web-2 is starting: the Service lists web-0 and web-1 only.
    let server = TestServer::with_manifests(&web(2), ZoneConfig::default()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("peers");
    let env_out = dir.path().join("env");
    let mut args = peers_args(server.addr, "web", "default");
    args.extend(
        [
            "--self",
            "web-2.web.default.svc.cluster.local",
            "--on-start",
            r#"cat > "$OUT" && echo "$PEER_COUNT|$SELF_ORDINAL|$PEERS" > "$ENV_OUT""#,
        ]
        .map(str::to_owned),
    );
    let mut peers = PeersChild::spawn(&args, &[("OUT", &out), ("ENV_OUT", &env_out)]);

    peers.wait_for_stderr("have not found myself yet").await;
    assert!(peers.running(), "{}", peers.stderr());
    assert!(!out.exists(), "on-start ran before web-2 was listed");

    server.publish(&state_from_yaml(&web(3)));
    let status = peers.wait_exit().await;
    assert!(status.success(), "{status}: {}", peers.stderr());
    assert_eq!(
        std::fs::read_to_string(&out).expect("the hook wrote its input"),
        hosts(0..3).join("\n") + "\n"
    );
    assert_eq!(
        std::fs::read_to_string(&env_out).expect("the hook wrote its environment"),
        format!("3|2|{}\n", hosts(0..3).join(" "))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_peers_holds_on_start_until_enough_are_listed() {
    let server = TestServer::with_manifests(&web(1), ZoneConfig::default()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("lists");
    let mut args = peers_args(server.addr, "web", "default");
    args.extend(
        [
            "--self",
            "web-0",
            "--min-peers",
            "3",
            "--on-start",
            RECORD_HOOK,
        ]
        .map(str::to_owned),
    );
    let mut peers = PeersChild::spawn(&args, &[("OUT", &out)]);
    peers.wait_for_stderr("waiting for more peers").await;
    assert!(!out.exists(), "on-start ran with one peer");

    server.publish(&state_from_yaml(&web(3)));
    let status = peers.wait_exit().await;
    assert!(status.success(), "{status}: {}", peers.stderr());
    assert_eq!(recorded(&out), [hosts(0..3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_lists_peers_in_ordinal_order() {
    let server = TestServer::with_manifests(&web(12), ZoneConfig::default()).await;
    let mut args = peers_args(server.addr, "web", "default");
    args.push("--once".into());
    let output = run(args).await;
    let (stdout, stderr) = cli::text(&output);
    assert!(output.status.success(), "{stderr}");
    // web-2 before web-10: numeric, not lexical.
    assert_eq!(stdout, hosts(0..12).join("\n") + "\n", "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_json_gives_host_port_ordinal_and_address() {
    let server = TestServer::example().await;
    let mut args = peers_args(server.addr, "kubia", "default");
    args.extend(["--once", "--format", "json"].map(str::to_owned));
    let output = run(args).await;
    let (stdout, stderr) = cli::text(&output);
    assert!(output.status.success(), "{stderr}");
    let peers: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(
        peers,
        serde_json::json!([
            {
                "host": "kubia-0.kubia.default.svc.cluster.local",
                "port": 80,
                "ordinal": 0,
                "address": "10.42.1.5",
                "ports": [80],
                "addresses": ["10.42.1.5"],
            },
            {
                "host": "kubia-1.kubia.default.svc.cluster.local",
                "port": 80,
                "ordinal": 1,
                "address": "10.42.1.6",
                "ports": [80],
                "addresses": ["10.42.1.6"],
            },
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_answer_is_asked_again_over_tcp() {
    // 80 SRV records do not fit hickory's 1232-byte EDNS buffer: UDP answers TC.
    let server = TestServer::with_manifests(&web(80), ZoneConfig::default()).await;
    let udp = server
        .udp("web.default.svc.cluster.local.", RecordType::SRV)
        .await;
    assert!(
        udp.metadata.truncation,
        "the fixture must truncate over UDP"
    );

    let mut args = peers_args(server.addr, "web", "default");
    args.extend(["--once", "--format", "json"].map(str::to_owned));
    let output = run(args).await;
    let (stdout, stderr) = cli::text(&output);
    assert!(output.status.success(), "{stderr}");
    let peers: Vec<serde_json::Value> = serde_json::from_str(&stdout).expect("JSON");
    let listed: Vec<&str> = peers.iter().map(|p| p["host"].as_str().unwrap()).collect();
    assert_eq!(listed, hosts(0..80));
    // Over TCP the additional section fits too.
    assert_eq!(peers[79]["address"], "10.1.0.89");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaults_come_from_resolv_conf_and_pod_namespace() {
    let server = TestServer::example().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        "search prod.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n",
    )
    .expect("write resolv.conf");
    let base = |extra: &[&str]| {
        let mut args: Vec<String> = [
            "peers",
            "--server",
            &server.addr.to_string(),
            "--resolv-conf",
            resolv.to_str().unwrap(),
            "--once",
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    };

    // Namespace and domain from the search list.
    let output = run(base(&["--service", "svc-nginx"])).await;
    let (stdout, stderr) = cli::text(&output);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stdout,
        "sts-nginx-0.svc-nginx.prod.svc.cluster.local\nsts-nginx-1.svc-nginx.prod.svc.cluster.local\n"
    );

    // POD_NAMESPACE wins over the search list.
    let args = base(&["--service", "kubia"]);
    let mut with_env = command(&args, &[]);
    with_env.env("POD_NAMESPACE", "default");
    let output = run_with(with_env, args.join(" ")).await;
    let (stdout, stderr) = cli::text(&output);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stdout,
        "kubia-0.kubia.default.svc.cluster.local\nkubia-1.kubia.default.svc.cluster.local\n"
    );
}

// Errors a user can act on.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_service_it_says_so() {
    let output = run(["peers", "--once"].map(str::to_owned).to_vec()).await;
    let (stdout, stderr) = cli::text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stdout, "");
    assert!(stderr.contains("--service"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_namespace_names_the_flag_and_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, "search example.com\nnameserver 127.0.0.1\n").expect("write");
    let output = run([
        "peers",
        "--service",
        "web",
        "--once",
        "--resolv-conf",
        resolv.to_str().unwrap(),
    ]
    .map(str::to_owned)
    .to_vec())
    .await;
    let line = cli::assert_one_error_line(&output);
    assert!(
        line.contains("give --namespace or set POD_NAMESPACE")
            && line.contains(resolv.to_str().unwrap())
            && line.contains("\"example.com\""),
        "{line}"
    );

    let output = run([
        "peers",
        "--service",
        "web",
        "--once",
        "--resolv-conf",
        "/nonexistent/resolv.conf",
    ]
    .map(str::to_owned)
    .to_vec())
    .await;
    let line = cli::assert_one_error_line(&output);
    assert!(
        line.contains("--namespace") && line.contains("cannot read /nonexistent/resolv.conf"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_is_retried_until_the_timeout_names_it() {
    // Bound, never read: queries to it go unanswered, and no other process can take the port.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("address");
    let mut args = peers_args(addr, "web", "default");
    args.extend(["--self", "web-0", "--on-start", "true", "--timeout", "3s"].map(str::to_owned));
    let started = Instant::now();
    let output = run(args).await;
    let (_, stderr) = cli::text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains("peer lookup failed; retrying"),
        "a retry is logged: {stderr}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("stsdns: error: gave up after 3s")
            && last.contains(&addr.to_string())
            && last.contains("web-0.web.default.svc.cluster.local to be listed"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_says_whether_the_namespace_or_the_service_is_missing() {
    let server = TestServer::example().await;
    let once = |service: &str, namespace: &str| {
        let mut args = peers_args(server.addr, service, namespace);
        args.push("--once".into());
        run(args)
    };

    let line = cli::assert_one_error_line(&once("nope", "default").await);
    assert!(
        line.contains("nope.default.svc.cluster.local. does not exist")
            && line.contains(
                "Service nope does not exist in namespace default or has no ready endpoints"
            ),
        "{line}"
    );

    let line = cli::assert_one_error_line(&once("kubia", "nope").await);
    assert!(
        line.contains("knows no Service in namespace nope")
            && line.contains("check --namespace and --domain"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_hook_makes_peers_exit_with_its_status() {
    let server = TestServer::example().await;
    let hook_run = |hook: &str| {
        let mut args = peers_args(server.addr, "kubia", "default");
        args.extend(["--self", "kubia-1", "--on-start", hook].map(str::to_owned));
        run(args)
    };

    let output = hook_run("exit 3").await;
    let (_, stderr) = cli::text(&output);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("stsdns: error: the --on-start hook \"exit 3\" failed: exit status: 3"),
        "{stderr}"
    );

    let output = hook_run("/nonexistent/on-start.sh").await;
    let (_, stderr) = cli::text(&output);
    assert_eq!(output.status.code(), Some(127), "{stderr}");
    assert!(
        stderr.contains("the --on-start hook \"/nonexistent/on-start.sh\" failed")
            && stderr.contains("cannot find the command"),
        "{stderr}"
    );
}

// Against another server: Knot DNS serving the zone text of `stsdns check --write-zones`
// (launched by the shared `harness::knot`).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knot_serving_our_zone_text_gives_the_same_peers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let zones = dir.path().join("zones");
    let check = run(["check", "--write-zones", zones.to_str().unwrap()]
        .map(str::to_owned)
        .to_vec())
    .await;
    assert!(check.status.success(), "{}", cli::text(&check).1);
    let knot = KnotServer::start(dir.path(), &["cluster.local.".to_owned()]).await;
    let stsdns = TestServer::example().await;

    for (service, namespace) in [
        ("kubia", "default"),
        ("mongo", "default"),
        ("nginx", "default"),
        ("svc-nginx", "prod"),
    ] {
        let once = |server: SocketAddr| {
            let mut args = peers_args(server, service, namespace);
            args.extend(["--once", "--format", "json"].map(str::to_owned));
            run(args)
        };
        let ours = once(stsdns.addr).await;
        let theirs = once(knot.addr).await;
        let (ours_out, ours_err) = cli::text(&ours);
        let (theirs_out, theirs_err) = cli::text(&theirs);
        assert!(ours.status.success(), "{service}: {ours_err}");
        assert!(theirs.status.success(), "{service} on knot: {theirs_err}");
        let ours: serde_json::Value = serde_json::from_str(&ours_out).expect("JSON");
        let theirs: serde_json::Value = serde_json::from_str(&theirs_out).expect("JSON");
        assert!(
            ours.as_array().is_some_and(|peers| !peers.is_empty()),
            "{service}: {ours}"
        );
        assert_eq!(ours, theirs, "{service}.{namespace}: stsdns vs knot");
    }
}
