//! The built binary as a user runs it: `serve` on 127.0.0.1:0 queried over DNS, its start-up
//! errors, `--help`, and `check`.
//!
//! [`Served`] and [`run`] are also what `bad_input` and `interop` use to drive the binary.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::*;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_stsdns");

/// How often a bounded wait looks again.
pub const POLL: Duration = Duration::from_millis(10);

/// `stsdns ARGS`, run in the crate root (so `zones/` and `tests/fixtures/` are relative paths, as
/// a user types them) with a clean environment: no `STSDNS_*`, `RUST_LOG` or `NO_COLOR`, and
/// `RUST_BACKTRACE=1` so that a panic could not hide.
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .env("RUST_BACKTRACE", "1");
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("STSDNS_") || key == "RUST_LOG" || key == "NO_COLOR" {
            command.env_remove(key);
        }
    }
    command
}

/// Reads a pipe to its end on a thread, so a chatty child never blocks on a full pipe.
fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// Waits for `child` to exit, at most [`TIMEOUT`]; kills and reaps it and panics past that.
pub fn wait_bounded(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {TIMEOUT:?}");
        }
        std::thread::sleep(POLL);
    }
}

/// Runs `stsdns ARGS` to completion (bounded) and returns what it printed.
pub fn run(args: &[&str]) -> Output {
    run_command(command(args), &format!("stsdns {}", args.join(" ")))
}

/// Runs a prepared command to completion (bounded) and returns what it printed.
pub fn run_command(mut command: Command, what: &str) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let stdout = drain(child.stdout.take().expect("piped"));
    let stderr = drain(child.stderr.take().expect("piped"));
    let status = wait_bounded(&mut child, what);
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Standard output and standard error as text.
pub fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8(output.stdout.clone()).expect("utf-8 stdout"),
        String::from_utf8(output.stderr.clone()).expect("utf-8 stderr"),
    )
}

/// Asserts the way a start-up failure must look: exit status 1, nothing on stdout, and exactly
/// one line on stderr, `stsdns: error: …`, with no panic and no colour codes. Returns the line.
pub fn assert_one_error_line(output: &Output) -> String {
    let (stdout, stderr) = text(output);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(stdout, "", "nothing on stdout");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "no colour codes: {stderr:?}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line: {stderr}");
    assert!(lines[0].starts_with("stsdns: error: "), "{stderr}");
    lines[0].to_owned()
}

