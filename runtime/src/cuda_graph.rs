//! CUDA graphs for ort-cuda engines (provider `cuda-graph`): with the CUDA provider option
//! `enable_cuda_graph`, ONNX Runtime captures a session's first run in a CUDA graph and replays
//! it afterwards, which saves the launch cost of every kernel. A replay reads and writes the
//! same device addresses, so the inputs and the output live in device buffers bound once
//! (IoBinding); each call copies the host inputs in and `v` out. A captured graph replays one
//! shape: a session serves one batch size.

use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, Session};
use ort::value::{Tensor, TensorRef};

/// One session's bound device buffers for one batch size.
pub(crate) struct CudaGraph {
    batch: usize,
    image: [usize; 3],
    binding: IoBinding,
    x: Tensor<f32>,
    t: Tensor<f32>,
    k: Tensor<f32>,
    y: Tensor<i64>,
    v: Tensor<f32>,
    host_v: Tensor<f32>,
}

impl CudaGraph {
    /// Allocates the device buffers of `batch` rows on `device_id` and binds them to `session`.
    pub(crate) fn new(
        session: &Session,
        device_id: i32,
        batch: usize,
        image: [usize; 3],
    ) -> ort::Result<Self> {
        let memory = MemoryInfo::new(
            AllocationDevice::CUDA,
            device_id,
            AllocatorType::Device,
            MemoryType::Default,
        )?;
        let device = Allocator::new(session, memory)?;
        let [c, h, w] = image;
        let x = Tensor::<f32>::new(&device, [batch, c, h, w])?;
        let t = Tensor::<f32>::new(&device, [batch])?;
        let k = Tensor::<f32>::new(&device, [batch])?;
        let y = Tensor::<i64>::new(&device, [batch])?;
        let mut v = Tensor::<f32>::new(&device, [batch, c, h, w])?;
        let host_v = Tensor::<f32>::new(&Allocator::default(), [batch, c, h, w])?;
        let mut binding = session.create_binding()?;
        binding.bind_input("x", &x)?;
        binding.bind_input("t", &t)?;
        binding.bind_input("k", &k)?;
        binding.bind_input("y", &y)?;
        binding.bind_output("v", &mut v)?;
        Ok(Self {
            batch,
            image,
            binding,
            x,
            t,
            k,
            y,
            v,
            host_v,
        })
    }

    pub(crate) fn batch(&self) -> usize {
        self.batch
    }

    /// Copies the inputs to the device, replays the graph (capturing it the first time) and
    /// copies `v` into `out`.
    pub(crate) fn run(
        &mut self,
        session: &mut Session,
        x: &[f32],
        t: &[f32],
        k: &[f32],
        y: &[i64],
        out: &mut [f32],
    ) -> ort::Result<()> {
        let b = self.batch;
        let [c, h, w] = self.image;
        TensorRef::from_array_view(([b, c, h, w], x))?.copy_into(&mut self.x)?;
        TensorRef::from_array_view(([b], t))?.copy_into(&mut self.t)?;
        TensorRef::from_array_view(([b], k))?.copy_into(&mut self.k)?;
        TensorRef::from_array_view(([b], y))?.copy_into(&mut self.y)?;
        drop(session.run_binding(&self.binding)?);
        self.v.copy_into(&mut self.host_v)?;
        let (_, v) = self.host_v.extract_tensor();
        out.copy_from_slice(v);
        Ok(())
    }
}
