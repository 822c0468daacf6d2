//! One Algorithm-1 training step (forward, EMA targets, backward, AdamW, EMA update) on the
//! tiny and fmnist presets, batch 64. `cargo bench --bench train_step`; samples/s = 64 / time.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use odelt::train::{TrainConfig, Trainer};
use odelt_runtime::ModelConfig;
use tch::{Device, Kind, Tensor};

fn train_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step");
    group.sample_size(10);
    let batch = 64;
    for (name, config) in [("tiny", ModelConfig::tiny()), ("fmnist", ModelConfig::fmnist())] {
        let side = config.input_size as i64;
        let x1 = Tensor::rand(
            [batch, config.in_channels as i64, side, side],
            (Kind::Float, Device::Cpu),
        ) * 2.0
            - 1.0;
        let y = Tensor::randint(config.num_classes as i64, [batch], (Kind::Int64, Device::Cpu));
        let mut trainer = Trainer::new(config, TrainConfig::default(), 1_000_000, tch::Device::Cpu);
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(name, |b| b.iter(|| trainer.train_step(&x1, &y)));
    }
    group.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);