/// A `stsdns serve --listen 127.0.0.1:0` child; dropped, it is killed and reaped.
pub struct Served {
    child: Child,
    /// The address it answers on (UDP and TCP), from its listening line.
    pub addr: SocketAddr,
    /// The listening line, as printed.
    pub line: String,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Starts `stsdns [GLOBAL] serve --listen 127.0.0.1:0 ARGS` and waits (bounded) for its
    /// listening line.
    pub fn start(args: &[&str]) -> Self {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut child = command(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("stsdns starts");
        let stderr = drain(child.stderr.take().expect("piped"));
        let stdout = child.stdout.take().expect("piped");
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let line = loop {
            match received.recv_timeout(TIMEOUT) {
                Ok(line) if line.starts_with("stsdns listening on ") => break line,
                Ok(_) => continue,
                Err(err) => {
                    let _ = child.kill();
                    let status = child.wait().expect("wait");
                    let stderr = String::from_utf8_lossy(&stderr.join().expect("stderr reader"))
                        .into_owned();
                    panic!(
                        "stsdns {all:?} printed no listening line ({err}); it exited with \
                         {status}; stderr:\n{stderr}"
                    );
                }
            }
        };
        let addr = listening_address(&line);
        Self {
            child,
            addr,
            line,
            stderr: Some(stderr),
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (through `sh`'s `kill`: the tests take no libc), waits (bounded) for the
    /// exit, and returns the status and everything the child wrote on stderr.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let status = Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", self.pid())])
            .status()
            .expect("sh runs kill");
        assert!(status.success(), "kill -TERM failed");
        let exit = wait_bounded(&mut self.child, "stsdns serve after SIGTERM");
        let stderr = self
            .stderr
            .take()
            .expect("stderr not yet taken")
            .join()
            .expect("stderr reader");
        (exit, String::from_utf8(stderr).expect("utf-8 stderr"))
    }
}

/// The address of a listening line: `… udp=127.0.0.1:P tcp=127.0.0.1:P …`, both the same.
pub fn listening_address(line: &str) -> SocketAddr {
    let field = |name: &str| -> SocketAddr {
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
            .parse()
            .unwrap_or_else(|e| panic!("bad {name} address in {line:?}: {e}"))
    };
    let udp = field("udp=");
    assert_eq!(udp, field("tcp="), "{line}");
    assert!(udp.ip().is_loopback() && udp.port() != 0, "{line}");
    udp
}

/// Replaces the SOA serial (the time of the run) with `SERIAL`, so two runs compare equal.
pub fn without_serial(zone_text: &str) -> String {
    zone_text
        .lines()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.len() == 5 && words[0] == ";" && words[3] == "serial" {
                format!("; zone {} serial SERIAL", words[2])
            } else if words.get(3) == Some(&"SOA") && words.len() == 11 {
                let mut words = words;
                words[6] = "SERIAL";
                words.join(" ")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn serve_without_feed_answers_the_example() {
    let served = Served::start(&[]);
    let words: Vec<&str> = served.line.split_whitespace().collect();
    let port = served.addr.port();
    assert_eq!(
        words[..8],
        [
            "stsdns",
            "listening",
            "on",
            &format!("udp=127.0.0.1:{port}"),
            &format!("tcp=127.0.0.1:{port}"),
            "zones=cluster.local.",
            "objects=21",
            "records=56",
        ],
        "{}",
        served.line
    );
    let serial: u32 = words[8]
        .strip_prefix("serial=")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("serial in {}", served.line));
    assert_eq!(words.len(), 9, "{}", served.line);

    for transport in TRANSPORTS {
        let reply = query(
            served.addr,
            "kubia.default.svc.cluster.local.",
            RecordType::SRV,
            transport,
        )
        .await;
        assert_answer(&reply);
        assert_eq!(
            rdata(&reply),
            [
                "0 50 80 kubia-0.kubia.default.svc.cluster.local.",
                "0 50 80 kubia-1.kubia.default.svc.cluster.local.",
            ],
            "{transport:?}"
        );
    }
    let reply = query(
        served.addr,
        "sts-nginx-0.svc-nginx.prod.svc.cluster.local.",
        RecordType::A,
        Transport::Udp,
    )
    .await;
    assert_eq!(
        answers(&reply),
        ["sts-nginx-0.svc-nginx.prod.svc.cluster.local. 5 A 10.42.0.11"]
    );
    let reply = query(
        served.addr,
        "cluster.local.",
        RecordType::SOA,
        Transport::Udp,
    )
    .await;
    assert_eq!(
        rdata(&reply),
        [format!(
            "ns.dns.cluster.local. hostmaster.cluster.local. {serial} 7200 1800 86400 5"
        )],
        "the listening line's serial is the SOA's"
    );
}

/// The first publish builds every Service: its log line says so (it said `services=0`, since a
/// first list does not track what changed).
#[test]
fn the_first_publish_logs_every_service_it_built() {
    let served = Served::start(&[]);
    let (status, stderr) = served.terminate();
    assert!(status.success(), "{stderr}");
    let published = stderr
        .lines()
        .find(|line| line.contains("published snapshot"))
        .unwrap_or_else(|| panic!("no publish logged: {stderr}"));
    // The example has 7 Services (zones/*.yaml).
    assert!(
        published
            .split_whitespace()
            .any(|word| word == "services=7"),
        "{published}"
    );
}

#[tokio::test]
async fn serve_flags_reach_the_answers() {
    let served = Served::start(&[
        "--zone",
        "corp.example",
        "--ttl",
        "0",
        "--negative-ttl",
        "9",
    ]);
    assert!(
        served.line.contains(" zones=corp.example. "),
        "{}",
        served.line
    );
    let reply = query(
        served.addr,
        "kubia-0.kubia.default.svc.corp.example.",
        RecordType::A,
        Transport::Udp,
    )
    .await;
    assert_eq!(
        answers(&reply),
        ["kubia-0.kubia.default.svc.corp.example. 0 A 10.42.1.5"]
    );
    let reply = query(
        served.addr,
        "web-1.nginx.default.svc.corp.example.",
        RecordType::A,
        Transport::Udp,
    )
    .await;
    assert_negative(&reply, ResponseCode::NXDomain, "corp.example.");
    assert_eq!(reply.authorities[0].ttl, 9, "{reply}");
    let reply = query(
        served.addr,
        "kubia.default.svc.cluster.local.",
        RecordType::A,
        Transport::Udp,
    )
    .await;
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
}

/// Whoever reads the listening line may stop the server at once: SIGTERM must then be a clean
/// shutdown (exit 0), never the default action that kills the process. The handler used to be
/// installed only after the line was printed, and about one run in fifty died of the signal.
#[test]
fn sigterm_right_after_the_listening_line_is_a_clean_exit() {
    for _ in 0..20 {
        let served = Served::start(&["--feed", "tests/fixtures/bad/pod-not-ready.yaml"]);
        let (status, stderr) = served.terminate();
        assert_eq!(status.code(), Some(0), "{status}; stderr:\n{stderr}");
        assert!(stderr.contains("shutting down"), "{stderr}");
    }
}

/// Logs are read from pipes (kubectl logs, journald): no terminal colour codes there.
#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let served = Served::start(&["--feed", "tests/fixtures/bad/pod-not-ready.yaml"]);
    let (_, stderr) = served.terminate();
    assert!(
        stderr.contains(" WARN stsdns::app: warning: tests/fixtures/bad/pod-not-ready.yaml:30: Pod default/web-1: is not Ready"),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
}

#[test]
fn serve_with_a_missing_feed_fails_with_one_line() {
    let output = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--feed",
        "/nonexistent/cluster.yaml",
    ]);
    // The context in front may change with the feed machinery; the cause and path may not.
    let line = assert_one_error_line(&output);
    assert!(
        line.ends_with(
            ": cannot read /nonexistent/cluster.yaml: No such file or directory (os error 2)"
        ),
        "{line}"
    );
}

#[test]
fn serve_with_an_empty_feed_directory_fails_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("notes.txt"), "not a manifest").expect("write");
    let path = dir.path().display().to_string();
    let output = run(&["serve", "--listen", "127.0.0.1:0", "--feed", &path]);
    let line = assert_one_error_line(&output);
    assert!(
        line.ends_with(&format!(": {path} holds no .yaml, .yml or .json file")),
        "{line}"
    );
}

