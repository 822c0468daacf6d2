//! The remote engine: each evaluation is a KServe v2 gRPC `ModelInfer` to the model
//! `odelt_l{l}` on Triton Inference Server (or any server of the v2 protocol) serving the
//! repository `odelt triton` wrote; the manifest, the noise and the solver loop stay here
//! (docs/triton.md).
//!
//! One HTTP/2 connection per runtime (a tonic `Channel`, reconnected when lost), driven by a
//! one-thread tokio runtime inside the client: the runtime's callers stay synchronous and may
//! call from any thread, async ones included. At open: `ServerReady`, then `ModelReady` and
//! `ModelMetadata` for every exported length, checked against the manifest. Every call has a
//! timeout; a call the server answers UNAVAILABLE (or that cannot reach it) is retried a few
//! times with doubling waits. Tensors travel as `raw_input_contents` / `raw_output_contents`.

mod proto;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::uri::PathAndQuery;
use odelt_format::manifest::Manifest;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::error::{invalid, Error, Result};
use crate::length_engine::LengthEngine;
use proto::*;

/// The Triton model that serves length `length`.
pub fn model_name(length: u32) -> String {
    format!("odelt_l{length}")
}

/// Where the engines run and how patiently they are called.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteOptions {
    /// `grpc://HOST:PORT`: the server's gRPC endpoint (Triton's default port is 8001).
    pub endpoint: String,
    /// Limit of each call (and of connecting).
    pub timeout: Duration,
    /// Retries of a call answered UNAVAILABLE, or that cannot reach the server.
    pub retries: u32,
    /// Wait before the first retry; each further retry waits twice as long.
    pub backoff: Duration,
}

impl RemoteOptions {
    /// `endpoint` with a 30 s timeout and 3 retries from 100 ms.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            timeout: Duration::from_secs(30),
            retries: 3,
            backoff: Duration::from_millis(100),
        }
    }
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    #[must_use]
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }
}

/// Messages past tonic's 4 MiB default: a batch of DiT-XL latents is larger.
const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// The connection and its call policy; cheap to clone into a call's future.
#[derive(Clone)]
struct Connection {
    endpoint: String,
    channel: Channel,
    options: RemoteOptions,
}

