//! The tch model against docs/DESIGN.md §3, Algorithm 1's loss terms, checkpoints and `odelt train`.

mod common;

use std::path::Path;

use common::{assert_bad_input, odelt, odelt_words, ok, path_arg, random_model, train_synthetic, words};
use odelt::model::{Dit, Lengths};
use odelt::train::checkpoint::{self, load_weights, NamedTensors};
use odelt::train::{TrainConfig, Trainer};
use odelt_runtime::ModelConfig;
use tch::{nn, Device, Kind, Tensor};

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

fn inputs(config: &ModelConfig, b: i64, seed: i64) -> (Tensor, Tensor, Tensor, Tensor) {
    tch::manual_seed(seed);
    let s = config.input_size as i64;
    let x = Tensor::randn([b, config.in_channels as i64, s, s], (Kind::Float, Device::Cpu));
    let t = Tensor::rand([b], (Kind::Float, Device::Cpu));
    let k = Tensor::from_slice(&[0.0f32, 3.0, 7.0, 2.0][..b as usize]);
    // Includes the null label (num_classes).
    let y = Tensor::from_slice(&[0i64, 4, 2, 1][..b as usize]);
    (x, t, k, y)
}

/// docs/DESIGN.md §3 written out again from raw tensors by name, with explicit softmax attention,
/// LayerNorm and GELU formulas: an independent check of the model code.
fn reference_forward(
    w: &std::collections::HashMap<String, Tensor>,
    c: &ModelConfig,
    x: &Tensor,
    t: &Tensor,
    k: &Tensor,
    y: &Tensor,
    l: usize,
) -> Tensor {
    let p = |n: &str| w.get(n).unwrap_or_else(|| panic!("missing {n}")).shallow_clone();
    let lin = |z: &Tensor, n: &str| z.matmul(&p(&format!("{n}.weight")).tr()) + p(&format!("{n}.bias"));
    let (b, d, pch) = (x.size()[0], c.hidden_size as i64, c.patch_size as i64);
    let side = (c.input_size / c.patch_size) as i64;
    // Patches by explicit reshaping instead of a convolution.
    let patches = x
        .view([b, c.in_channels as i64, side, pch, side, pch])
        .permute([0, 2, 4, 1, 3, 5])
        .reshape([b, side * side, -1]);
    let conv_w = p("x_embedder.proj.weight").reshape([d, -1]);
    let mut pos = vec![0f32; (side * side * d) as usize];
    let q = (d / 4) as usize;
    for row in 0..side as usize {
        for col in 0..side as usize {
            let base = (row * side as usize + col) * d as usize;
            for j in 0..q {
                let om = 1.0 / 10000f64.powf(j as f64 / q as f64);
                pos[base + j] = (col as f64 * om).sin() as f32;
                pos[base + q + j] = (col as f64 * om).cos() as f32;
                pos[base + 2 * q + j] = (row as f64 * om).sin() as f32;
                pos[base + 3 * q + j] = (row as f64 * om).cos() as f32;
            }
        }
    }
    let h = patches.matmul(&conv_w.tr())
        + p("x_embedder.proj.bias")
        + Tensor::from_slice(&pos).view([1, side * side, d]);
    let sinus = |s: &Tensor| {
        let f: Vec<f32> = (0..128)
            .map(|j| (-(10000f64.ln()) * j as f64 / 128.0).exp() as f32)
            .collect();
        let a = s.unsqueeze(1) * Tensor::from_slice(&f).unsqueeze(0);
        Tensor::cat(&[a.cos(), a.sin()], 1)
    };
    let silu = |z: &Tensor| z * z.sigmoid();
    let embed = |s: &Tensor, n: &str| {
        lin(
            &silu(&lin(&sinus(s), &format!("{n}.mlp.0"))),
            &format!("{n}.mlp.2"),
        )
    };
    let cond = embed(t, "t_embedder")
        + embed(k, "d_embedder")
        + p("y_embedder.embedding_table.weight").index_select(0, y);
    let c_l = &cond + p("l_embedder.embedding_table.weight").get(l as i64).unsqueeze(0);
    let ln = |z: &Tensor| {
        let mu = z.mean_dim(-1, true, Kind::Float);
        let var = (z - &mu).square().mean_dim(-1, true, Kind::Float);
        (z - mu) / (var + 1e-6).sqrt()
    };
    let md = |z: &Tensor, sh: &Tensor, sc: &Tensor| z * (sc.unsqueeze(1) + 1.0) + sh.unsqueeze(1);
    let gelu = |z: &Tensor| {
        z * 0.5
            * (1.0 + ((z + z.pow_tensor_scalar(3) * 0.044715) * (2.0 / std::f64::consts::PI).sqrt()).tanh())
    };
    let heads = c.num_heads as i64;
    let hd = d / heads;
    let n = side * side;
    let mut r = h;
    let mut v = r.zeros_like();
    for i in 0..l {
        let bn = format!("blocks.{i}");
        let m = lin(&silu(&c_l), &format!("{bn}.adaLN_modulation.1")).chunk(6, 1);
        let z = md(&ln(&r), &m[0], &m[1]);
        let qkv = lin(&z, &format!("{bn}.attn.qkv"));
        let split = |j: i64| qkv.narrow(2, j * d, d).view([b, n, heads, hd]).transpose(1, 2);
        let att =
            (split(0).matmul(&split(1).transpose(-1, -2)) / (hd as f64).sqrt()).softmax(-1, Kind::Float);
        let o = att.matmul(&split(2)).transpose(1, 2).reshape([b, n, d]);
        let x1 = &r + m[2].unsqueeze(1) * lin(&o, &format!("{bn}.attn.proj"));
        let mlp = lin(
            &gelu(&lin(&md(&ln(&x1), &m[3], &m[4]), &format!("{bn}.mlp.fc1"))),
            &format!("{bn}.mlp.fc2"),
        );
        let out = &x1 + m[5].unsqueeze(1) * mlp;
        if (i + 1) % c.group_size as usize == 0 {
            r = &r + &out;
            v = &v + &out;
        } else {
            r = out;
        }
    }
    let m = lin(&silu(&cond), "final_layer.adaLN_modulation.1").chunk(2, 1);
    let out = lin(&md(&ln(&v), &m[0], &m[1]), "final_layer.linear");
    out.view([b, side, side, pch, pch, c.in_channels as i64])
        .permute([0, 5, 1, 3, 2, 4])
        .reshape([b, c.in_channels as i64, side * pch, side * pch])
}