/// A port already taken, for UDP only or for TCP only: one line naming the address. (The
/// example's warning used to be logged before it, since the feed was loaded before binding.)
#[test]
fn serve_on_a_taken_port_fails_with_one_line() {
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
    for taken in [
        udp.local_addr().expect("addr"),
        tcp.local_addr().expect("addr"),
    ] {
        let listen = taken.to_string();
        let output = run(&["serve", "--listen", &listen]);
        assert_eq!(
            assert_one_error_line(&output),
            format!(
                "stsdns: error: cannot listen on {listen}: Address already in use (os error 98)"
            )
        );
    }
}

#[test]
fn invalid_zones_are_rejected_with_one_line() {
    for (zone, expected) in [
        ("..bad", "stsdns: error: invalid zone \"..bad\": "),
        (
            "10.in-addr.arpa",
            "stsdns: error: zone 10.in-addr.arpa. is a reverse zone; stsdns serves in-addr.arpa \
             and ip6.arpa by itself",
        ),
        (
            ".",
            "stsdns: error: invalid zone \".\": the root zone would make stsdns answer for every \
             name",
        ),
    ] {
        for subcommand in [
            &["serve", "--listen", "127.0.0.1:0", "--zone", zone][..],
            &["check", "--zone", zone][..],
        ] {
            let line = assert_one_error_line(&run(subcommand));
            assert!(line.starts_with(expected), "{subcommand:?}: {line}");
        }
    }
    let output = run(&[
        "serve",
        "--zone",
        "cluster.local",
        "--zone",
        "svc.cluster.local",
    ]);
    assert_eq!(
        assert_one_error_line(&output),
        "stsdns: error: zone svc.cluster.local. is inside zone cluster.local.; give each cluster \
         domain once"
    );
}