impl Connection {
    /// One unary call with the timeout, retried on UNAVAILABLE.
    async fn call<Req, Resp>(self, method: &'static str, request: Req) -> Result<Resp, Status>
    where
        Req: prost::Message + Clone + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut wait = self.options.backoff;
        let mut attempt = 0;
        loop {
            let mut grpc = tonic::client::Grpc::new(self.channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
            let request = request.clone();
            let once = async move {
                grpc.ready()
                    .await
                    .map_err(|e| Status::unavailable(format!("not connected: {e}")))?;
                let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
                grpc.unary(
                    tonic::Request::new(request),
                    PathAndQuery::from_static(method),
                    codec,
                )
                .await
            };
            let result = tokio::time::timeout(self.options.timeout, once)
                .await
                .unwrap_or_else(|_| {
                    Err(Status::deadline_exceeded(format!(
                        "no answer within {} ms",
                        self.options.timeout.as_millis()
                    )))
                });
            match result {
                Err(status) if is_unavailable(&status) && attempt < self.options.retries => {
                    attempt += 1;
                    tracing::warn!(
                        "{}: {} unavailable ({}); retry {attempt} of {} in {} ms",
                        self.endpoint,
                        method.rsplit('/').next().unwrap_or(method),
                        describe(&status),
                        self.options.retries,
                        wait.as_millis()
                    );
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                other => return other.map(tonic::Response::into_inner),
            }
        }
    }
}

/// UNAVAILABLE, or a connection lost during the call (tonic reports it as UNKNOWN with the
/// transport error as its source). Inference is idempotent: such a call is safe to repeat.
fn is_unavailable(status: &Status) -> bool {
    status.code() == Code::Unavailable
        || (status.code() == Code::Unknown
            && std::error::Error::source(status).is_some_and(|s| s.is::<tonic::transport::Error>()))
}

/// The status's message and the causes under it, on one line.
fn describe(status: &Status) -> String {
    let mut parts = vec![status.message().to_string()];
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ").split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A v2 inference server holding one model per exported length.
pub(crate) struct RemoteClient {
    connection: Connection,
    /// Always `Some` until dropped (see `Drop`).
    tokio: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    /// Image shape [C, H, W] and floats per image.
    image: [i64; 3],
    numel: usize,
    /// Per length: the rank (1 or 2) the server declares for t, k and y.
    scalar_ranks: std::collections::HashMap<u32, [usize; 3]>,
}

/// `grpc://HOST:PORT` → the HTTP/2 URI tonic connects to.
fn endpoint_uri(endpoint: &str) -> Result<String> {
    let Some(authority) = endpoint.strip_prefix("grpc://") else {
        return invalid!(
            "--remote {endpoint}: expected grpc://HOST:PORT (plain gRPC; for TLS put a terminating proxy in front)"
        );
    };
    let authority = authority.trim_end_matches('/');
    let port_ok = authority
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !port_ok {
        return invalid!("--remote {endpoint}: expected grpc://HOST:PORT with a port number");
    }
    Ok(format!("http://{authority}"))
}

/// One line for a failed call: the endpoint, what was asked, the gRPC status.
fn failed(endpoint: &str, what: &str, status: &Status) -> Error {
    let code = if is_unavailable(status) {
        "server unavailable".to_string()
    } else if status.code() == Code::DeadlineExceeded {
        "timed out".to_string()
    } else {
        format!("{:?}", status.code())
    };
    Error::Remote(format!("{endpoint}: {what}: {code}: {}", describe(status)))
}

impl RemoteClient {
    /// Connects and checks that the server and every length's model are ready and take the
    /// manifest's interface (docs/DESIGN.md §6).
    pub(crate) fn connect(options: &RemoteOptions, manifest: &Manifest) -> Result<Self> {
        let uri = endpoint_uri(&options.endpoint)?;
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("odelt-remote")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("starting the remote client's tokio runtime: {e}")))?;
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|e| Error::InvalidArgument(format!("--remote {}: {e}", options.endpoint)))?
            .connect_timeout(options.timeout)
            .tcp_nodelay(true);
        // Connects on first use (and again after the connection is lost).
        let channel = {
            let _guard = tokio.enter();
            endpoint.connect_lazy()
        };
        let handle = tokio.handle().clone();
        let model = &manifest.model;
        let mut client = Self {
            connection: Connection {
                endpoint: options.endpoint.clone(),
                channel,
                options: options.clone(),
            },
            tokio: Some(tokio),
            handle,
            image: [
                model.in_channels as i64,
                model.input_size as i64,
                model.input_size as i64,
            ],
            numel: model.image_numel(),
            scalar_ranks: Default::default(),
        };
        let ready: ServerReadyResponse = client.call(SERVER_READY, ServerReadyRequest {}, "ServerReady")?;
        if !ready.ready {
            return Err(Error::Remote(format!(
                "{}: the server is not ready",
                options.endpoint
            )));
        }
        for entry in &manifest.lengths {
            let ranks = client.check_model(entry.length)?;
            client.scalar_ranks.insert(entry.length, ranks);
        }
        tracing::info!(
            "{}: server ready with models for lengths {}",
            options.endpoint,
            odelt_format::join(&manifest.lengths.iter().map(|e| e.length).collect::<Vec<_>>())
        );
        Ok(client)
    }

    /// Runs `future` on the client's runtime and waits for it on this thread.
    fn block<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> Result<T> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = sender.send(future.await);
        });
        receiver
            .recv()
            .map_err(|_| Error::Internal("the remote client's runtime dropped a call".into()))
    }

    fn call<Req, Resp>(&self, method: &'static str, request: Req, what: &str) -> Result<Resp>
    where
        Req: prost::Message + Clone + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let connection = self.connection.clone();
        self.block(connection.call(method, request))?
            .map_err(|status| failed(&self.connection.endpoint, what, &status))
    }

    /// `ModelReady` and `ModelMetadata` of length `length`'s model against the manifest.
    fn check_model(&self, length: u32) -> Result<[usize; 3]> {
        let name = model_name(length);
        let endpoint = &self.connection.endpoint;
        let ready: ModelReadyResponse = self.call(
            MODEL_READY,
            ModelReadyRequest {
                name: name.clone(),
                version: String::new(),
            },
            &format!("ModelReady {name}"),
        )?;
        if !ready.ready {
            return Err(Error::Remote(format!(
                "{endpoint}: model {name} (length {length}) is not ready; serve the repository \
                 written by `odelt triton` for this export"
            )));
        }
        let metadata: ModelMetadataResponse = self.call(
            MODEL_METADATA,
            ModelMetadataRequest {
                name: name.clone(),
                version: String::new(),
            },
            &format!("ModelMetadata {name}"),
        )?;
        check_metadata(&metadata, self.image).map_err(|message| Error::Model {
            path: format!("{endpoint}/{name}"),
            message,
        })
    }

    /// The engine of an exported length (checked at open).
    pub(crate) fn engine(self: &Arc<Self>, length: u32) -> Result<Arc<RemoteEngine>> {
        let scalar_ranks = *self
            .scalar_ranks
            .get(&length)
            .ok_or_else(|| Error::InvalidArgument(format!("length {length} is not exported")))?;
        Ok(Arc::new(RemoteEngine {
            client: self.clone(),
            length,
            name: model_name(length),
            scalar_ranks,
        }))
    }
}