#[test]
fn forward_matches_the_design_reference_at_every_length() {
    let config = ModelConfig::tiny();
    let (vs, model) = random_model(&config, 1);
    let weights = vs.variables();
    let (x, t, k, y) = inputs(&config, 3, 2);
    for l in config.valid_lengths() {
        let ours = model.forward(&x, &t, &k, &y, Lengths::Uniform(l));
        let reference = reference_forward(&weights, &config, &x, &t, &k, &y, l as usize);
        let scale = reference.abs().max().double_value(&[]);
        let err = max_abs(&ours, &reference);
        assert!(scale > 1e-2, "output too small to test: {scale}");
        assert!(
            err <= 1e-5 * scale,
            "length {l}: max abs error {err} vs max |v| {scale}"
        );
    }
}

#[test]
fn per_sample_lengths_equal_truncated_forwards() {
    let mut config = ModelConfig::tiny();
    config.depth = 6;
    let (_vs, model) = random_model(&config, 3);
    let (x, t, k, y) = inputs(&config, 3, 4);
    let lengths = Tensor::from_slice(&[6i64, 2, 4]);
    let mixed = model.forward(&x, &t, &k, &y, Lengths::PerSample(&lengths));
    for (i, l) in [6u32, 2, 4].into_iter().enumerate() {
        let one = |z: &Tensor| z.narrow(0, i as i64, 1);
        let alone = model.forward(&one(&x), &one(&t), &one(&k), &one(&y), Lengths::Uniform(l));
        let scale = alone.abs().max().double_value(&[]);
        let err = max_abs(&one(&mixed), &alone);
        assert!(
            err <= 1e-5 * scale,
            "sample {i} at length {l}: {err} vs max|v| {scale}"
        );
    }
}

