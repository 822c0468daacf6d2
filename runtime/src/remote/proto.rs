//! The KServe v2 inference protocol's gRPC messages (`inference.GRPCInferenceService`, as in
//! kserve's `grpc_predict_v2.proto` and Triton's `grpc_service.proto`), derived with prost by
//! hand: only the fields odelt sends or reads, with the protocol's field numbers. Fields left
//! out (parameters, typed contents other than fp32) are skipped when decoding. Messages with
//! the same fields share one Rust type.

/// The service's methods.
pub const SERVER_READY: &str = "/inference.GRPCInferenceService/ServerReady";
pub const MODEL_READY: &str = "/inference.GRPCInferenceService/ModelReady";
pub const MODEL_METADATA: &str = "/inference.GRPCInferenceService/ModelMetadata";
pub const MODEL_INFER: &str = "/inference.GRPCInferenceService/ModelInfer";

#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerReadyRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerReadyResponse {
    #[prost(bool, tag = "1")]
    pub ready: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelReadyRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub version: String,
}

/// The same fields as `ServerReadyResponse`.
pub type ModelReadyResponse = ServerReadyResponse;

/// The same fields as `ModelReadyRequest`.
pub type ModelMetadataRequest = ModelReadyRequest;

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelMetadataResponse {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, repeated, tag = "2")]
    pub versions: Vec<String>,
    #[prost(string, tag = "3")]
    pub platform: String,
    #[prost(message, repeated, tag = "4")]
    pub inputs: Vec<TensorMetadata>,
    #[prost(message, repeated, tag = "5")]
    pub outputs: Vec<TensorMetadata>,
}

/// `ModelMetadataResponse.TensorMetadata`: a tensor's name, datatype ("FP32", "INT64", …) and
/// shape, -1 for a variable dimension.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorMetadata {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub datatype: String,
    #[prost(int64, repeated, tag = "3")]
    pub shape: Vec<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelInferRequest {
    #[prost(string, tag = "1")]
    pub model_name: String,
    #[prost(string, tag = "2")]
    pub model_version: String,
    #[prost(string, tag = "3")]
    pub id: String,
    #[prost(message, repeated, tag = "5")]
    pub inputs: Vec<InferInputTensor>,
    #[prost(message, repeated, tag = "6")]
    pub outputs: Vec<InferRequestedOutputTensor>,
    /// One entry per input, in `inputs` order: the tensor's bytes, little-endian, row-major.
    #[prost(bytes = "vec", repeated, tag = "7")]
    pub raw_input_contents: Vec<Vec<u8>>,
}

/// `ModelInferRequest.InferInputTensor`: name, datatype and shape, as `TensorMetadata` (the
/// tensor's contents travel in `raw_input_contents`).
pub type InferInputTensor = TensorMetadata;

#[derive(Clone, PartialEq, prost::Message)]
pub struct InferRequestedOutputTensor {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelInferResponse {
    #[prost(string, tag = "1")]
    pub model_name: String,
    #[prost(string, tag = "2")]
    pub model_version: String,
    #[prost(string, tag = "3")]
    pub id: String,
    #[prost(message, repeated, tag = "5")]
    pub outputs: Vec<InferOutputTensor>,
    /// One entry per output when the server answers in raw form (Triton always does).
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub raw_output_contents: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InferOutputTensor {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub datatype: String,
    #[prost(int64, repeated, tag = "3")]
    pub shape: Vec<i64>,
    #[prost(message, optional, tag = "5")]
    pub contents: Option<InferTensorContents>,
}

/// Typed tensor contents, for servers that do not answer in raw form.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InferTensorContents {
    #[prost(float, repeated, tag = "6")]
    pub fp32_contents: Vec<f32>,
}
