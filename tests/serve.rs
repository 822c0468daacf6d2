//! `odelt serve` end to end, on a real socket: concurrent requests equal their solo results
//! (and `odelt sample`'s bytes) while sharing engine calls, bad input answered 4xx JSON with the
//! server still serving, admission and deadline limits, slow clients cut off, graceful
//! shutdown, and the web page in a real headless browser (Debian's chromium, driven over the
//! DevTools protocol).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use common::{ok, path_arg};
use odelt_format::ModelConfig;
use odelt_runtime::{Labels, Runtime, RuntimeOptions, SampleRequest, SolverChoice};
use serde_json::{json, Value};

/// A random tiny checkpoint (8×8×1, lengths 2 and 4, 4 classes) exported into `dir/engines`.
fn tiny_export(dir: &Path) -> String {
    let ckpt = dir.join("ckpt");
    odelt_export::testing::write_random_checkpoint(&ckpt, &ModelConfig::tiny(), 5).expect("checkpoint");
    let engines = path_arg(dir, "engines");
    ok(common::odelt(&[
        "export",
        "--checkpoint",
        ckpt.to_str().expect("utf8"),
        "--out",
        &engines,
    ]));
    engines
}

/// An `odelt serve` process on a free loopback port, killed on drop if still running.
struct ServerProcess {
    child: Child,
    base: String,
    /// The rest of its stdout, once it has exited.
    stdout: mpsc::Receiver<String>,
}

impl ServerProcess {
    fn start(engines: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_odelt"))
            .args(["serve", "--engines", engines, "--port", "0", "--threads", "1"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start odelt serve");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout"));
        let (first_tx, first_rx) = mpsc::channel();
        let (rest_tx, rest_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut first = String::new();
            let _ = lines.read_line(&mut first);
            let _ = first_tx.send(first);
            let mut rest = String::new();
            let _ = lines.read_to_string(&mut rest);
            let _ = rest_tx.send(rest);
        });
        let first = first_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("odelt serve did not start within 60 s");
        let base = first
            .trim()
            .strip_prefix("odelt serve: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
            .to_string();
        Self {
            child,
            base,
            stdout: rest_rx,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, then waits (bounded) for the exit; returns its status and remaining stdout.
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let rest = self
                    .stdout
                    .recv_timeout(Duration::from_secs(5))
                    .unwrap_or_default();
                return (status, rest);
            }
            assert!(
                Instant::now() < deadline,
                "odelt serve did not stop within 60 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client")
}

/// One sample of a metric (`name{labels}` exactly as printed) from `/metrics`.
fn metric(server: &ServerProcess, series: &str) -> f64 {
    let text = client()
        .get(server.url("/metrics"))
        .send()
        .and_then(|r| r.text())
        .expect("metrics");
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Polls `condition` every 5 ms for up to `limit`.
fn wait_for(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn npy(bytes: &[u8]) -> ndarray::Array4<f32> {
    ndarray_npy::ReadNpyExt::read_npy(bytes).expect("an npy answer")
}

/// |a − b| ≤ 1e-5 · max(|b|, 1) everywhere (ONNX Runtime may round a row differently in a
/// batch of another size).
fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: sizes");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1.0),
            "{what}: element {i} is {a}, alone {b}"
        );
    }
}

/// The i-th of the concurrent parity requests: lengths, steps, seeds, labels, guidance and
/// both solvers mixed.
fn parity_body(i: usize) -> Value {
    let mut body = json!({ "n": 1 + i % 3, "seed": 100 + i as u64, "format": "npy" });
    if i % 8 == 7 {
        body["solver"] = "dopri5".into();
        body["rtol"] = 1e-3.into();
        body["atol"] = 1e-3.into();
        body["length"] = 4.into();
    } else {
        body["solver"] = "euler".into();
        body["steps"] = [1, 2, 4, 8, 3, 16, 5][i % 7].into();
        body["length"] = [2, 4][i % 2].into();
    }
    match i % 4 {
        0 => {}
        1 => body["class"] = ((i % 4) as i64).into(),
        2 => {
            body["class"] = 2.into();
            body["cfg"] = 2.5.into();
        }
        _ => body["labels"] = json!((0..1 + i % 3).map(|k| (k % 5) as i64).collect::<Vec<_>>()),
    }
    body
}