#[test]
fn parameter_names_and_shapes_follow_the_design() {
    let config = ModelConfig::tiny();
    let (vs, _) = random_model(&config, 0);
    let vars = vs.variables();
    let shape = |n: &str| vars.get(n).unwrap_or_else(|| panic!("missing {n}")).size();
    assert_eq!(shape("x_embedder.proj.weight"), [32, 1, 2, 2]);
    assert_eq!(shape("pos_embed"), [1, 16, 32]);
    assert_eq!(shape("t_embedder.mlp.0.weight"), [32, 256]);
    assert_eq!(shape("d_embedder.mlp.2.weight"), [32, 32]);
    assert_eq!(shape("y_embedder.embedding_table.weight"), [5, 32]);
    assert_eq!(shape("l_embedder.embedding_table.weight"), [5, 32]);
    assert_eq!(shape("blocks.3.attn.qkv.weight"), [96, 32]);
    assert_eq!(shape("blocks.0.mlp.fc1.weight"), [128, 32]);
    assert_eq!(shape("blocks.0.adaLN_modulation.1.weight"), [192, 32]);
    assert_eq!(shape("final_layer.adaLN_modulation.1.weight"), [64, 32]);
    assert_eq!(shape("final_layer.linear.weight"), [4, 32]);
    assert!(!vars["pos_embed"].requires_grad(), "pos_embed is fixed");
    // 2 per linear/conv + tables + pos_embed.
    assert_eq!(vars.len(), 4 * 10 + 2 + 8 + 2 + 4 + 1);
}

#[test]
fn every_preset_has_exactly_the_exporters_tensors() {
    // The contract of docs/DESIGN.md §3, one list in odelt-format: the tch model's variables
    // must be exactly the tensors export reads, with the same shapes, for every preset.
    for name in ModelConfig::PRESETS {
        let config = ModelConfig::preset(name).expect("preset");
        let vs = nn::VarStore::new(Device::Cpu);
        let _model = Dit::new(&vs.root(), &config);
        let mut have: Vec<(String, Vec<usize>)> = vs
            .variables()
            .into_iter()
            .map(|(n, t)| (n, t.size().iter().map(|&d| d as usize).collect()))
            .collect();
        have.sort();
        let mut want = odelt_format::tensors::expected_tensors(&config);
        want.sort();
        assert_eq!(have, want, "preset {name}");
    }
}

