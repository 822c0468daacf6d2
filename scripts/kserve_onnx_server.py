#!/usr/bin/env python3
"""Serves a Triton model repository written by `odelt triton` over the KServe v2 protocol.

Each `odelt_l{l}` model runs its ONNX graph with onnxruntime on the CPU inside the `kserve`
package's ModelServer (v2 gRPC and REST). The model's interface is read from its
`config.pbtxt` with Triton's own schema, as Triton reads it: metadata reports the batch
dimension as -1 in front of `dims`, and inputs with a `reshape` are reshaped before the graph
runs. No dynamic batching: requests run one at a time, in arrival order.

Used by tests/triton.rs and the requests/s measurement in docs/triton.md; needs the venv of
`scripts/setup.sh --kserve`.

    python scripts/kserve_onnx_server.py --repository REPO --grpc-port 8001 --http-port 8000 [--host 127.0.0.1]
"""

import argparse
import importlib.util
import os
import sys


def model_config_module():
    """tritonclient's model_config_pb2, loaded on its own: importing tritonclient.grpc would
    register the v2 service messages a second time next to kserve's and fail."""
    import tritonclient

    path = os.path.join(os.path.dirname(tritonclient.__file__), "grpc", "model_config_pb2.py")
    spec = importlib.util.spec_from_file_location("model_config_pb2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def listen_only_on(host):
    """kserve 0.21 binds both servers to every interface; keep them on `host`."""
    import grpc.aio._server
    import uvicorn

    add_port = grpc.aio._server.Server.add_insecure_port
    grpc.aio._server.Server.add_insecure_port = lambda self, address: add_port(
        self, address.replace("[::]", host)
    )
    config_init = uvicorn.Config.__init__

    def init(self, *args, **kwargs):
        kwargs["host"] = host
        config_init(self, *args, **kwargs)

    uvicorn.Config.__init__ = init


def read_config(model_dir, pb2):
    from google.protobuf import text_format

    with open(os.path.join(model_dir, "config.pbtxt")) as f:
        return text_format.Parse(f.read(), pb2.ModelConfig())


def graph_path(model_dir, config):
    """The ONNX file Triton's onnxruntime backend would load for version 1."""
    name = config.default_model_filename or "model.onnx"
    path = os.path.join(model_dir, "1", name)
    return os.path.join(path, "model.onnx") if os.path.isdir(path) else path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repository", required=True, help="folder written by `odelt triton`")
    parser.add_argument("--host", default="127.0.0.1", help="address of both servers")
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads per model")
    ours, rest = parser.parse_known_args()
    # kserve parses sys.argv when imported; give it only what it understands.
    sys.argv = [sys.argv[0]] + rest

    pb2 = model_config_module()
    listen_only_on(ours.host)
    import numpy as np
    import onnxruntime as ort
    import kserve
    from kserve.protocol.infer_type import InferOutput, InferResponse

    datatype = {
        pb2.TYPE_FP32: ("FP32", np.float32),
        pb2.TYPE_FP16: ("FP16", np.float16),
        pb2.TYPE_INT64: ("INT64", np.int64),
    }

    class OnnxModel(kserve.Model):
        def __init__(self, model_dir):
            self.config = read_config(model_dir, pb2)
            super().__init__(self.config.name)
            self.dir = model_dir
            self.session = None

        def load(self):
            options = ort.SessionOptions()
            options.intra_op_num_threads = ours.threads
            self.session = ort.InferenceSession(
                graph_path(self.dir, self.config), options, providers=["CPUExecutionProvider"]
            )
            self.ready = True
            return self.ready

        def tensors(self, tensors):
            batch = [-1] if self.config.max_batch_size > 0 else []
            return [
                {"name": t.name, "datatype": datatype[t.data_type][0], "shape": batch + list(t.dims)}
                for t in tensors
            ]

        def get_input_types(self):
            return self.tensors(self.config.input)

        def get_output_types(self):
            return self.tensors(self.config.output)

        def predict(self, payload, headers=None, response_headers=None):
            feeds = {}
            rows = None
            for spec in self.config.input:
                tensor = payload.get_input_by_name(spec.name)
                if tensor is None:
                    raise kserve.errors.InvalidInput(f"missing input '{spec.name}'")
                array = tensor.as_numpy()
                if list(array.shape[1:]) != list(spec.dims) or array.dtype != datatype[spec.data_type][1]:
                    raise kserve.errors.InvalidInput(
                        f"input '{spec.name}': {array.dtype} {list(array.shape)}, expected "
                        f"{datatype[spec.data_type][0]} [-1, {', '.join(map(str, spec.dims))}]"
                    )
                if rows is None:
                    rows = array.shape[0]
                if array.shape[0] != rows or rows > self.config.max_batch_size:
                    raise kserve.errors.InvalidInput(
                        f"input '{spec.name}': batch {array.shape[0]} (max {self.config.max_batch_size})"
                    )
                if spec.HasField("reshape"):
                    array = array.reshape([rows] + list(spec.reshape.shape))
                feeds[spec.name] = array
            names = [o.name for o in self.config.output]
            results = self.session.run(names, feeds)
            outputs = [
                InferOutput(name=name, shape=list(value.shape), datatype=datatype[spec.data_type][0], data=value)
                for name, value, spec in zip(names, results, self.config.output)
            ]
            return InferResponse(response_id=payload.id, model_name=self.name, infer_outputs=outputs)

    models = []
    for entry in sorted(os.listdir(ours.repository)):
        model_dir = os.path.join(ours.repository, entry)
        if os.path.isfile(os.path.join(model_dir, "config.pbtxt")):
            model = OnnxModel(model_dir)
            model.load()
            models.append(model)
    if not models:
        sys.exit(f"{ours.repository}: no model folder with a config.pbtxt")
    kserve.ModelServer(grpc_port=ours.grpc_port, http_port=ours.http_port, enable_latency_logging=False).start(models)


if __name__ == "__main__":
    main()
