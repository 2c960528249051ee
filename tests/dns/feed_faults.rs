//! Bad input on every feed, each while a client keeps querying: the fault is reported with its
//! source and object, the last good state keeps being served (same answers, same serial), and
//! the feed recovers when its input does.
//!
//! Every bad input here would change DNS if it were applied (it removes or adds a peer), so
//! "unchanged" means it was really skipped. What the operator is told is read from the log of
//! this test's own thread ([`Logs`]): `#[tokio::test]` runs the server, the feeds and the
//! reconciler on it, so other tests' logs never mix in. Waiting for that log line is also how
//! a test knows the feed has read the bad input before asserting that nothing changed.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hickory_proto::rr::RecordType;
use serde_json::Value;
use stsdns::config::ZoneConfig;
use stsdns::model::Kind;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Level;
use tracing::field::{Field, Visit};
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};

use crate::fake_api::{FakeApi, FaultKind, Stats};
use crate::harness::{LiveServer, TIMEOUT, Transport, query};
use crate::lifecycle::{
    Answers, Cluster, FeedKind, Input, Phase, Reply, append_file, assert_answers, await_answers,
    expected, manifest, replace_file, reply, service_name, soa_serial, watch_line,
};

/// The log lines of the current thread, captured for the life of the value.
struct Logs {
    lines: Arc<Mutex<Vec<String>>>,
    count: watch::Receiver<usize>,
    _guard: DefaultGuard,
}

/// Writes each event as `LEVEL target: message field=value…`.
struct Capture {
    lines: Arc<Mutex<Vec<String>>>,
    count: watch::Sender<usize>,
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // Writing to a String cannot fail.
        let _ = if field.name() == "message" {
            write!(self.0, " {value:?}")
        } else {
            write!(self.0, " {}={value:?}", field.name())
        };
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let metadata = event.metadata();
        let mut line = format!("{} {}:", metadata.level(), metadata.target());
        event.record(&mut Fields(&mut line));
        self.lines.lock().unwrap().push(line);
        self.count.send_modify(|n| *n += 1);
    }
}

impl Logs {
    /// Starts capturing this thread's logs: stsdns at debug and above, the rest at warn.
    fn capture() -> Self {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, count) = watch::channel(0);
        let capture = Capture {
            lines: lines.clone(),
            count: tx,
        }
        .with_filter(
            Targets::new()
                .with_target("stsdns", Level::DEBUG)
                .with_default(Level::WARN),
        );
        let subscriber = tracing_subscriber::registry().with(capture);
        Self {
            lines,
            count,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    /// How many lines so far: lines after this mark are the ones a later wait looks at.
    fn mark(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// The warnings and errors after `mark`.
    fn warnings(&self, mark: usize) -> Vec<String> {
        let lines = self.lines.lock().unwrap();
        lines[mark..]
            .iter()
            .filter(|l| l.starts_with("WARN") || l.starts_with("ERROR"))
            .cloned()
            .collect()
    }

    /// Waits (bounded) for a line after `mark` that contains every one of `parts`; returns it.
    async fn wait_for(&mut self, mark: usize, parts: &[&str]) -> String {
        let found = |lines: &[String]| {
            lines[mark..]
                .iter()
                .find(|line| parts.iter().all(|part| line.contains(part)))
                .cloned()
        };
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(line) = found(&self.lines.lock().unwrap()) {
                return line;
            }
            self.count.borrow_and_update();
            if tokio::time::timeout_at(deadline, self.count.changed())
                .await
                .is_err()
            {
                let lines = self.lines.lock().unwrap();
                panic!(
                    "no log line with {parts:?} within {TIMEOUT:?}; logged since:\n{}",
                    lines[mark..].join("\n")
                );
            }
        }
    }
}

/// One reply the prober got, and when it asked.
#[derive(Debug)]
struct Probe {
    asked: Instant,
    answered: Instant,
    transport: Transport,
    reply: Reply,
}

/// A client that keeps asking for the peer list (bare-name SRV), over UDP and TCP in turn,
/// until stopped: what a StatefulSet's peers do while the feed is in trouble.
struct Prober {
    stop: CancellationToken,
    task: JoinHandle<Vec<Probe>>,
}

/// The prober's pace: a client asking a hundred times a second, not a busy loop.
const PROBE_INTERVAL: Duration = Duration::from_millis(10);

impl Prober {
    fn start(addr: SocketAddr) -> Self {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut probes = Vec::new();
            let mut ticks = tokio::time::interval(PROBE_INTERVAL);
            for transport in [Transport::Udp, Transport::Tcp].into_iter().cycle() {
                tokio::select! {
                    () = token.cancelled() => break,
                    _ = ticks.tick() => {}
                }
                let asked = Instant::now();
                let message = query(addr, &service_name(), RecordType::SRV, transport).await;
                probes.push(Probe {
                    asked,
                    answered: Instant::now(),
                    transport,
                    reply: reply(&message, RecordType::SRV),
                });
            }
            probes
        });
        Self { stop, task }
    }

    /// Stops, and checks every reply: those answered before `recovered` (when the input was
    /// repaired) are `old`, later ones `old` or `new`; some were asked during the fault.
    async fn check(self, fault: Instant, recovered: Instant, old: &Reply, new: &Reply) {
        self.stop.cancel();
        let probes = tokio::time::timeout(TIMEOUT, self.task)
            .await
            .expect("the prober stops")
            .expect("every query was answered");
        let during = probes
            .iter()
            .filter(|p| p.asked >= fault && p.answered < recovered)
            .count();
        assert!(during > 0, "no query was answered during the fault");
        for probe in &probes {
            if probe.answered < recovered {
                assert_eq!(
                    &probe.reply,
                    old,
                    "answered over {:?} {:?} before the recovery",
                    probe.transport,
                    recovered - probe.answered
                );
            } else {
                assert!(
                    probe.reply == *old || probe.reply == *new,
                    "answered over {:?} after the recovery: {:?}",
                    probe.transport,
                    probe.reply
                );
            }
        }
    }
}