/// A trainer whose θ⁻ follows θ at once (EMA rate 0) after a few large steps, so the EMA
/// targets are far from zero.
fn warmed_trainer() -> (Trainer, Tensor, Tensor) {
    let config = ModelConfig::tiny();
    let train = TrainConfig {
        ema_decay: 0.0,
        lr: 3e-2,
        warmup_steps: 0,
        batch_size: 16,
        ..Default::default()
    };
    let mut trainer = Trainer::new(config.clone(), train, 100, tch::Device::Cpu);
    let x1 = Tensor::rand([16, 1, 8, 8], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let y = Tensor::randint(4, [16], (Kind::Int64, Device::Cpu));
    for _ in 0..3 {
        trainer.train_step(&x1, &y);
    }
    (trainer, x1, y)
}

#[test]
fn each_loss_term_builds_its_target_as_specified() {
    let (trainer, x1, y) = warmed_trainer();
    let config = trainer.model_config.clone();
    let batch = trainer.make_batch(&x1, &y);
    let (tc, lc, b) = (batch.tc as i64, batch.lc as i64, 16i64);
    assert_eq!((tc, lc), (2, 2));
    let rows = |z: &Tensor, s: i64, n: i64| z.narrow(0, s, n);
    let ema = trainer.ema_model();
    tch::no_grad(|| {
        // Time consistency: level k0 < log2 T_max, t on the grid of 2d, two half steps of θ⁻.
        let k0 = rows(&batch.k, 0, tc);
        assert!(k0.lt(config.flow_level() as f64).all().int64_value(&[]) == 1);
        let d = (-(&k0 + 1.0)).exp2();
        let t = rows(&batch.t, 0, tc);
        let grid = &t / (&d * 2.0);
        assert!(max_abs(&grid, &grid.round()) < 1e-5, "t on the 2d grid");
        let (xs, ys, ls) = (
            rows(&batch.x_t, 0, tc),
            rows(&batch.y, 0, tc),
            rows(&batch.lengths, 0, tc),
        );
        let v1 = ema.forward(&xs, &t, &(&k0 + 1.0), &ys, Lengths::PerSample(&ls));
        let v2 = ema.forward(
            &(&xs + &v1 * d.view([tc, 1, 1, 1])),
            &(&t + &d),
            &(&k0 + 1.0),
            &ys,
            Lengths::PerSample(&ls),
        );
        let want = (v1 + v2) * 0.5;
        assert!(want.abs().max().double_value(&[]) > 1e-2);
        assert!(max_abs(&rows(&batch.target, 0, tc), &want) < 1e-5);

        // Flow matching: k = log2 T_max, target x1 − x0 with x_t = t·x1 + (1 − t)·x0.
        let fm = b - tc - lc;
        let k = rows(&batch.k, tc, fm);
        assert!(k.eq(config.flow_level() as f64).all().int64_value(&[]) == 1);
        let t = rows(&batch.t, tc, fm).view([fm, 1, 1, 1]);
        let x1f = rows(&x1, tc, fm);
        let x0 = (rows(&batch.x_t, tc, fm) - &t * &x1f) / (1.0 - &t);
        assert!(max_abs(&rows(&batch.target, tc, fm), &(x1f - x0)) < 1e-3);

        // Length consistency: θ⁻'s velocity at some valid length on the same input.
        let s = b - lc;
        for i in 0..lc {
            let one = |z: &Tensor| rows(z, s + i, 1);
            let target = one(&batch.target);
            let best = config
                .valid_lengths()
                .into_iter()
                .map(|l| {
                    let v = ema.forward(
                        &one(&batch.x_t),
                        &one(&batch.t),
                        &one(&batch.k),
                        &one(&batch.y),
                        Lengths::Uniform(l),
                    );
                    max_abs(&v, &target)
                })
                .fold(f64::INFINITY, f64::min);
            assert!(
                best < 1e-5,
                "LC sample {i}: no length reproduces its target ({best})"
            );
        }
        // Per-sample lengths are valid.
        let valid = config.valid_lengths();
        for l in Vec::<i64>::try_from(&batch.lengths).expect("lengths") {
            assert!(valid.contains(&(l as u32)), "length {l}");
        }
    });
}

#[test]
fn checkpoint_round_trips_the_ema_weights() {
    let (trainer, _, _) = warmed_trainer();
    let dir = tempfile::tempdir().expect("tempdir");
    let ckpt = dir.path().join("ckpt");
    trainer.save(&ckpt).expect("save");
    for f in [
        checkpoint::CONFIG_FILE,
        checkpoint::MODEL_FILE,
        checkpoint::TRAIN_STATE_FILE,
        checkpoint::LOG_FILE,
    ] {
        assert!(ckpt.join(f).is_file(), "{f}");
    }
    let vs = nn::VarStore::new(Device::Cpu);
    let loaded = Dit::new(&vs.root(), &trainer.model_config);
    load_weights(&vs, &ckpt.join(checkpoint::MODEL_FILE)).expect("load");
    let (x, t, k, y) = inputs(&trainer.model_config, 3, 9);
    let a = trainer.ema_model().forward(&x, &t, &k, &y, Lengths::Uniform(4));
    let b = loaded.forward(&x, &t, &k, &y, Lengths::Uniform(4));
    assert_eq!(max_abs(&a, &b), 0.0);
    // Strict: a model of another shape refuses these weights, naming a tensor.
    let mut other = trainer.model_config.clone();
    other.depth = 6;
    let vs = nn::VarStore::new(Device::Cpu);
    let _ = Dit::new(&vs.root(), &other);
    let err = load_weights(&vs, &ckpt.join(checkpoint::MODEL_FILE))
        .unwrap_err()
        .to_string();
    assert!(err.contains("'blocks.4.") || err.contains("'l_embedder"), "{err}");
}

// ---- the command line ----

fn log_losses(dir: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(dir.join("train_log.csv")).expect("train_log.csv");
    assert!(text.starts_with("step,loss,loss_fm,loss_tc,loss_lc,lr,samples_per_s"));
    text.lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).expect("loss").parse().expect("number"))
        .collect()
}

#[test]
fn train_on_synthetic_writes_a_checkpoint_with_falling_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("x");
    train_synthetic("tiny", 40, out.to_str().expect("utf8"));
    let losses = log_losses(&out);
    assert_eq!(losses.len(), 4);
    assert!(losses[3] < 0.9 * losses[0], "loss did not fall: {losses:?}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).expect("config"))
            .expect("json");
    assert_eq!(config["step"], 40);
    assert_eq!(config["model"]["hidden_size"], 32);
    assert!(NamedTensors::read(&out.join("train_state.safetensors")).is_ok());
    // Nothing temporary left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("x")]);
}