impl Drop for RemoteClient {
    /// Without blocking: the last `Runtime` may go away on an async thread (e.g. `odelt serve`
    /// shutting down), where dropping a tokio runtime the usual way panics.
    fn drop(&mut self) {
        if let Some(tokio) = self.tokio.take() {
            tokio.shutdown_background();
        }
    }
}

/// What the server must declare for the manifest's interface: x and v [-1, C, H, W] in FP32;
/// t, k (FP32) and y (INT64) as [-1] (the graph's own shape) or [-1, 1] (Triton's, with a
/// reshape). Returns the rank the server declares for t, k and y; `Err` names the first field
/// that differs.
fn check_metadata(meta: &ModelMetadataResponse, image: [i64; 3]) -> std::result::Result<[usize; 3], String> {
    let full = [-1, image[0], image[1], image[2]];
    let expect = |kind: &str, tensors: &[TensorMetadata], name: &str, datatype: &str, shapes: &[&[i64]]| {
        let Some(t) = tensors.iter().find(|t| t.name == name) else {
            let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
            return Err(format!(
                "the server's model has no {kind} '{name}' ({kind}s: {})",
                names.join(", ")
            ));
        };
        if t.datatype != datatype {
            return Err(format!(
                "{kind} '{name}' datatype is {} on the server, the manifest needs {datatype}",
                t.datatype
            ));
        }
        if !shapes.iter().any(|s| t.shape == *s) {
            return Err(format!(
                "{kind} '{name}' shape is {:?} on the server, the manifest needs {:?}",
                t.shape, shapes[0]
            ));
        }
        Ok(t.shape.len())
    };
    expect("input", &meta.inputs, "x", "FP32", &[&full])?;
    let mut ranks = [0; 3];
    for (slot, (name, datatype)) in [("t", "FP32"), ("k", "FP32"), ("y", "INT64")]
        .into_iter()
        .enumerate()
    {
        ranks[slot] = expect("input", &meta.inputs, name, datatype, &[&[-1, 1], &[-1]])?;
    }
    if let Some(extra) = meta
        .inputs
        .iter()
        .find(|t| !["x", "t", "k", "y"].contains(&t.name.as_str()))
    {
        return Err(format!(
            "the server's model has an input '{}' that odelt does not send",
            extra.name
        ));
    }
    expect("output", &meta.outputs, "v", "FP32", &[&full])?;
    Ok(ranks)
}

/// One exported length on the server: `v = model(x, t, k, y)`, one `ModelInfer` per call.
pub struct RemoteEngine {
    client: Arc<RemoteClient>,
    length: u32,
    name: String,
    scalar_ranks: [usize; 3],
}

impl std::fmt::Debug for RemoteEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteEngine")
            .field("endpoint", &self.client.connection.endpoint)
            .field("model", &self.name)
            .finish()
    }
}

fn raw<T: Copy, const N: usize>(values: &[T], bytes: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * N);
    for v in values {
        out.extend_from_slice(&bytes(*v));
    }
    out
}