/// A feed, its server and a prober, with `before` served.
struct Case {
    logs: Logs,
    input: Input,
    live: LiveServer,
    /// The serial of the last good state.
    serial: u32,
    /// The answers of the last good state.
    old: Answers,
    prober: Option<Prober>,
}

impl Case {
    async fn start(kind: FeedKind, before: &Cluster) -> Self {
        // Captured from before the server starts: the feeds' tasks log on this thread.
        let logs = Logs::capture();
        let input = Input::start(kind, &before.objects()).await;
        let mut live = LiveServer::start(vec![input.source()], ZoneConfig::default()).await;
        let serial = live.ready().await;
        let old = expected(before);
        assert_answers(live.addr, &old, "before the fault").await;
        let prober = Some(Prober::start(live.addr));
        Self {
            logs,
            input,
            live,
            serial,
            old,
            prober,
        }
    }

    /// The fake API of a kube case.
    fn api(&self) -> &FakeApi {
        self.input.api()
    }

    /// Asserts that the last good state is still served, under the same serial.
    async fn assert_unchanged(&self, what: &str) {
        assert_eq!(self.live.serial(), Some(self.serial), "{what}: published");
        assert_answers(self.live.addr, &self.old, what).await;
        for transport in [Transport::Udp, Transport::Tcp] {
            assert_eq!(
                soa_serial(self.live.addr, transport).await,
                self.serial,
                "{what}: SOA serial over {transport:?}"
            );
        }
    }

    /// Waits for `after` to show (the input was repaired at `recovered`), checks what the
    /// prober saw since `fault`, and makes `after` the last good state.
    async fn recover(&mut self, fault: Instant, recovered: Instant, after: &Cluster, what: &str) {
        let new = expected(after);
        self.serial = await_answers(&mut self.live, self.serial, &new, what).await;
        let prober = self.prober.take().expect("a prober runs");
        prober
            .check(fault, recovered, &self.old[0].1, &new[0].1)
            .await;
        self.old = new;
    }
}

/// web-0 and web-1 Ready.
fn two_ready() -> Cluster {
    Cluster::ready(2)
}

/// web-0, web-1 and web-2 Ready: the change made once the feed has recovered.
fn three_ready() -> Cluster {
    Cluster::ready(3)
}

#[tokio::test]
async fn manifests_a_broken_edit_keeps_the_last_good_state_until_fixed() {
    let before = two_ready();
    let after = three_ready();
    let mut case = Case::start(FeedKind::Files, &before).await;
    let path = case.input.path().to_owned();
    let file = path.display().to_string();

    // The edit adds web-2 and a document with broken indentation: the whole file keeps its
    // last good version, so web-2 must not appear.
    let fault = Instant::now();
    let mark = case.logs.mark();
    let broken = format!(
        "{}---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web-9\n   labels: {{app: nginx}}\n",
        manifest(&after.objects())
    );
    replace_file(&path, &broken);
    let line = case
        .logs
        .wait_for(mark, &["WARN", &file, "YAML syntax error"])
        .await;
    assert!(line.contains(&format!("source=file:{file}")), "{line}");
    assert!(line.contains("Pod default/web-9"), "{line}");
    case.logs
        .wait_for(mark, &[&file, "last good version keeps serving"])
        .await;
    case.assert_unchanged("during the broken edit").await;

    let recovered = Instant::now();
    replace_file(&path, &manifest(&after.objects()));
    case.recover(fault, recovered, &after, "the fixed edit")
        .await;
    // The last good version that kept serving is gone once the file is good again.
    let mark = case.logs.mark();
    let fewer = after.with(|c| {
        c.pods.remove(&2);
        c.pods.remove(&1);
    });
    replace_file(&path, &manifest(&fewer.objects()));
    await_answers(
        &mut case.live,
        case.serial,
        &expected(&fewer),
        "a later edit",
    )
    .await;
    assert_eq!(
        case.logs.warnings(mark),
        [] as [String; 0],
        "a good edit warns of nothing"
    );
}