#[test]
fn resume_equals_an_uninterrupted_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |n: &str| path_arg(dir.path(), n);
    let common = words("train --data synthetic --model tiny --threads 1 --batch-size 8 --log-every 1");
    let run = |extra: &[&str]| ok(odelt(&[&common[..], extra].concat()));
    run(&["--steps", "6", "--out", &path("whole")]);
    run(&["--steps", "6", "--stop-at", "3", "--out", &path("split")]);
    run(&["--steps", "6", "--out", &path("split"), "--resume"]);
    for file in ["model.safetensors", "train_state.safetensors"] {
        let a = NamedTensors::read(&dir.path().join("whole").join(file)).expect("read");
        let b = NamedTensors::read(&dir.path().join("split").join(file)).expect("read");
        for name in a.names() {
            let (x, y) = (a.get(name).expect("a"), b.get(name).expect("b"));
            assert!(x.equal(y), "{file}: {name} differs after resume");
        }
    }
    assert_eq!(
        log_losses(&dir.path().join("whole")),
        log_losses(&dir.path().join("split"))
    );
}

#[test]
fn init_from_starts_a_new_run_at_the_given_weights() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |n: &str| path_arg(dir.path(), n);
    let (trained, started) = (p("trained"), p("started"));
    train_synthetic("tiny", 3, &trained);
    ok(odelt(
        &[
            &words("train --data synthetic --steps 0 --lr 3e-4 --init-from")[..],
            &[&trained, "--out", &started],
        ]
        .concat(),
    ));
    let weights = |d: &str| {
        let mut named = Tensor::read_safetensors(Path::new(d).join(checkpoint::MODEL_FILE)).expect("read");
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    };
    let (a, b) = (weights(&trained), weights(&started));
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert_eq!(max_abs(ta, tb), 0.0, "{na}");
    }
    let config = std::fs::read_to_string(Path::new(&started).join(checkpoint::CONFIG_FILE)).expect("config");
    let config: serde_json::Value = serde_json::from_str(&config).expect("json");
    assert_eq!(config["step"], 0);
    assert_eq!(config["train"]["lr"], 3e-4);
    assert_eq!(config["train"]["init_from"], trained.as_str());
    // The new run trains on from there.
    ok(odelt(
        &[
            &words("train --data synthetic --steps 2 --resume --out")[..],
            &[&started],
        ]
        .concat(),
    ));
    assert_bad_input(
        &[
            &words("train --data synthetic --steps 1 --init-from")[..],
            &[&p("nothing"), "--out", &p("x")],
        ]
        .concat(),
        &[],
        "nothing",
    );
}

#[test]
fn steps_zero_writes_the_initialised_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("init");
    train_synthetic("tiny", 0, out.to_str().expect("utf8"));
    let w = NamedTensors::read(&out.join("model.safetensors")).expect("weights");
    // adaLN-Zero: the final layer starts at zero, the embedders do not.
    assert_eq!(
        w.get("final_layer.linear.weight")
            .expect("w")
            .abs()
            .sum(Kind::Float)
            .double_value(&[]),
        0.0
    );
    assert!(
        w.get("t_embedder.mlp.0.weight")
            .expect("w")
            .abs()
            .sum(Kind::Float)
            .double_value(&[])
            > 0.0
    );
}