/// clap's own errors: exit status 2, the value and the flag named, a pointer to --help.
#[test]
fn malformed_flag_values_are_rejected_by_the_parser() {
    for (args, expected) in [
        (
            &["serve", "--listen", "localhost:53"][..],
            "error: invalid value 'localhost:53' for '--listen <ADDR:PORT>': invalid socket \
             address syntax",
        ),
        (
            &["serve", "--ttl", "-1"][..],
            "error: unexpected argument '-1' found",
        ),
        (
            &["check", "--pods", "sometimes"][..],
            "error: invalid value 'sometimes' for '--pods <PODS>'",
        ),
    ] {
        let output = run(args);
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stdout, "");
        assert_eq!(stderr.lines().next(), Some(expected), "{args:?}: {stderr}");
        assert!(stderr.contains("--help"), "{stderr}");
    }
}

/// The flags of `stsdns SUBCOMMAND --help`, each with the first line of its doc.
fn documented_flags(subcommand: &str) -> Vec<(String, String)> {
    let output = run(&[subcommand, "--help"]);
    let (help, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    let lines: Vec<&str> = help.lines().collect();
    let mut flags = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        // Flags are indented by 2 (`  -q, --quiet`) or 6 (`      --feed <PATH>`); deeper
        // lines starting with `-` are possible values.
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if !trimmed.starts_with('-') || !(indent == 2 || indent == 6) {
            continue;
        }
        let long = trimmed
            .split([',', ' '])
            .find(|w| w.starts_with("--"))
            .unwrap_or_else(|| panic!("no long flag in {line:?}"))
            .trim_end_matches("...")
            .to_owned();
        let doc = lines.get(i + 1).map_or("", |l| l.trim()).to_owned();
        flags.push((long, doc));
    }
    flags
}

#[test]
fn help_lists_every_flag_with_its_doc() {
    let common = [
        ("--zone", "Cluster domain to serve (repeatable)"),
        ("--ttl", "TTL of answers, in seconds (0 is honoured)"),
        (
            "--negative-ttl",
            "TTL of negative answers (NXDOMAIN, NODATA), in seconds: the SOA minimum",
        ),
        (
            "--pods",
            "Answer <a-b-c-d>.<ns>.pod.<zone>: disabled, insecure",
        ),
        ("--log-format", "Log format"),
        ("--quiet", "Only log errors (RUST_LOG overrides)"),
        ("--verbose", "Log more: -v for debug, -vv for every query"),
        ("--help", "Print help"),
        ("--version", "Print version"),
    ];
    let serve_only = [
        ("--feed", "A manifest file or directory (YAML or JSON"),
        (
            "--listen",
            "Address to answer on, UDP and TCP (repeatable; port 0 picks a free port)",
        ),
    ];
    let check_only = [(
        "--write-zones",
        "Also write each zone to DIR/<zone>.zone (for loading into Knot or BIND)",
    )];
    for (subcommand, own) in [("serve", &serve_only[..]), ("check", &check_only[..])] {
        let flags = documented_flags(subcommand);
        for (flag, doc) in &flags {
            assert!(
                doc.chars().next().is_some_and(char::is_alphabetic),
                "{subcommand} {flag} has no doc line: {doc:?}"
            );
        }
        for (flag, doc) in common.iter().chain(own) {
            let found = flags
                .iter()
                .find(|(f, _)| f == flag)
                .unwrap_or_else(|| panic!("{subcommand} --help lacks {flag}: {flags:?}"));
            assert!(
                found.1.starts_with(doc),
                "{subcommand} {flag}: {:?} does not start with {doc:?}",
                found.1
            );
        }
    }
    let (help, _) = text(&run(&["check", "--help"]));
    assert!(
        help.contains("Usage: stsdns check [OPTIONS] [FEED]"),
        "{help}"
    );
    assert!(
        help.contains(
            "  [FEED]\n          A manifest file or directory. Default: the example cluster built \
             into the binary"
        ),
        "{help}"
    );
}

