//! The `odelt serve` request parser: a `POST /v1/samples` body, parsed and planned against an
//! export (the runtime's `linear` test fixture) and the server's limits, as the handler does
//! before anything is queued.
use std::time::Duration;

use odelt::serve::api::SampleBody;
use odelt::serve::Limits;
use odelt_runtime::{Runtime, RuntimeOptions};

fn main() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../runtime/tests/data/linear");
    let runtime =
        Runtime::open(dir, RuntimeOptions::default()).expect("open the fixture (is ORT_DYLIB_PATH set?)");
    let limits = Limits {
        max_n: 64,
        max_steps: 1024,
        deadline: Duration::from_secs(60),
        max_queue: 64,
        max_batch: 64,
        body_limit: 64 * 1024,
        client_timeout: Duration::from_secs(10),
    };
    // A panic fails the input either way; the runtime is only read.
    let runtime = std::panic::AssertUnwindSafe(runtime);
    afl::fuzz!(|data: &[u8]| {
        if let Ok(body) = SampleBody::parse(data) {
            let _ = body.plan(&runtime, &limits);
        }
    });
}