#[test]
fn bad_training_input_exits_2_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |n: &str| path_arg(dir.path(), n);
    let out = p("out");
    let call = |data: &str, model: &str, envs: &[(&str, &str)], needle: &str| {
        let args = [
            "train", "--data", data, "--model", model, "--steps", "1", "--out", &out,
        ];
        assert_bad_input(&args, envs, needle)
    };
    // Missing data.
    call(
        "fashion-mnist",
        "fmnist",
        &[("ODELT_FASHION_MNIST", "/nonexistent")],
        "dataset-fashion-mnist",
    );
    call(&p("nothing.npy"), "tiny", &[], "nothing.npy");
    // Wrong image size: 4×4 images for the 8×8 tiny model.
    let npy = p("small.npy");
    ndarray_npy::write_npy(&npy, &ndarray::Array4::<f32>::zeros((3, 1, 4, 4))).expect("npy");
    call(&npy, "tiny", &[], "model expects [N, 1, 8, 8]");
    // Invalid config.
    let bad = p("bad.json");
    let mut c = serde_json::to_value(ModelConfig::tiny()).expect("json");
    c["depth"] = 5.into();
    std::fs::write(&bad, c.to_string()).expect("write");
    call("synthetic", &bad, &[], "multiples of group_size");
    call("synthetic", "no-such-preset", &[], "unknown model");
    // Devices: an unknown name, and a GPU that no machine here has.
    for (device, needle) in [
        ("tpu", "not cpu, cuda or cuda:N"),
        ("cuda:99", "'cuda:99' is not available"),
    ] {
        let args = [
            &words("train --data synthetic --steps 1 --device")[..],
            &[device, "--out", &out],
        ]
        .concat();
        assert_bad_input(&args, &[], needle);
    }
    // Corrupt checkpoint.
    let ckpt = p("ckpt");
    // The default model is the tiny preset.
    train_synthetic("tiny", 1, &ckpt);
    std::fs::write(dir.path().join("ckpt/train_state.safetensors"), b"garbage").expect("write");
    let resume = [
        &words("train --data synthetic --steps 2 --resume")[..],
        &["--out", &ckpt],
    ]
    .concat();
    assert_bad_input(&resume, &[], "train_state.safetensors");
    std::fs::write(dir.path().join("ckpt/config.json"), b"{").expect("write");
    assert_bad_input(&resume, &[], "config.json");
    // Refuses to overwrite a checkpoint without --resume.
    let fresh = p("fresh");
    train_synthetic("tiny", 0, &fresh);
    assert_bad_input(
        &[&words("train --data synthetic --steps 1 --out")[..], &[&fresh]].concat(),
        &[],
        "--resume",
    );
}

#[test]
fn image_folders_and_npy_arrays_load_at_the_model_size() {
    use odelt::data::{DataSource, Dataset, Split};
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ModelConfig::tiny();
    // Two classes of 12×16 RGB images: resized to cover 8×8, centre-cropped, made grey.
    for (class, value) in [("a_dark", 0u8), ("b_light", 255u8)] {
        std::fs::create_dir_all(dir.path().join(class)).expect("mkdir");
        for i in 0..3 {
            let img = image::RgbImage::from_pixel(16, 12, image::Rgb([value; 3]));
            img.save(dir.path().join(class).join(format!("{i}.png")))
                .expect("png");
        }
    }
    let source = DataSource::parse(dir.path().to_str().expect("utf8"), None).expect("folder");
    let data = Dataset::load(&source, &config, Split::Train, 0).expect("load");
    assert_eq!(data.shape, [6, 1, 8, 8]);
    assert_eq!(data.images.len(), 6 * 64);
    assert_eq!(data.labels, vec![0, 0, 0, 1, 1, 1]);
    assert!(data.images[..3 * 64].iter().all(|&v| v == -1.0));
    assert!(data.images[3 * 64..].iter().all(|&v| v == 1.0));

    // A .npy array with its labels.
    let images = dir.path().join("x.npy");
    let labels = dir.path().join("y.npy");
    ndarray_npy::write_npy(&images, &ndarray::Array4::<f32>::from_elem((5, 1, 8, 8), 0.25)).expect("npy");
    ndarray_npy::write_npy(&labels, &ndarray::arr1(&[0i64, 1, 2, 3, 3])).expect("npy");
    let source = DataSource::parse(images.to_str().expect("utf8"), Some(labels.clone())).expect("npy");
    let data = Dataset::load(&source, &config, Split::Train, 0).expect("load");
    assert_eq!(data.shape, [5, 1, 8, 8]);
    assert!(data.images.iter().all(|&v| v == 0.25));
    assert_eq!(data.labels, vec![0, 1, 2, 3, 3]);
    // Labels beyond the model's classes are refused.
    ndarray_npy::write_npy(&labels, &ndarray::arr1(&[0i64, 1, 2, 3, 4])).expect("npy");
    let err = Dataset::load(&source, &config, Split::Train, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("4 classes"), "{err}");
}