#[tokio::test]
async fn stream_bad_events_are_reported_and_skipped_then_a_good_one_applies() {
    let before = two_ready();
    let after = three_ready();
    let mut case = Case::start(FeedKind::Stream, &before).await;
    let path = case.input.path().to_owned();
    let file = path.display().to_string();
    let source = format!("source=stream:{file}");
    // Each bad event would take web-1 out of DNS if it were applied.
    let web_1 = before.with(|c| c.set(1, Phase::Starting)).pod(1);
    let fault = Instant::now();

    // A line cut off, then an unknown event type: the cut line is reported when the next one
    // shows it can never complete, and the next line is still read.
    let mark = case.logs.mark();
    let whole = watch_line("MODIFIED", &web_1);
    let cut = format!("{}\n", &whole[..whole.len() / 2]);
    append_file(&path, &cut);
    append_file(&path, &watch_line("REPLACED", &web_1));
    let line = case.logs.wait_for(mark, &[&file, "invalid JSON"]).await;
    assert!(line.contains(&source), "{line}");
    let line = case
        .logs
        .wait_for(
            mark,
            &[
                &file,
                "Pod default/web-1",
                "unknown watch event type \"REPLACED\"",
            ],
        )
        .await;
    assert!(line.contains(&source), "{line}");
    case.assert_unchanged("after a cut line and an unknown event type")
        .await;

    // An object of a kind that does not exist (a typo), and one of an apiVersion that does not.
    let mut typo = web_1.clone();
    typo["kind"] = "Pdo".into();
    let mut version = web_1.clone();
    version["apiVersion"] = "v2".into();
    for (what, object, parts) in [
        (
            "an unknown kind",
            typo,
            ["Pdo default/web-1", "unknown kind \"Pdo\""],
        ),
        (
            "an unknown apiVersion",
            version,
            ["Pod default/web-1", "v2"],
        ),
    ] {
        let mark = case.logs.mark();
        append_file(&path, &watch_line("MODIFIED", &object));
        let line = case.logs.wait_for(mark, &[&file, parts[0], parts[1]]).await;
        assert!(line.contains(&source), "{what}: {line}");
        case.assert_unchanged(&format!("after {what}")).await;
    }

    // A deletion of a pod that never existed is reported and changes nothing.
    let mark = case.logs.mark();
    let ghost = Cluster::ready(8).pod(7);
    append_file(&path, &watch_line("DELETED", &ghost));
    let line = case
        .logs
        .wait_for(
            mark,
            &[&file, "DELETED for Pod default/web-7", "never seen"],
        )
        .await;
    assert!(line.contains(&source), "{line}");
    case.assert_unchanged("after a DELETED for a pod never seen")
        .await;

    // A good event after all that is applied.
    let recovered = Instant::now();
    append_file(&path, &watch_line("ADDED", &after.pod(2)));
    case.recover(fault, recovered, &after, "a good event after the bad ones")
        .await;
    // The stream goes on: a later event applies too.
    let fewer = after.with(|c| c.set(0, Phase::Starting));
    append_file(&path, &watch_line("MODIFIED", &fewer.pod(0)));
    await_answers(
        &mut case.live,
        case.serial,
        &expected(&fewer),
        "a later event",
    )
    .await;
}

/// The kube feed's problem line: a watch failed and is retried, naming its source.
const WATCH_FAILED: &str = "watch failed; retrying with backoff";

/// Waits until every watcher has a watch open again, `new` more watches after `base`.
async fn wait_reconnected(api: &FakeApi, base: &Stats, new: u64) {
    let watches = base.watches + new;
    api.wait_for("the watches to be open again", |s| {
        s.watches >= watches && s.open_watches == 4
    })
    .await;
}

/// Starts a kube case with web-0 and web-1, every watch open.
async fn kube_case() -> Case {
    let case = Case::start(FeedKind::Kube, &two_ready()).await;
    case.api()
        .wait_for("four open watches", |s| s.open_watches == 4)
        .await;
    case
}

/// web-2 as it becomes Ready, for the API.
fn web_2_ready() -> Value {
    three_ready().pod(2)
}

