//! Load benchmark of `odelt serve` on loopback: closed-loop clients (each sends its next
//! request when the last is answered) at several concurrencies, for a few request mixes.
//! Concurrency 1 is the same requests served one at a time: the baseline.
//!
//! ```text
//! odelt export --checkpoint assets/fmnist --lengths 4,8,12 --out /tmp/fmnist-engines
//! cargo bench --bench serve_load -- --engines /tmp/fmnist-engines [--seconds 5] \
//!     [--clients 1,8,32,64] [--threads 0] [--max-batch 64] [--batch-wait-us 1000] [--mix NAME]
//! ```
//!
//! Per (mix, clients): images/s, p50/p99 latency, errors, the server's rows per engine call and
//! its peak RSS (VmHWM of the server process, which serves every cell of the run), as a
//! Markdown table on stdout. Bounded: each cell runs `--seconds` and at most 100 000 requests.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Settings {
    engines: String,
    seconds: f64,
    clients: Vec<usize>,
    threads: usize,
    max_batch: usize,
    batch_wait_us: u64,
    /// Only the mixes whose name contains this.
    mix: String,
}

fn settings() -> Settings {
    let mut s = Settings {
        engines: String::new(),
        seconds: 5.0,
        clients: vec![1, 8, 32, 64],
        threads: 0,
        max_batch: 64,
        batch_wait_us: 1000,
        mix: String::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--engines" => s.engines = value(),
            "--seconds" => s.seconds = value().parse().expect("--seconds"),
            "--clients" => {
                s.clients = value()
                    .split(',')
                    .map(|c| c.parse().expect("--clients"))
                    .collect()
            }
            "--threads" => s.threads = value().parse().expect("--threads"),
            "--max-batch" => s.max_batch = value().parse().expect("--max-batch"),
            "--batch-wait-us" => s.batch_wait_us = value().parse().expect("--batch-wait-us"),
            "--mix" => s.mix = value(),
            // cargo bench passes --bench; nothing else is expected.
            _ => {}
        }
    }
    if s.engines.is_empty() {
        eprintln!("serve_load: needs --engines DIR (an export of assets/fmnist at lengths 4,8,12); skipped");
        std::process::exit(0);
    }
    s
}

/// A request mix: the body of the i-th request, and the images each request asks for.
struct Mix {
    name: &'static str,
    images: u64,
    body: fn(u64) -> Value,
}

const MIXES: &[Mix] = &[
    Mix {
        name: "euler T=4, l=12",
        images: 1,
        body: |i| json!({ "n": 1, "length": 12, "steps": 4, "seed": i, "class": i % 10 }),
    },
    Mix {
        name: "euler T=128, l=12",
        images: 1,
        body: |i| json!({ "n": 1, "length": 12, "steps": 128, "seed": i, "class": i % 10 }),
    },
    Mix {
        name: "euler T=4, l mixed 4/8/12",
        images: 1,
        body: |i| {
            let length = [4, 8, 12][(i % 3) as usize];
            json!({ "n": 1, "length": length, "steps": 4, "seed": i, "class": i % 10 })
        },
    },
    Mix {
        name: "euler T=4, l=12, n=4",
        images: 4,
        body: |i| json!({ "n": 4, "length": 12, "steps": 4, "seed": i, "class": i % 10 }),
    },
    Mix {
        name: "euler T=4, l=12, cfg 2",
        images: 1,
        body: |i| json!({ "n": 1, "length": 12, "steps": 4, "seed": i, "class": i % 10, "cfg": 2.0 }),
    },
    Mix {
        name: "dopri5 1e-3, l=12",
        images: 1,
        body: |i| json!({ "n": 1, "length": 12, "solver": "dopri5", "rtol": 1e-3, "atol": 1e-3, "seed": i, "class": i % 10 }),
    },
];

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn start_server(s: &Settings) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_odelt"))
        .args([
            "serve",
            "--engines",
            &s.engines,
            "--port",
            "0",
            "--max-queue",
            "1024",
        ])
        .args([
            "--threads",
            &s.threads.to_string(),
            "--max-batch",
            &s.max_batch.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start odelt serve");
    let mut first = String::new();
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    stdout.read_line(&mut first).expect("first line");
    // Keep reading, so that the server's last line finds a reader.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let base = first
        .trim()
        .strip_prefix("odelt serve: listening on ")
        .unwrap_or_else(|| panic!("odelt serve did not start: {first:?}"))
        .to_string();
    Server { child, base }
}

fn vm_hwm_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn engine_totals(client: &reqwest::blocking::Client, base: &str) -> (f64, f64) {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .and_then(|r| r.text())
        .unwrap_or_default();
    let sum = |name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    (sum("odelt_engine_calls_total{"), sum("odelt_engine_rows_total{"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn main() {
    let s = settings();
    let server = start_server(&s);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    // Warm-up: one request per length.
    for length in [4, 8, 12] {
        let body = json!({ "n": 1, "length": length, "steps": 4 });
        let _ = client
            .post(format!("{}/v1/samples", server.base))
            .json(&body)
            .send();
    }
    println!("| mix | clients | requests | images/s | p50 ms | p99 ms | errors | rows/call |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for mix in MIXES.iter().filter(|m| m.name.contains(&s.mix)) {
        for &clients in &s.clients {
            let (calls0, rows0) = engine_totals(&client, &server.base);
            let latencies = Arc::new(Mutex::new(Vec::new()));
            let errors = Arc::new(Mutex::new(0u64));
            let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let end = Instant::now() + Duration::from_secs_f64(s.seconds);
            let start = Instant::now();
            let workers: Vec<_> = (0..clients)
                .map(|_| {
                    let (latencies, errors, next) = (latencies.clone(), errors.clone(), next.clone());
                    let (client, url, body) =
                        (client.clone(), format!("{}/v1/samples", server.base), mix.body);
                    std::thread::spawn(move || {
                        while Instant::now() < end {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if i >= 100_000 {
                                break;
                            }
                            let sent = Instant::now();
                            let ok = client
                                .post(&url)
                                .json(&body(i))
                                .send()
                                .and_then(|r| r.error_for_status())
                                .and_then(|r| r.bytes())
                                .is_ok();
                            let ms = sent.elapsed().as_secs_f64() * 1e3;
                            if ok {
                                latencies.lock().expect("lock").push(ms);
                            } else {
                                *errors.lock().expect("lock") += 1;
                            }
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join().expect("client thread");
            }
            let wall = start.elapsed().as_secs_f64();
            let (calls1, rows1) = engine_totals(&client, &server.base);
            let mut latencies = latencies.lock().expect("lock").clone();
            latencies.sort_by(f64::total_cmp);
            let done = latencies.len();
            println!(
                "| {} | {clients} | {done} | {:.1} | {:.1} | {:.1} | {} | {:.1} |",
                mix.name,
                (done as u64 * mix.images) as f64 / wall,
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.99),
                errors.lock().expect("lock"),
                (rows1 - rows0) / (calls1 - calls0).max(1.0),
            );
        }
    }
    println!(
        "\nserver peak RSS (VmHWM, whole run): {:.0} MB",
        vm_hwm_mb(server.child.id())
    );
}