/// `check zones` (the directory, as a user would point it at their own) prints the same zone
/// text and the same problems as the embedded example.
#[test]
fn check_on_zones_prints_the_example_as_zone_text() {
    let from_dir = run(&["check", "zones"]);
    let embedded = run(&["check"]);
    let (stdout, stderr) = text(&from_dir);
    assert_eq!(from_dir.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr,
        "warning: zones/web.yaml:228: Pod default/web-1: is not Ready, so Service default/nginx \
         does not publish it (no A, SRV or PTR record); fix: wait for its readiness probe to pass \
         (kubectl describe pod web-1 -n default), or set publishNotReadyAddresses: true on \
         Service default/nginx to publish pods before they are ready\n\
         checked 4 file(s): 21 objects, 56 records, 0 error(s), 1 warning(s)\n"
    );
    let (embedded_stdout, embedded_stderr) = text(&embedded);
    assert_eq!(embedded_stderr, stderr);
    assert_eq!(without_serial(&embedded_stdout), without_serial(&stdout));

    let origins: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("$ORIGIN "))
        .collect();
    assert_eq!(
        origins,
        [
            "$ORIGIN in-addr.arpa.",
            "$ORIGIN ip6.arpa.",
            "$ORIGIN cluster.local."
        ]
    );
    for record in [
        "kubia.default.svc.cluster.local. 5 IN SRV 0 50 80 kubia-0.kubia.default.svc.cluster.local.",
        "sts-nginx-0.svc-nginx.prod.svc.cluster.local. 5 IN A 10.42.0.11",
        "db-external.default.svc.cluster.local. 5 IN CNAME db.example.com.",
        "dns-version.cluster.local. 28800 IN TXT \"1.1.0\"",
        "34.12.43.10.in-addr.arpa. 5 IN PTR svc-nginx-public.prod.svc.cluster.local.",
    ] {
        assert!(stdout.lines().any(|l| l == record), "{record}\n{stdout}");
    }
    assert!(!stdout.contains("web-1"), "{stdout}");
    let records = stdout
        .lines()
        .filter(|l| !l.starts_with(';') && !l.starts_with('$') && !l.is_empty())
        .count();
    assert_eq!(records, 56);
}

#[test]
fn check_write_zones_writes_one_file_per_zone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("zones-out");
    let output = run(&["check", "--write-zones", &out.display().to_string()]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("the directory was created")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["cluster.local.zone", "in-addr.arpa.zone", "ip6.arpa.zone"]
    );
    let mut joined = String::new();
    for zone in ["in-addr.arpa.", "ip6.arpa.", "cluster.local."] {
        let file = std::fs::read_to_string(out.join(format!("{zone}zone"))).expect("read");
        let origin = format!("$ORIGIN {zone}\n");
        assert!(file.contains(&origin), "{file}");
        assert_eq!(
            file.matches("$ORIGIN").count(),
            1,
            "one zone per file: {file}"
        );
        joined.push_str(&file);
    }
    assert_eq!(joined, stdout, "the files are what stdout shows");
}

/// `stsdns check | head -1`: a reader that goes away early is not a crash.
#[test]
fn check_into_a_closed_pipe_is_not_a_panic() {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut child = command(&["check"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("stsdns check starts");
    let stderr = drain(child.stderr.take().expect("piped"));
    let status = wait_bounded(&mut child, "stsdns check > closed pipe");
    let stderr = String::from_utf8(stderr.join().expect("stderr reader")).expect("utf-8");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.ends_with("checked 4 file(s): 21 objects, 56 records, 0 error(s), 1 warning(s)\n"),
        "{stderr}"
    );
}

#[test]
fn check_with_a_missing_feed_fails_with_one_line() {
    let output = run(&["check", "tests/fixtures/none.yaml"]);
    assert_eq!(
        assert_one_error_line(&output),
        "stsdns: error: cannot load the feed: cannot read tests/fixtures/none.yaml: No such file \
         or directory (os error 2)"
    );
    assert!(
        !Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/none.yaml")
            .exists()
    );
}