/// What `odelt sample` would run for a parity body.
fn parity_request(body: &Value) -> SampleRequest {
    let n = body["n"].as_u64().expect("n") as usize;
    let solver = if body["solver"] == "dopri5" {
        SolverChoice::dopri5(1e-3, 1e-3)
    } else {
        SolverChoice::Euler {
            steps: body["steps"].as_u64().expect("steps") as u32,
        }
    };
    let labels = if let Some(class) = body["class"].as_i64() {
        Labels::Class(class)
    } else if let Some(labels) = body["labels"].as_array() {
        Labels::PerSample(labels.iter().map(|l| l.as_i64().expect("label")).collect())
    } else {
        Labels::Null
    };
    SampleRequest::new(n, solver)
        .with_length(body["length"].as_u64().expect("length") as u32)
        .with_seed(body["seed"].as_u64().expect("seed"))
        .with_labels(labels)
        .with_cfg(body["cfg"].as_f64().unwrap_or(1.0) as f32, Default::default())
}

/// Sends the parity bodies 0..requests at once; returns (body, x-odelt-nfe, npy bytes) each.
fn send_at_once(server: &ServerProcess, requests: usize) -> Vec<(Value, String, Vec<u8>)> {
    let barrier = Arc::new(Barrier::new(requests));
    let url = server.url("/v1/samples");
    let threads: Vec<_> = (0..requests)
        .map(|i| {
            let (barrier, url) = (barrier.clone(), url.clone());
            std::thread::spawn(move || {
                let body = parity_body(i);
                let client = client();
                barrier.wait();
                let response = client.post(&url).json(&body).send().expect("request");
                let status = response.status();
                let nfe = response.headers()["x-odelt-nfe"]
                    .to_str()
                    .expect("nfe")
                    .to_string();
                let bytes = response.bytes().expect("body").to_vec();
                assert_eq!(status, 200, "{body}: {}", String::from_utf8_lossy(&bytes));
                (body, nfe, bytes)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("client thread"))
        .collect()
}

/// Every answer equals the same request sampled alone through the runtime API (what
/// `odelt sample` calls); returns how many are bitwise equal.
fn assert_equal_to_solo(engines: &str, answers: &[(Value, String, Vec<u8>)]) -> usize {
    let runtime = Runtime::open(engines, RuntimeOptions::default().with_intra_threads(1)).expect("runtime");
    let mut bitwise = 0;
    for (body, nfe, bytes) in answers {
        let alone = runtime.sample(&parity_request(body)).expect("solo sample");
        let got = npy(bytes);
        assert_eq!(got.shape(), alone.shape, "{body}");
        assert_close(
            got.as_slice().expect("contiguous"),
            &alone.data,
            &body.to_string(),
        );
        assert_eq!(nfe, &alone.stats.nfe.to_string(), "{body}");
        bitwise += usize::from(got.as_slice() == Some(&alone.data[..]));
    }
    bitwise
}

#[test]
fn concurrent_requests_equal_their_solo_results_and_share_engine_calls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engines = tiny_export(dir.path());
    let server = ServerProcess::start(&engines, &[]);
    const REQUESTS: usize = 32;
    let answers = send_at_once(&server, REQUESTS);
    let bitwise = assert_equal_to_solo(&engines, &answers);
    eprintln!("{bitwise} of {REQUESTS} concurrent answers are bitwise equal to their solo result");

    // And `odelt sample --npy` writes the same bytes for the same flags (checked on a few).
    for (body, _, bytes) in answers.iter().filter(|(b, _, _)| b["solver"] == "euler").take(3) {
        let npy_path = path_arg(dir.path(), "alone.npy");
        let mut args = vec![
            "sample".to_string(),
            "--engines".into(),
            engines.clone(),
            "--solver".into(),
            "euler".into(),
            "--threads".into(),
            "1".into(),
            "--npy".into(),
            npy_path.clone(),
        ];
        for key in ["n", "length", "steps", "seed", "class", "cfg"] {
            if let Some(value) = body.get(key) {
                args.extend([format!("--{key}"), value.to_string()]);
            }
        }
        if body.get("labels").is_some() {
            continue;
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(common::odelt(&args));
        let cli = std::fs::read(&npy_path).expect("npy");
        let (got, want) = (npy(bytes), npy(&cli));
        assert_close(
            got.as_slice().expect("contiguous"),
            want.as_slice().expect("contiguous"),
            &format!("{body} against odelt sample"),
        );
    }

    // The point of the scheduler: rows of different requests shared calls.
    let (mut calls, mut rows) = (0.0, 0.0);
    for length in [2, 4] {
        calls += metric(
            &server,
            &format!("odelt_engine_calls_total{{length=\"{length}\"}}"),
        );
        rows += metric(
            &server,
            &format!("odelt_engine_rows_total{{length=\"{length}\"}}"),
        );
    }
    let solo_calls: f64 = answers
        .iter()
        .map(|(_, nfe, _)| nfe.parse::<f64>().expect("nfe"))
        .sum();
    eprintln!("32 concurrent requests: {calls} engine calls for {rows} rows; alone they would take {solo_calls} calls");
    assert!(
        calls > 0.0 && rows / calls > 1.0,
        "no batching: {rows} rows in {calls} calls"
    );
    assert!(
        calls < solo_calls,
        "{calls} calls, {solo_calls} if served one by one"
    );
    assert_eq!(
        metric(
            &server,
            "odelt_requests_total{route=\"/v1/samples\",status=\"200\"}"
        ),
        REQUESTS as f64
    );
    let (status, _) = server.terminate();
    assert!(status.success());
}

#[test]
fn small_max_batch_splits_and_holds_rows_without_changing_results() {
    // With 5 rows per call, a guided request of 3 samples (6 rows) is split into two calls,
    // and evaluations that do not fit a call wait for the next one.
    let dir = tempfile::tempdir().expect("tempdir");
    let engines = tiny_export(dir.path());
    let server = ServerProcess::start(&engines, &["--max-batch", "5"]);
    let answers = send_at_once(&server, 16);
    assert_equal_to_solo(&engines, &answers);
}

#[test]
fn bad_requests_get_json_4xx_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engines = tiny_export(dir.path());
    let server = ServerProcess::start(&engines, &["--max-n", "16"]);
    let client = client();
    let samples = server.url("/v1/samples");
    let huge_labels = format!(
        r#"{{"n": 1, "length": 2, "steps": 1, "labels": [{}0]}}"#,
        "0,".repeat(40_000)
    );
    // (what, body): each answered 400.
    let bad_bodies = [
        ("malformed JSON", r#"{"n": 2, "length""#),
        ("not an object", "[1, 2]"),
        ("wrong type", r#"{"n": "two", "length": 2, "steps": 1}"#),
        ("negative n", r#"{"n": -1, "length": 2, "steps": 1}"#),
        (
            "unknown field",
            r#"{"n": 1, "length": 2, "steps": 1, "colour": 3}"#,
        ),
        ("unknown solver", r#"{"n": 1, "length": 2, "solver": "rk4"}"#),
        ("invalid length", r#"{"n": 1, "length": 3, "steps": 1}"#),
        ("length beyond the depth", r#"{"n": 1, "length": 6, "steps": 1}"#),
        ("huge n", r#"{"n": 100000000000, "length": 2, "steps": 1}"#),
        ("n 0", r#"{"n": 0, "length": 2, "steps": 1}"#),
        ("n over --max-n", r#"{"n": 17, "length": 2, "steps": 1}"#),
        ("steps 0", r#"{"n": 1, "length": 2, "steps": 0}"#),
        (
            "steps over the limit",
            r#"{"n": 1, "length": 2, "steps": 100000}"#,
        ),
        ("euler without steps", r#"{"n": 1, "length": 2}"#),
        ("dopri5 with steps", r#"{"n": 1, "solver": "dopri5", "steps": 4}"#),
        ("rtol 0", r#"{"n": 1, "solver": "dopri5", "rtol": 0}"#),
        (
            "class out of range",
            r#"{"n": 1, "length": 2, "steps": 1, "class": 9}"#,
        ),
        (
            "labels of the wrong count",
            r#"{"n": 2, "length": 2, "steps": 1, "labels": [1]}"#,
        ),
        (
            "class and labels",
            r#"{"n": 1, "length": 2, "steps": 1, "class": 1, "labels": [1]}"#,
        ),
        (
            "length and budget",
            r#"{"n": 1, "length": 2, "budget_ms": 5, "steps": 1}"#,
        ),
        ("budget without calibration", r#"{"n": 1, "budget_ms": 5}"#),
        (
            "unknown format",
            r#"{"n": 1, "length": 2, "steps": 1, "format": "gif"}"#,
        ),
    ];
    let cases = bad_bodies
        .iter()
        .map(|(what, body)| (*what, body.to_string(), 400))
        .chain([("body over the limit", huge_labels, 413)]);
    for (what, body, want) in cases {
        let response = client
            .post(&samples)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .expect("request");
        let status = response.status().as_u16();
        let text = response.text().expect("body");
        assert_eq!(status, want, "{what}: {text}");
        let error: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: not JSON: {text}"));
        let message = error["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: {text}"));
        assert!(!message.is_empty(), "{what}");
        eprintln!("{what}: {status} {message}");
    }
    for (method, path, want) in [
        ("GET", "/nope", 404),
        ("PUT", "/v1/samples", 405),
        ("GET", "/v1/samples", 405),
    ] {
        let response = client
            .request(method.parse().expect("method"), server.url(path))
            .send()
            .expect("request");
        assert_eq!(response.status().as_u16(), want, "{method} {path}");
        let error: Value = response.json().expect("JSON error");
        assert!(error["error"].is_string(), "{method} {path}: {error}");
    }

    // Still serving, in every format.
    assert_eq!(
        client
            .get(server.url("/healthz"))
            .send()
            .expect("healthz")
            .status(),
        200
    );
    assert_eq!(
        client.get(server.url("/readyz")).send().expect("readyz").status(),
        200
    );
    let models: Value = client
        .get(server.url("/v1/models"))
        .send()
        .and_then(|r| r.json())
        .expect("models");
    assert_eq!(models["image_shape"], json!([1, 8, 8]), "{models}");
    assert_eq!(models["precision"], "fp32", "{models}");
    assert_eq!(models["lengths"].as_array().map(Vec::len), Some(2), "{models}");
    let answer = |format: &str| {
        let response = client
            .post(&samples)
            .json(&json!({ "n": 3, "length": 4, "steps": 2, "seed": 7, "format": format }))
            .send()
            .expect("request");
        assert_eq!(response.status(), 200, "{format}");
        assert_eq!(response.headers()["x-odelt-length"], "4");
        assert_eq!(response.headers()["x-odelt-nfe"], "2");
        let server_ms: f64 = response.headers()["x-odelt-server-ms"]
            .to_str()
            .expect("ms")
            .parse()
            .expect("ms");
        assert!(server_ms > 0.0);
        (
            response.headers()["content-type"]
                .to_str()
                .expect("type")
                .to_string(),
            response.bytes().expect("body"),
        )
    };
    let (kind, bytes) = answer("npy");
    assert_eq!(kind, "application/x-npy");
    let x = npy(&bytes);
    let (kind, bytes) = answer("json");
    assert_eq!(kind, "application/json");
    let body: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(body["shape"], json!([3, 1, 8, 8]));
    assert_eq!(body["nfe"], 2);
    let data: Vec<f32> = body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|v| v.as_f64().expect("float") as f32)
        .collect();
    assert_eq!(
        data,
        x.as_slice().expect("contiguous"),
        "json and npy carry the same samples"
    );
    let (kind, bytes) = answer("png");
    assert_eq!(kind, "image/png");
    assert_eq!(&bytes[1..4], b"PNG");
    let bad = metric(
        &server,
        "odelt_requests_total{route=\"/v1/samples\",status=\"400\"}",
    );
    assert_eq!(bad, bad_bodies.len() as f64);
}

#[test]
fn full_queue_503_deadline_504_and_abandoned_work_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engines = tiny_export(dir.path());
    let long = json!({ "n": 64, "length": 4, "steps": 1024, "cfg": 3, "class": 1 });

    let server = ServerProcess::start(&engines, &["--max-queue", "1", "--max-n", "64"]);
    let url = server.url("/v1/samples");
    let first = {
        let (url, long) = (url.clone(), long.clone());
        std::thread::spawn(move || client().post(&url).json(&long).send().expect("request").status())
    };
    wait_for(Duration::from_secs(30), "the first request's admission", || {
        metric(&server, "odelt_queue_depth") == 1.0
    });
    let refused = client()
        .post(&url)
        .json(&json!({ "n": 1, "length": 2, "steps": 1 }))
        .send()
        .expect("request");
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert!(refused.json::<Value>().expect("JSON")["error"].is_string());
    assert_eq!(first.join().expect("first"), 200);

    // A client that goes away: its remaining evaluations are dropped unrun.
    let rows_before = metric(&server, "odelt_engine_rows_total{length=\"4\"}");
    let impatient = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .expect("client");
    assert!(
        impatient.post(&url).json(&long).send().is_err(),
        "answered within 100 ms"
    );
    wait_for(Duration::from_secs(10), "the abandoned request to stop", || {
        metric(&server, "odelt_queue_depth") == 0.0
    });
    let ran = metric(&server, "odelt_engine_rows_total{length=\"4\"}") - rows_before;
    eprintln!("abandoned request: {ran} of its 1024 × 128 rows ran");
    assert!(ran < 1024.0 * 128.0, "{ran} rows ran for an abandoned request");
    drop(server);

    let server = ServerProcess::start(&engines, &["--deadline-ms", "20"]);
    let response = client()
        .post(server.url("/v1/samples"))
        .json(&long)
        .send()
        .expect("request");
    assert_eq!(response.status(), 504);
    assert!(response.json::<Value>().expect("JSON")["error"]
        .as_str()
        .expect("error")
        .contains("deadline"));
    // Its remaining work was dropped: far fewer rows than the whole solve's 1024 × 128.
    wait_for(Duration::from_secs(10), "the queue to empty", || {
        metric(&server, "odelt_queue_depth") == 0.0
    });
    let rows = metric(&server, "odelt_engine_rows_total{length=\"4\"}");
    assert!(rows < 1024.0 * 128.0, "{rows} rows ran");
}

/// Sends `head` (and nothing more) on a new connection, then reads until the server answers
/// or closes; returns what it said and how long that took.
fn trickle(server: &ServerProcess, head: &str) -> (String, Duration) {
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let start = Instant::now();
    stream.write_all(head.as_bytes()).expect("send");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    (answer, start.elapsed())
}

#[test]
fn slow_clients_are_cut_off_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engines = tiny_export(dir.path());
    let server = ServerProcess::start(&engines, &["--client-timeout-ms", "500"]);

    // Half a request head: the connection is closed once the timeout has passed.
    let (answer, took) = trickle(&server, "POST /v1/samples HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    assert!(!answer.contains("200 OK"), "{answer}");
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );

    // A whole head, then 10 of the 100 body bytes it announced: 408 with a JSON error.
    let head = "POST /v1/samples HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                Content-Length: 100\r\nConnection: close\r\n\r\n{\"n\": 1, ";
    let (answer, took) = trickle(&server, head);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("\"error\"") && answer.contains("did not arrive within 500 ms"),
        "{answer}"
    );
    assert!(took < Duration::from_secs(5), "answered after {took:?}");

    let ok = client()
        .post(server.url("/v1/samples"))
        .json(&json!({ "n": 1, "length": 2, "steps": 1 }))
        .send()
        .expect("request");
    assert_eq!(ok.status(), 200);
}

#[test]
fn shutdown_answers_every_accepted_request_and_refuses_new_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engines = tiny_export(dir.path());
    let server = ServerProcess::start(&engines, &[]);
    const REQUESTS: usize = 8;
    let url = server.url("/v1/samples");
    let threads: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let body = json!({ "n": 8, "length": 4, "steps": 256, "seed": i });
                let response = client()
                    .post(&url)
                    .json(&body)
                    .send()
                    .expect("an answer, not a dropped connection");
                (response.status().as_u16(), response.bytes().expect("body"))
            })
        })
        .collect();
    wait_for(Duration::from_secs(30), "every request's admission", || {
        metric(&server, "odelt_queue_depth") == REQUESTS as f64
    });
    let base = server.base.clone();
    let (status, stdout) = server.terminate();
    for thread in threads {
        let (code, bytes) = thread.join().expect("client thread");
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&bytes));
        assert_eq!(npy(&bytes).shape(), [8, 1, 8, 8]);
    }
    assert!(status.success(), "{status:?}");
    assert!(stdout.contains("odelt serve: stopped after"), "{stdout}");
    assert!(
        client().get(format!("{base}/healthz")).send().is_err(),
        "a stopped server still answered"
    );
}

/// A minimal DevTools-protocol client: commands on one page's WebSocket, answers matched by id.
struct DevTools {
    socket: tungstenite::WebSocket<std::net::TcpStream>,
    next_id: u64,
}

impl DevTools {
    fn connect(ws_url: &str) -> Self {
        let address = ws_url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .expect("ws url");
        let stream = std::net::TcpStream::connect(address).expect("DevTools socket");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let (socket, _) = tungstenite::client(ws_url, stream).expect("DevTools handshake");
        Self { socket, next_id: 1 }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let message = json!({ "id": id, "method": method, "params": params }).to_string();
        self.socket
            .send(tungstenite::Message::text(message))
            .expect("send");
        loop {
            let message = self.socket.read().expect("DevTools answer");
            let Ok(text) = message.to_text() else { continue };
            let Ok(value) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            if value["id"] == id {
                assert!(value.get("error").is_none(), "{method}: {value}");
                return value["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        );
        result["result"]["value"].clone()
    }
}

#[test]
fn web_page_samples_in_a_headless_browser() {
    let chromium = Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        eprintln!("SKIPPED: /usr/bin/chromium is absent; install it with `scripts/setup.sh --browser`");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let engines = tiny_export(dir.path());
    let server = ServerProcess::start(&engines, &[]);
    let profile = dir.path().join("chromium-profile");
    let mut browser = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    struct KillOnDrop<'a>(&'a mut Child);
    impl Drop for KillOnDrop<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _browser = KillOnDrop(&mut browser);

    // Chromium writes its DevTools port into the profile once it listens.
    let mut port = String::new();
    wait_for(Duration::from_secs(60), "chromium's DevToolsActivePort", || {
        port = std::fs::read_to_string(profile.join("DevToolsActivePort"))
            .ok()
            .and_then(|text| text.lines().next().map(str::to_string))
            .unwrap_or_default();
        !port.is_empty()
    });
    let mut page_ws = String::new();
    wait_for(Duration::from_secs(30), "a page target", || {
        let targets: Value = client()
            .get(format!("http://127.0.0.1:{port}/json/list"))
            .send()
            .and_then(|r| r.json())
            .unwrap_or(Value::Null);
        page_ws = targets
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .unwrap_or_default()
            .to_string();
        !page_ws.is_empty()
    });
    let mut devtools = DevTools::connect(&page_ws);
    devtools.call("Page.navigate", json!({ "url": server.url("/") }));
    wait_for(Duration::from_secs(30), "the page to list the lengths", || {
        devtools.eval("document.getElementById('length')?.options.length ?? 0") == json!(2)
    });
    devtools.eval(
        "document.getElementById('class').value = '1';
         document.getElementById('steps').value = '2';
         document.getElementById('n').value = '16';
         document.getElementById('go').click(); true",
    );
    let mut shown = Value::Null;
    wait_for(Duration::from_secs(60), "the samples to appear", || {
        shown = devtools.eval(
            "(() => { const img = document.getElementById('samples');
                      const status = document.getElementById('status');
                      if (status.className === 'error') return { error: status.textContent };
                      return img.complete && img.naturalWidth > 0
                        ? { width: img.naturalWidth, height: img.naturalHeight,
                            latency: Number(status.dataset.latencyMs), text: status.textContent }
                        : null; })()",
        );
        !shown.is_null()
    });
    assert!(shown.get("error").is_none(), "the page shows an error: {shown}");
    // 16 samples of 8×8 in a 4×4 grid with 2-pixel gaps.
    assert_eq!(
        (shown["width"].as_u64(), shown["height"].as_u64()),
        (Some(38), Some(38)),
        "{shown}"
    );
    assert!(shown["latency"].as_f64().is_some_and(|ms| ms > 0.0), "{shown}");
    assert!(
        shown["text"]
            .as_str()
            .is_some_and(|t| t.contains("2 evaluations")),
        "{shown}"
    );
    assert_eq!(
        metric(
            &server,
            "odelt_requests_total{route=\"/v1/samples\",status=\"200\"}"
        ),
        1.0
    );
}

#[test]
fn bad_flags_are_one_line_and_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = path_arg(dir.path(), "missing");
    common::assert_bad_input(
        &["serve", "--engines", &missing, "--port", "0"],
        &[],
        "does not exist",
    );
    let engines = tiny_export(dir.path());
    common::assert_bad_input(
        &["serve", "--engines", &engines, "--port", "0", "--max-batch", "0"],
        &[],
        "--max-batch must be at least 1",
    );
    // A port already taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    common::assert_bad_input(
        &["serve", "--engines", &engines, "--port", &port],
        &[],
        "cannot listen on 127.0.0.1",
    );
}