#[tokio::test]
async fn kube_server_errors_keep_the_last_state_until_the_api_recovers() {
    let mut case = kube_case().await;
    let base = case.api().stats();

    // Every watch ends; each reconnect gets a 500 and backs off.
    let fault = Instant::now();
    let mark = case.logs.mark();
    case.api().fail_next(4, FaultKind::Status500);
    case.api().end_watches();
    case.api()
        .wait_for("four 500s", |s| s.faults_served >= 4)
        .await;
    let line = case
        .logs
        .wait_for(mark, &[WATCH_FAILED, "source=\"kube:"])
        .await;
    assert!(
        line.contains("500") || line.contains("InternalError"),
        "{line}"
    );
    case.assert_unchanged("while the API answers 500").await;

    wait_reconnected(case.api(), &base, 4).await;
    let recovered = Instant::now();
    case.api().apply(Kind::Pod, web_2_ready());
    case.recover(fault, recovered, &three_ready(), "a change after the 500s")
        .await;
}

#[tokio::test]
async fn kube_gone_relists_keep_the_last_state_and_apply_what_changed() {
    let mut case = kube_case().await;
    let base = case.api().stats();

    // History compacted and every watch cut: each reconnect from the old resourceVersion gets
    // 410 Gone and relists. The objects are the same, so nothing is published.
    let fault = Instant::now();
    let mark = case.logs.mark();
    case.api().expire_history();
    case.api().drop_watches();
    case.api()
        .wait_for("four 410s", |s| s.gone_served >= base.gone_served + 4)
        .await;
    case.logs
        .wait_for(mark, &[WATCH_FAILED, "source=\"kube:"])
        .await;
    case.assert_unchanged("after 410 Gone").await;
    // The 410 watches count as watches: four of them, then four new ones after the relists.
    wait_reconnected(case.api(), &base, 8).await;
    let stats = case.api().stats();
    assert!(stats.lists >= base.lists + 4, "{stats:?}");
    case.assert_unchanged("after the relists of an unchanged cluster")
        .await;

    // A relist that carries changes made while the watches were down, a deletion among them:
    // web-1 goes and web-2 comes, and none of this reaches a watch.
    let base = case.api().stats();
    let recovered = Instant::now();
    case.api().expire_history();
    case.api().drop_watches();
    assert!(case.api().delete(Kind::Pod, "default", "web-1"));
    case.api().apply(Kind::Pod, web_2_ready());
    let after = three_ready().with(|c| {
        c.pods.remove(&1);
    });
    case.recover(fault, recovered, &after, "the relist after changes")
        .await;
    let stats = case.api().stats();
    assert!(
        stats.gone_served > base.gone_served,
        "the relist came from a 410: {stats:?}"
    );
}

#[tokio::test]
async fn kube_garbage_answers_keep_the_last_state_until_the_api_recovers() {
    let mut case = kube_case().await;
    let base = case.api().stats();

    let fault = Instant::now();
    let mark = case.logs.mark();
    case.api().fail_next(4, FaultKind::Garbage);
    case.api().end_watches();
    case.api()
        .wait_for("four garbage answers", |s| s.faults_served >= 4)
        .await;
    case.logs
        .wait_for(mark, &[WATCH_FAILED, "source=\"kube:"])
        .await;
    case.assert_unchanged("while the API answers garbage").await;

    wait_reconnected(case.api(), &base, 4).await;
    let recovered = Instant::now();
    case.api().apply(Kind::Pod, web_2_ready());
    case.recover(
        fault,
        recovered,
        &three_ready(),
        "a change after the garbage",
    )
    .await;
}

#[tokio::test]
async fn kube_dropped_connections_resume_without_losing_changes() {
    let mut case = kube_case().await;
    let base = case.api().stats();

    // Cut mid-stream, and web-2 becomes Ready before any watch is back: it must arrive when
    // the watches resume from their last resourceVersion, without a relist.
    let fault = Instant::now();
    case.api().drop_watches();
    case.assert_unchanged("with every watch cut").await;
    let recovered = Instant::now();
    case.api().apply(Kind::Pod, web_2_ready());
    let after = three_ready();
    case.recover(
        fault,
        recovered,
        &after,
        "a change made while the watches were cut",
    )
    .await;
    wait_reconnected(case.api(), &base, 4).await;
    assert_eq!(case.api().stats().lists, base.lists, "no relist");

    // And a change after the reconnect shows too.
    assert!(case.api().delete(Kind::Pod, "default", "web-0"));
    let last = after.with(|c| {
        c.pods.remove(&0);
    });
    await_answers(
        &mut case.live,
        case.serial,
        &expected(&last),
        "a change after the reconnect",
    )
    .await;
}
