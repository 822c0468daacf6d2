//! `odelt triton` and the remote engine against real parts, on loopback: every generated
//! `config.pbtxt` parsed with Triton's own schema (tritonclient's `model_config_pb2`) and
//! compared with the ONNX graph; sampling through a real KServe v2 gRPC server (the `kserve`
//! package's ModelServer running the repository's graphs with onnxruntime,
//! `scripts/kserve_onnx_server.py`) equal to local sampling, from the Rust API, `odelt sample`
//! and `odelt serve`; a server killed or frozen mid-solve gives one clear line within the
//! timeout, and the next call after a restart succeeds.
//!
//! Needs the venv of `scripts/setup.sh --kserve` (`. scripts/env.sh` sets ODELT_KSERVE_PYTHON).

mod common;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{odelt, odelt_words, ok, words};
use odelt_format::ModelConfig;
use odelt_runtime::{
    GuidanceMode, Labels, RemoteOptions, Runtime, RuntimeOptions, SampleRequest, SolverChoice,
};

fn kserve_python() -> PathBuf {
    let python = std::env::var_os("ODELT_KSERVE_PYTHON").map(PathBuf::from);
    match python {
        Some(p) if p.exists() => p,
        _ => panic!(
            "ODELT_KSERVE_PYTHON is not set or missing: run `scripts/setup.sh --kserve` and `. scripts/env.sh`"
        ),
    }
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name)
}