#[test]
fn frechet_distance_without_libtorch_matches_libtorchs_eigh() {
    // The deploy build's Fréchet distance (nalgebra) against the same formula on libtorch's
    // LAPACK `eigh`, which `odelt eval` used before it dropped libtorch.
    fn stats(x: &Tensor) -> (Tensor, Tensor) {
        let x = x.to_kind(Kind::Double);
        let mean = x.mean_dim(0, false, Kind::Double);
        let centred = &x - &mean;
        let cov = centred.tr().matmul(&centred) / (x.size()[0] - 1) as f64;
        (mean, cov)
    }
    fn sqrt_psd(m: &Tensor) -> Tensor {
        let (values, vectors) = m.linalg_eigh("L");
        vectors
            .matmul(&values.clamp_min(0.0).sqrt().diag_embed(0, -2, -1))
            .matmul(&vectors.tr())
    }
    fn libtorch_fd(a: &Tensor, b: &Tensor) -> f64 {
        let ((ma, ca), (mb, cb)) = (stats(a), stats(b));
        let root = sqrt_psd(&ca);
        let inner = root.matmul(&cb).matmul(&root);
        let inner = (&inner + inner.tr()) * 0.5;
        let cross = inner.linalg_eigvalsh("L").clamp_min(0.0).sqrt().sum(Kind::Double);
        (ma - mb).square().sum(Kind::Double).double_value(&[])
            + ca.trace().double_value(&[])
            + cb.trace().double_value(&[])
            - 2.0 * cross.double_value(&[])
    }
    tch::manual_seed(3);
    let opts = (Kind::Float, Device::Cpu);
    for (n, dim) in [(500, 16), (300, 128)] {
        let a = Tensor::randn([n, dim], opts).matmul(&Tensor::randn([dim, dim], opts));
        let b = Tensor::randn([n, dim], opts).matmul(&Tensor::randn([dim, dim], opts)) * 0.5 + 0.3;
        let reference = libtorch_fd(&a, &b);
        let ours = |x: &Tensor| {
            let data = Vec::<f32>::try_from(&x.flatten(0, -1)).expect("f32");
            odelt::eval::FeatureStats::new(&data, dim as usize)
        };
        let fd = odelt::eval::frechet_distance(&ours(&a), &ours(&b));
        assert!(
            (fd - reference).abs() <= 1e-9 * reference.abs().max(1.0),
            "{n}×{dim}: {fd} vs libtorch {reference}"
        );
    }
}

#[test]
fn adaln_init_xavier_draws_only_the_blocks_projections() {
    let dir = tempfile::tempdir().unwrap();
    let std_of = |init: &str| {
        let out = dir.path().join(init);
        ok(odelt_words(
            "train --data synthetic --steps 0 --adaln-init",
            &[init, "--out", out.to_str().unwrap()],
        ));
        let saved = checkpoint::CheckpointConfig::read(&out).unwrap();
        assert_eq!(serde_json::to_value(saved.train.adaln_init).unwrap(), init);
        let weights = NamedTensors::read(&out.join("model.safetensors")).unwrap();
        let std = |name: &str| weights.get(name).unwrap().std(false).double_value(&[]);
        let d = saved.meta.model.hidden_size as f64;
        (
            std("blocks.0.adaLN_modulation.1.weight"),
            std("final_layer.adaLN_modulation.1.weight"),
            d,
        )
    };
    let (block, last, _) = std_of("zero");
    assert_eq!((block, last), (0.0, 0.0));
    let (block, last, d) = std_of("xavier");
    // U(±√(6 / (D + 6D))) has standard deviation √(2 / 7D).
    let want = (2.0 / (7.0 * d)).sqrt();
    assert!((block / want - 1.0).abs() < 0.05, "std {block}, want {want}");
    assert_eq!(last, 0.0, "the final layer stays adaLN-Zero");
}

#[test]
fn sampling_weights_steer_lengths_and_levels() {
    let config = ModelConfig::tiny();
    let train = TrainConfig {
        batch_size: 64,
        length_weights: vec![1.0, 0.0],
        tc_level_weights: vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0],
        ..Default::default()
    };
    let trainer = Trainer::new(config.clone(), train, 10, Device::Cpu);
    let x1 = Tensor::zeros([64, 1, 8, 8], (Kind::Float, Device::Cpu));
    let y = Tensor::zeros([64], (Kind::Int64, Device::Cpu));
    let batch = trainer.make_batch(&x1, &y);
    let shortest = config.valid_lengths()[0] as i64;
    assert!(
        batch.lengths.eq(shortest).all().int64_value(&[]) == 1,
        "every sample at l = 2"
    );
    let k0 = batch.k.narrow(0, 0, batch.tc as i64);
    assert!(
        k0.eq(2.0).all().int64_value(&[]) == 1,
        "every TC sample at level 2"
    );

    let uniform = Trainer::new(config.clone(), TrainConfig::default(), 10, Device::Cpu);
    let lengths = uniform.make_batch(&x1, &y).lengths;
    assert!(
        lengths.ne(shortest).any().int64_value(&[]) == 1,
        "uniform draws reach l = 4"
    );
}