impl RemoteEngine {
    fn request(&self, x: &[f32], t: &[f32], k: &[f32], y: &[i64]) -> ModelInferRequest {
        let batch = y.len() as i64;
        let [c, h, w] = self.client.image;
        // A per-row scalar as the server declared it: [batch] or [batch, 1].
        let scalar = |slot: usize| {
            if self.scalar_ranks[slot] == 2 {
                vec![batch, 1]
            } else {
                vec![batch]
            }
        };
        let input = |name: &str, datatype: &str, shape: Vec<i64>| InferInputTensor {
            name: name.into(),
            datatype: datatype.into(),
            shape,
        };
        ModelInferRequest {
            model_name: self.name.clone(),
            model_version: String::new(),
            id: String::new(),
            inputs: vec![
                input("x", "FP32", vec![batch, c, h, w]),
                input("t", "FP32", scalar(0)),
                input("k", "FP32", scalar(1)),
                input("y", "INT64", scalar(2)),
            ],
            outputs: vec![InferRequestedOutputTensor { name: "v".into() }],
            raw_input_contents: vec![
                raw(x, f32::to_le_bytes),
                raw(t, f32::to_le_bytes),
                raw(k, f32::to_le_bytes),
                raw(y, i64::to_le_bytes),
            ],
        }
    }
}

impl LengthEngine for RemoteEngine {
    fn length(&self) -> u32 {
        self.length
    }

    fn image_numel(&self) -> usize {
        self.client.numel
    }

    fn run(&self, x: &[f32], t: &[f32], k: &[f32], y: &[i64], out: &mut [f32]) -> Result<Duration> {
        let start = Instant::now();
        let request = self.request(x, t, k, y);
        let response: ModelInferResponse =
            self.client
                .call(MODEL_INFER, request, &format!("ModelInfer {}", self.name))?;
        let bad = |message: String| {
            Error::Remote(format!(
                "{}: ModelInfer {}: {message}",
                self.client.connection.endpoint, self.name
            ))
        };
        let Some(index) = response.outputs.iter().position(|o| o.name == "v") else {
            return Err(bad("the answer has no output 'v'".into()));
        };
        if let Some(bytes) = response.raw_output_contents.get(index) {
            if bytes.len() != out.len() * 4 {
                return Err(bad(format!(
                    "output 'v' has {} bytes, expected {} floats",
                    bytes.len(),
                    out.len()
                )));
            }
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        } else {
            let floats = response.outputs[index]
                .contents
                .as_ref()
                .map(|c| c.fp32_contents.as_slice())
                .unwrap_or_default();
            if floats.len() != out.len() {
                return Err(bad(format!(
                    "output 'v' has {} floats, expected {}",
                    floats.len(),
                    out.len()
                )));
            }
            out.copy_from_slice(floats);
        }
        Ok(start.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_grpc_host_port() {
        assert_eq!(
            endpoint_uri("grpc://127.0.0.1:8001").expect("valid"),
            "http://127.0.0.1:8001"
        );
        assert_eq!(
            endpoint_uri("grpc://triton.example:8001/").expect("valid"),
            "http://triton.example:8001"
        );
        for bad in [
            "http://h:1",
            "grpc://h",
            "grpc://:80",
            "grpc://h:x",
            "h:8001",
            "grpcs://h:1",
        ] {
            let err = endpoint_uri(bad).expect_err("refused");
            assert!(err.is_input() && err.to_string().contains(bad), "{err}");
        }
    }

    fn tensor(name: &str, datatype: &str, shape: &[i64]) -> TensorMetadata {
        TensorMetadata {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
        }
    }

    fn triton_metadata() -> ModelMetadataResponse {
        ModelMetadataResponse {
            name: "odelt_l4".into(),
            inputs: vec![
                tensor("x", "FP32", &[-1, 1, 8, 8]),
                tensor("t", "FP32", &[-1, 1]),
                tensor("k", "FP32", &[-1, 1]),
                tensor("y", "INT64", &[-1, 1]),
            ],
            outputs: vec![tensor("v", "FP32", &[-1, 1, 8, 8])],
            ..Default::default()
        }
    }

    #[test]
    fn metadata_mismatches_name_the_field() {
        assert_eq!(check_metadata(&triton_metadata(), [1, 8, 8]), Ok([2, 2, 2]));
        let err = check_metadata(&triton_metadata(), [3, 8, 8]).expect_err("mismatch");
        assert!(err.starts_with("input 'x' shape is [-1, 1, 8, 8]"), "{err}");
        let mut meta = triton_metadata();
        meta.inputs[3].datatype = "INT32".into();
        let err = check_metadata(&meta, [1, 8, 8]).expect_err("mismatch");
        assert!(err.starts_with("input 'y' datatype is INT32"), "{err}");
        let mut meta = triton_metadata();
        meta.outputs[0].name = "out".into();
        let err = check_metadata(&meta, [1, 8, 8]).expect_err("mismatch");
        assert!(err.contains("no output 'v'"), "{err}");
    }
}