fn text(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A random tiny model exported to `dir/engines` (lengths 2 and 4).
fn export(dir: &Path, cfg: &ModelConfig, name: &str) -> PathBuf {
    let ckpt = dir.join(format!("{name}-ckpt"));
    odelt_export::testing::write_random_checkpoint(&ckpt, cfg, 7).expect("checkpoint");
    let engines = dir.join(name);
    ok(odelt(&[
        "export",
        "--checkpoint",
        text(&ckpt),
        "--out",
        text(&engines),
    ]));
    engines
}

fn triton(engines: &Path, repo: &Path, extra: &[&str]) -> Output {
    odelt(
        &[
            &["triton", "--engines", text(engines), "--out", text(repo)],
            extra,
        ]
        .concat(),
    )
}

/// `scripts/check_triton_repository.py REPO`: one JSON object per model.
fn check_repository(repo: &Path) -> Result<Vec<serde_json::Value>, String> {
    let out = Command::new(kserve_python())
        .arg(script("check_triton_repository.py"))
        .arg(repo)
        .output()
        .expect("run the checker");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(common::json_lines(&String::from_utf8_lossy(&out.stdout)))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `scripts/kserve_onnx_server.py` serving a repository on loopback; killed on drop.
struct KServe {
    child: Child,
    grpc_port: u16,
}

impl KServe {
    fn start(repo: &Path, grpc_port: u16) -> Self {
        let http_port = free_port();
        let child = Command::new(kserve_python())
            .arg(script("kserve_onnx_server.py"))
            .args(["--repository", text(repo), "--host", "127.0.0.1"])
            .args([
                "--grpc-port",
                &grpc_port.to_string(),
                "--http-port",
                &http_port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the kserve server");
        let server = Self { child, grpc_port };
        // Ready when its REST health route says so (models load before either server listens)
        // and the gRPC port takes connections.
        let ready = format!("http://127.0.0.1:{http_port}/v2/health/ready");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let http_ready = reqwest::blocking::get(&ready).is_ok_and(|r| r.status().is_success());
            if http_ready && TcpStream::connect(("127.0.0.1", grpc_port)).is_ok() {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "the kserve server did not get ready in 90 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn endpoint(&self) -> String {
        format!("grpc://127.0.0.1:{}", self.grpc_port)
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill {signal}");
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for KServe {
    fn drop(&mut self) {
        // Still ours (not yet reaped): a frozen server is woken so that it dies cleanly.
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal("-CONT");
        }
        self.kill();
    }
}

/// Samples equal within 1e-5 relative to the largest magnitude.
fn assert_close(remote: &[f32], local: &[f32], what: &str) {
    assert_eq!(remote.len(), local.len(), "{what}");
    let scale = local.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let worst = remote
        .iter()
        .zip(local)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        worst <= 1e-5 * scale,
        "{what}: max difference {worst} (scale {scale})"
    );
}

fn remote_options(server: &KServe, timeout_ms: u64) -> RuntimeOptions {
    RuntimeOptions::default()
        .with_remote(RemoteOptions::new(server.endpoint()).with_timeout(Duration::from_millis(timeout_ms)))
}

#[test]
fn repository_configs_parse_with_tritons_schema_and_agree_with_the_graphs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engines = export(dir.path(), &ModelConfig::tiny(), "engines");

    let cpu = dir.path().join("repo-cpu");
    let line = ok(triton(&engines, &cpu, &["--max-batch", "8", "--instances", "2"]));
    assert!(line.contains("odelt_l2, odelt_l4"), "{line}");
    let models = check_repository(&cpu).expect("the CPU repository checks");
    let names: Vec<&str> = models
        .iter()
        .map(|m| m["model"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["odelt_l2", "odelt_l4"]);
    for m in &models {
        assert_eq!(m["platform"], "onnxruntime_onnx");
        assert_eq!(m["max_batch_size"], 8);
        assert_eq!(
            m["instances"],
            serde_json::json!([{"count": 2, "kind": "KIND_CPU"}])
        );
        assert_eq!(m["preferred_batch_size"], serde_json::json!([2, 4, 8]));
        assert_eq!(m["warmup"], serde_json::json!([1, 8]));
        assert_eq!(m["accelerators"], serde_json::json!([]));
    }
    // One weights file for every length.
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let inode = |l: u32| {
            std::fs::metadata(cpu.join(format!("odelt_l{l}/1/model.onnx/weights.bin")))
                .expect("weights")
                .ino()
        };
        assert_eq!(inode(2), inode(4));
    }

    let gpu = dir.path().join("repo-gpu");
    ok(triton(&engines, &gpu, &["--kind", "gpu", "--fp16"]));
    for m in check_repository(&gpu).expect("the GPU repository checks") {
        assert_eq!(m["instances"][0]["kind"], "KIND_GPU");
        assert_eq!(m["accelerators"], serde_json::json!(["tensorrt"]));
    }
    let config = std::fs::read_to_string(gpu.join("odelt_l4/config.pbtxt")).expect("config");
    assert!(
        config.contains(r#"key: "precision_mode" value: "FP16""#),
        "{config}"
    );

    let plans = dir.path().join("repo-tensorrt");
    ok(triton(
        &engines,
        &plans,
        &["--backend", "tensorrt", "--kind", "gpu"],
    ));
    for m in check_repository(&plans).expect("the TensorRT repository checks") {
        assert_eq!(m["platform"], "tensorrt_plan");
    }
    assert!(plans.join("build_plans.sh").is_file());

    // The checker can fail: a config whose x disagrees with the graph is named.
    let tampered = std::fs::read_to_string(cpu.join("odelt_l4/config.pbtxt"))
        .expect("config")
        .replacen("dims: [ 1, 8, 8 ]", "dims: [ 3, 8, 8 ]", 1);
    std::fs::write(cpu.join("odelt_l4/config.pbtxt"), tampered).expect("write");
    let err = check_repository(&cpu).expect_err("a wrong shape is found");
    assert!(err.contains("odelt_l4: input 'x'"), "{err}");
    // ...and an unknown field is refused by Triton's schema.
    let unknown =
        std::fs::read_to_string(gpu.join("odelt_l2/config.pbtxt")).expect("config") + "max_batch_sise: 3\n";
    std::fs::write(gpu.join("odelt_l2/config.pbtxt"), unknown).expect("write");
    let err = check_repository(&gpu).expect_err("an unknown field is refused");
    assert!(err.contains("not a Triton model config"), "{err}");
}

#[test]
fn repository_is_written_whole_or_not_at_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engines = export(dir.path(), &ModelConfig::tiny(), "engines");
    let repo = dir.path().join("repo");
    ok(triton(&engines, &repo, &[]));
    let before = std::fs::read_to_string(repo.join("odelt_l2/config.pbtxt")).expect("config");

    // A graph that disappears fails the second model's copy: the earlier repository stays whole.
    std::fs::remove_file(engines.join("model_l4.onnx")).expect("remove");
    let out = triton(&engines, &repo, &["--max-batch", "4"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("model_l4.onnx"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(repo.join("odelt_l2/config.pbtxt")).expect("config"),
        before
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".repo"))
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");

    // Bad usage: one line, exit 2, nothing written.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).expect("mkdir");
    std::fs::write(other.join("notes.txt"), "mine").expect("write");
    for (out, needle) in [
        (
            triton(&engines, &other, &[]),
            "not a repository written by `odelt triton`",
        ),
        (
            triton(&engines, &dir.path().join("new"), &["--backend", "tensorrt"]),
            "--kind gpu",
        ),
        (
            triton(&engines, &dir.path().join("new"), &["--fp16"]),
            "--kind gpu",
        ),
        (
            triton(&engines, &dir.path().join("new"), &["--max-batch", "0"]),
            "--max-batch",
        ),
    ] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(needle) && stderr.lines().count() == 1, "{stderr}");
    }
    assert!(!dir.path().join("new").exists());
    assert_eq!(
        std::fs::read_to_string(other.join("notes.txt")).expect("kept"),
        "mine"
    );
}

#[test]
fn remote_sampling_equals_local_and_fails_clearly_when_the_server_goes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engines = export(dir.path(), &ModelConfig::tiny(), "engines");
    let repo = dir.path().join("repo");
    ok(triton(&engines, &repo, &["--max-batch", "16"]));
    let port = free_port();
    let mut server = KServe::start(&repo, port);

    // Parity with local sampling: Euler with batched guidance, Euler with separate guidance
    // and per-sample labels, Dopri5; both lengths.
    let local = Runtime::open(&engines, RuntimeOptions::default().with_intra_threads(1)).expect("local");
    let remote = Runtime::open(&engines, remote_options(&server, 10_000)).expect("remote");
    assert!(remote.engine(4).is_err(), "a remote runtime has no local engine");
    let requests = [
        SampleRequest::new(3, SolverChoice::Euler { steps: 4 })
            .with_length(2)
            .with_seed(11)
            .with_labels(Labels::Class(1))
            .with_cfg(2.0, GuidanceMode::Batched),
        SampleRequest::new(3, SolverChoice::Euler { steps: 5 })
            .with_length(4)
            .with_seed(12)
            .with_labels(Labels::PerSample(vec![0, 2, 4]))
            .with_cfg(1.5, GuidanceMode::Separate),
        SampleRequest::new(2, SolverChoice::dopri5(1e-3, 1e-3)).with_seed(13),
    ];
    for req in &requests {
        let a = remote.sample(req).expect("remote sample");
        let b = local.sample(req).expect("local sample");
        assert_eq!(a.stats.nfe, b.stats.nfe, "{req:?}");
        assert_close(&a.data, &b.data, &format!("{req:?}"));
    }

    // The CLI: `odelt sample --remote` writes what the local command writes.
    let sample = |extra: &[&str], npy: &Path| {
        let paths = [&["--engines", text(&engines), "--npy", text(npy)], extra].concat();
        odelt_words(
            "sample --length 4 --solver euler --steps 8 --n 4 --seed 5 --class 3",
            &paths,
        )
    };
    let endpoint = server.endpoint();
    ok(sample(&["--remote", &endpoint], &dir.path().join("remote.npy")));
    ok(sample(&["--threads", "1"], &dir.path().join("local.npy")));
    let read = |name: &str| -> Vec<f32> {
        let a: ndarray::ArrayD<f32> = ndarray_npy::read_npy(dir.path().join(name)).expect("npy");
        a.into_raw_vec_and_offset().0
    };
    assert_close(&read("remote.npy"), &read("local.npy"), "odelt sample --remote");

    // `odelt serve --remote`: its answer equals the local command's samples.
    serve_answers_like_local(&engines, &endpoint, &read("local.npy"));

    // A metadata mismatch names the field (exit 2).
    let mut rgb = ModelConfig::tiny();
    rgb.in_channels = 3;
    let rgb_engines = export(dir.path(), &rgb, "rgb");
    let out = odelt_words(
        "sample --length 2 --solver euler --steps 1 --n 1",
        &["--engines", text(&rgb_engines), "--remote", &endpoint],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "odelt_l2: input 'x' shape is [-1, 1, 8, 8] on the server, the manifest needs [-1, 3, 8, 8]"
        ),
        "{stderr}"
    );

    // Frozen mid-solve (SIGSTOP): the call times out, one line, exit 1, within the timeout.
    let long_solve = |timeout_ms: &str| {
        Command::new(env!("CARGO_BIN_EXE_odelt"))
            .args(words("sample --length 4 --solver euler --steps 100000 --n 1"))
            .args(["--engines", text(&engines)])
            .args(["--remote", &endpoint])
            .args(["--remote-timeout-ms", timeout_ms, "--remote-retries", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start odelt sample")
    };
    let stderr = fails_soon_after(
        long_solve("1500"),
        || server.signal("-STOP"),
        &endpoint,
        "timed out",
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    server.signal("-CONT");

    // Killed mid-solve: retries find nobody, one line, exit 1, well within the timeout. The
    // retries are logged (warn) before it.
    let stderr = fails_soon_after(
        long_solve("20000"),
        || server.kill(),
        &endpoint,
        "server unavailable",
    );
    assert!(stderr.contains("retry 2 of 2"), "{stderr}");
    // The runtime opened before the kill fails the same way...
    let err = remote.sample(&requests[0]).expect_err("server gone");
    assert!(
        !err.is_input() && err.to_string().contains("server unavailable"),
        "{err}"
    );

    // ...and its next call after a restart on the same port succeeds (the connection is made
    // again), with the same samples.
    let _server = KServe::start(&repo, port);
    let again = remote.sample(&requests[0]).expect("after the restart");
    assert_close(
        &again.data,
        &local.sample(&requests[0]).expect("local").data,
        "after restart",
    );
}

/// Lets `solve` (an `odelt sample --remote` in progress) run 1.5 s, then does `stop` to its
/// server: the solve must end within 5 s with exit 1 and one error line, the last, naming the
/// endpoint and `what`. Returns its stderr.
fn fails_soon_after(solve: Child, stop: impl FnOnce(), endpoint: &str, what: &str) -> String {
    std::thread::sleep(Duration::from_millis(1500));
    stop();
    let stopped = Instant::now();
    let out = solve.wait_with_output().expect("wait");
    let took = stopped.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert_eq!(stderr.lines().last(), Some(errors[0]), "{stderr}");
    assert!(
        errors[0].contains(endpoint) && errors[0].contains(what),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}: {stderr}");
    stderr
}

/// `odelt serve --remote ENDPOINT` on a free port: POST /v1/samples as `odelt sample` above.
fn serve_answers_like_local(engines: &Path, endpoint: &str, local: &[f32]) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_odelt"))
        .args([
            "serve",
            "--engines",
            text(engines),
            "--port",
            "0",
            "--remote",
            endpoint,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start odelt serve");
    struct Stop(Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().expect("stdout");
    let child = Stop(child);
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).expect("first line");
    let base = first
        .trim()
        .strip_prefix("odelt serve: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();
    let models: serde_json::Value = reqwest::blocking::get(format!("{base}/v1/models"))
        .and_then(|r| r.json())
        .expect("GET /v1/models");
    assert_eq!(models["remote"], endpoint);
    let answer = reqwest::blocking::Client::new()
        .post(format!("{base}/v1/samples"))
        .json(&serde_json::json!({
            "n": 4, "length": 4, "steps": 8, "seed": 5, "class": 3, "format": "json"
        }))
        .send()
        .expect("POST /v1/samples");
    assert!(answer.status().is_success(), "{:?}", answer.text());
    let body: serde_json::Value = answer.json().expect("json");
    let data: Vec<f32> = body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|v| v.as_f64().expect("number") as f32)
        .collect();
    assert_close(&data, local, "odelt serve --remote");

    // SIGTERM: a clean stop (the remote client is dropped off the async threads' way).
    let mut child = child;
    let term = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status();
    assert!(term.is_ok_and(|s| s.success()));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "odelt serve did not stop in 10 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}
