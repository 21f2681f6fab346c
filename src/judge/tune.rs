//! Fine-tuning one of the e5 encoder's layers for one question (is this request harmful?),
//! on two CPU cores.
//!
//! The trunk (the pretrained layers below the tuned one) runs once per training text and
//! its hidden states are kept in memory; training then runs only the tuned layer
//! ([`Layer`]), mean pooling and a linear head, forward and back, in small batches of texts
//! of similar length. The layers above it are dropped: the head reads the tuned layer's
//! pooled states (layer 8 of 12 ships, `train --prompt-depth`). A
//! linear head over frozen sentence vectors is the baseline this is measured against, on
//! the same texts, leave-one-file-out (`refusal-guard train`, flags `--tune-epochs` and
//! `--tune-folds`; the tables land in models/combiner/loso.md).

use candle_core::{DType, Device, Tensor};
use candle_nn::{Linear, Module, Optimizer, VarBuilder, VarMap};
use candle_transformers::models::bert::Config;

use crate::classify::bert::{attention_bias, Layer, Ops};
use crate::classify::e5::{err, mean_pool_l2, E5Encoder};
use crate::classify::train::{weighted_cross_entropy, LinearHead};
use crate::classify::ClassifyError;

/// Settings of a fine-tuning run.
#[derive(Debug, Clone)]
pub struct TuneConfig {
    /// Passes over the training texts.
    pub epochs: usize,
    /// Texts per step.
    pub batch: usize,
    /// Learning rate of the tuned layer (small: it starts from the pretrained weights).
    pub layer_lr: f64,
    /// Learning rate of the head (it starts from zero).
    pub head_lr: f64,
    /// The pooled vector is multiplied by this before the head, so that a head of modest
    /// weights can reach confident logits over a unit vector; folded into the exported head.
    pub scale: f64,
    /// Seed of the batch order.
    pub seed: u64,
    /// Tunes the layer on its weights rounded to the 8-bit kernels' grid
    /// ([`crate::classify::packed::round_to_four_bit_grid`], gradients passed straight
    /// through) and exports them rounded, so the tuned layer runs on the 8-bit kernel as the
    /// pretrained ones do. Off, it is tuned and shipped in f32.
    pub four_bit_weights: bool,
    /// The last share of the steps (0 to 1) over which the tuned values are averaged, step
    /// by step, into the values returned (stochastic weight averaging); 0 returns the last
    /// step's values. One tuning's last values depend on the last few batches it saw, and
    /// two tunings of the same data differed by up to 0.15 in a held-out file's benign
    /// prompts flagged; the average over many steps is a flatter, steadier point.
    pub average_last: f64,
}

impl Default for TuneConfig {
    fn default() -> Self {
        TuneConfig {
            epochs: 2,
            batch: 32,
            layer_lr: 5e-5,
            head_lr: 2e-3,
            scale: 20.0,
            seed: 17,
            four_bit_weights: false,
            average_last: 0.0,
        }
    }
}

/// The hidden states of each text (`[tokens, dim]`) after the first `layers` pretrained
/// layers (the trunk under the layer to tune), in the order given.
pub fn trunk_states(
    encoder: &E5Encoder,
    texts: &[&str],
    max_tokens: usize,
    layers: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<Tensor>, ClassifyError> {
    let ids: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| encoder.token_ids(t, max_tokens))
        .collect::<Result<_, _>>()?;
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| ids[i].len());
    let mut out: Vec<Option<Tensor>> = vec![None; ids.len()];
    let mut done = 0;
    for chunk in order.chunks(crate::classify::e5::BATCH) {
        let rows: Vec<Vec<u32>> = chunk.iter().map(|&i| ids[i].clone()).collect();
        let (hidden, _, _) = encoder.trunk_forward(&rows, layers)?;
        for (j, &i) in chunk.iter().enumerate() {
            // A storage of its own, so the padded batch is freed: `Tensor::copy` would clone
            // the whole batch's storage behind the view (32 texts' states per text kept).
            let n = ids[i].len();
            let state = hidden
                .get(j)
                .and_then(|h| h.narrow(0, 0, n))
                .and_then(|h| h.flatten_all())
                .and_then(|h| h.to_vec1::<f32>())
                .and_then(|v| Tensor::from_vec(v, (n, hidden.dim(2)?), hidden.device()))
                .map_err(err)?;
            out[i] = Some(state);
        }
        done += chunk.len();
        progress(done, ids.len());
    }
    Ok(out.into_iter().flatten().collect())
}

/// Stacks states of different lengths into one zero-padded batch and its mask.
fn stack(states: &[&Tensor]) -> candle_core::Result<(Tensor, Tensor)> {
    let len = states.iter().map(|s| s.dims()[0]).max().unwrap_or(0).max(1);
    let dim = states.first().map(|s| s.dims()[1]).unwrap_or(0);
    let mut rows = Vec::with_capacity(states.len());
    let mut mask = Vec::with_capacity(states.len() * len);
    for s in states {
        let n = s.dim(0)?;
        rows.push(if n < len {
            Tensor::cat(
                &[
                    (*s).clone(),
                    Tensor::zeros((len - n, dim), DType::F32, s.device())?,
                ],
                0,
            )?
        } else {
            (*s).clone()
        });
        mask.extend(std::iter::repeat_n(1f32, n));
        mask.extend(std::iter::repeat_n(0f32, len - n));
    }
    Ok((
        Tensor::stack(&rows, 0)?,
        Tensor::from_vec(mask, (states.len(), len), &Device::Cpu)?,
    ))
}

/// A fine-tuned layer and its head.
pub struct TunedTop {
    /// The trained values (the layer's names as in the checkpoint, plus `head.weight`,
    /// `head.bias`).
    pub vars: VarMap,
    pub layer: Layer,
    head: Linear,
    scale: f64,
}

impl TunedTop {
    /// Pooled, L2-normalised vectors of the tuned layer over trunk states.
    pub fn vectors(&self, states: &[&Tensor]) -> Result<Vec<Vec<f32>>, ClassifyError> {
        layer_vectors(&self.layer, states)
    }

    /// The head as a [`LinearHead`] over the pooled vector (the scale folded in).
    pub fn head(&self, labels: &[&str]) -> Result<LinearHead, ClassifyError> {
        let w = (self.head.weight() * self.scale).map_err(err)?;
        let b = self
            .head
            .bias()
            .cloned()
            .unwrap_or(Tensor::zeros(labels.len(), DType::F32, &Device::Cpu).map_err(err)?);
        Ok(LinearHead {
            labels: labels.iter().map(|s| s.to_string()).collect(),
            weight: w.flatten_all().and_then(|w| w.to_vec1()).map_err(err)?,
            bias: b.to_vec1().map_err(err)?,
        })
    }
}

/// What a layer is tuned on: trunk states, their labels and their weights.
pub struct TrainingSet<'a> {
    pub states: Vec<&'a Tensor>,
    pub labels: Vec<usize>,
    pub weights: Vec<f32>,
    /// Number of classes.
    pub classes: usize,
}

/// Fine-tunes layer `index` of the checkpoint in `weights` and a new head (starting at
/// zero) on a training set; `progress` gets (step, steps, loss).
pub fn tune(
    cfg: &Config,
    weights: &std::path::Path,
    index: usize,
    set: &TrainingSet,
    tc: &TuneConfig,
    mut progress: impl FnMut(usize, usize, f32),
) -> Result<TunedTop, ClassifyError> {
    let (states, labels, example_weights, n_labels) = (&set.states, &set.labels, &set.weights, set.classes);
    let dev = Device::Cpu;
    let vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&vars, DType::F32, &dev);
    let mut layer = Layer::load(vb.clone(), cfg, index, Ops::Differentiable).map_err(err)?;
    if tc.four_bit_weights {
        layer = layer.with_four_bit_weights();
    }
    let layer_names: Vec<String> = vars.data().lock().map_err(err)?.keys().cloned().collect();
    // The layer starts from the pretrained values.
    {
        // SAFETY: read-only memory map of a cache file that must not change while loaded.
        let file = unsafe { candle_core::safetensors::MmapedSafetensors::new(weights) }.map_err(err)?;
        let data = vars.data().lock().map_err(err)?;
        for (name, var) in data.iter() {
            let t = file
                .load(name, &dev)
                .and_then(|t| t.to_dtype(DType::F32))
                .map_err(err)?;
            var.set(&t).map_err(err)?;
        }
    }
    let head = candle_nn::linear(cfg.hidden_size, n_labels, vb.pp("head")).map_err(err)?;
    {
        let data = vars.data().lock().map_err(err)?;
        for name in ["head.weight", "head.bias"] {
            if let Some(v) = data.get(name) {
                v.set(&v.zeros_like().map_err(err)?).map_err(err)?;
            }
        }
    }
    let (layer_vars, head_vars): (Vec<_>, Vec<_>) = {
        let data = vars.data().lock().map_err(err)?;
        data.iter()
            .map(|(n, v)| (layer_names.contains(n), v.clone()))
            .partition(|(is_layer, _)| *is_layer)
    };
    let params = |lr| candle_nn::ParamsAdamW {
        lr,
        weight_decay: 0.01,
        ..Default::default()
    };
    let mut layer_opt = candle_nn::AdamW::new(
        layer_vars.into_iter().map(|(_, v)| v).collect(),
        params(tc.layer_lr),
    )
    .map_err(err)?;
    let mut head_opt = candle_nn::AdamW::new(
        head_vars.into_iter().map(|(_, v)| v).collect(),
        params(tc.head_lr),
    )
    .map_err(err)?;

    // Batches of texts of similar length (less padding), in a seeded order per epoch.
    let mut by_len: Vec<usize> = (0..states.len()).collect();
    let mut rng = crate::classify::train::SplitMix::new(tc.seed);
    let keys: Vec<u64> = (0..states.len()).map(|_| rng.next_u64()).collect();
    by_len.sort_by_key(|&i| (states[i].dim(0).unwrap_or(0) / 8, keys[i]));
    let batches: Vec<Vec<usize>> = by_len.chunks(tc.batch.max(1)).map(|c| c.to_vec()).collect();
    let total = tc.epochs * batches.len();
    let mut average = WeightAverage::new(&vars, total, tc.average_last)?;
    let mut step = 0;
    for _ in 0..tc.epochs {
        let mut order: Vec<usize> = (0..batches.len()).collect();
        rng.shuffle(&mut order);
        for &bi in &order {
            let idx = &batches[bi];
            let run = || -> candle_core::Result<Tensor> {
                let batch: Vec<&Tensor> = idx.iter().map(|&i| states[i]).collect();
                let (x, mask) = stack(&batch)?;
                let h = layer.forward(&x, &attention_bias(&mask)?)?;
                let pooled = (mean_pool_l2(&h, &mask)? * tc.scale)?;
                let logits = head.forward(&pooled)?;
                let targets = Tensor::from_vec(
                    idx.iter().map(|&i| labels[i] as u32).collect::<Vec<_>>(),
                    (idx.len(), 1),
                    &dev,
                )?;
                let w = Tensor::from_vec(
                    idx.iter().map(|&i| example_weights[i]).collect::<Vec<_>>(),
                    idx.len(),
                    &dev,
                )?;
                weighted_cross_entropy(&logits, &targets, &w)
            };
            let loss = run().map_err(err)?;
            let grads = loss.backward().map_err(err)?;
            layer_opt.step(&grads).map_err(err)?;
            head_opt.step(&grads).map_err(err)?;
            step += 1;
            average.add(step)?;
            progress(step, total, loss.to_scalar::<f32>().map_err(err)?);
        }
    }
    average.apply()?;
    Ok(TunedTop {
        vars,
        layer,
        head,
        scale: tc.scale,
    })
}

/// The running mean of a tuning's values over its last steps ([`TuneConfig::average_last`]).
struct WeightAverage<'a> {
    vars: &'a VarMap,
    /// The first step (1-based) that joins the mean; past the last step when off.
    from: usize,
    /// Each variable's mean so far, by name.
    means: std::collections::HashMap<String, Tensor>,
}

impl<'a> WeightAverage<'a> {
    fn new(vars: &'a VarMap, total: usize, share: f64) -> Result<Self, ClassifyError> {
        if !(0.0..=1.0).contains(&share) {
            return Err(ClassifyError::Invalid(format!(
                "the share of steps to average is {share}, not between 0 and 1"
            )));
        }
        // At most `total`, since the share is at most 1.
        let averaged = (total as f64 * share).round() as usize;
        Ok(WeightAverage {
            vars,
            from: if averaged == 0 {
                usize::MAX
            } else {
                total - averaged + 1
            },
            means: std::collections::HashMap::new(),
        })
    }

    /// Adds the values after `step` to the mean, if the step is one of the averaged ones.
    fn add(&mut self, step: usize) -> Result<(), ClassifyError> {
        if step < self.from {
            return Ok(());
        }
        // 1 for the first averaged step, 2 for the next (steps come once each, in order).
        let k = (step - self.from + 1) as f64;
        let data = self.vars.data().lock().map_err(err)?;
        for (name, var) in data.iter() {
            let now = var.as_tensor().detach();
            let mean = match self.means.remove(name) {
                // mean += (now - mean) / k, so no sum grows with the step count.
                Some(mean) => (&mean + ((&now - &mean).map_err(err)? / k).map_err(err)?).map_err(err)?,
                None => now.copy().map_err(err)?,
            };
            self.means.insert(name.clone(), mean);
        }
        Ok(())
    }

    /// Sets every variable to its mean (nothing when no step was averaged).
    fn apply(self) -> Result<(), ClassifyError> {
        let data = self.vars.data().lock().map_err(err)?;
        for (name, mean) in &self.means {
            if let Some(var) = data.get(name) {
                var.set(mean).map_err(err)?;
            }
        }
        Ok(())
    }
}

/// Pooled vectors of a (frozen) layer over trunk states.
pub fn layer_vectors(layer: &Layer, states: &[&Tensor]) -> Result<Vec<Vec<f32>>, ClassifyError> {
    let mut out = Vec::with_capacity(states.len());
    for chunk in states.chunks(32) {
        let (x, mask) = stack(chunk).map_err(err)?;
        let h = attention_bias(&mask)
            .and_then(|bias| layer.forward(&x, &bias))
            .map_err(err)?;
        out.extend(
            mean_pool_l2(&h, &mask)
                .and_then(|v| v.to_vec2::<f32>())
                .map_err(err)?,
        );
    }
    Ok(out)
}

/// Prompt harm through a fine-tuned layer (layer `depth` of the encoder, 1-based; the
/// pretrained layers before it are the trunk and the ones after it are not run),
/// leave-one-file-out on the files `folds` names, then once on every row: the held-out
/// probabilities of harm (None outside the folds and for rows `keep` leaves out) and the
/// final layer and head. `keep` picks the rows that are read at all (the same capped subset
/// as the frozen head's, so the two compare). Classes are balanced: benign prompts are the
/// scarcer and the costlier to miss here.
pub fn prompts_tuned(
    encoder: &E5Encoder,
    rows: &[super::fit::PromptRow],
    keep: &[bool],
    folds: &[usize],
    depth: usize,
    tc: &TuneConfig,
    log: impl FnMut(&str),
) -> Result<(Vec<Option<f32>>, TunedTop), ClassifyError> {
    let task = Task {
        texts: rows.iter().map(|r| r.text.as_str()).collect(),
        labels: rows.iter().map(|r| usize::from(r.harmful)).collect(),
        names: &crate::classify::data::PROMPT_LABELS,
        class_weight_power: 1.0,
        fold: rows.iter().map(|r| r.source).collect(),
    };
    let (held_out, tuned) = out_of_fold(encoder, &task, keep, folds, depth, tc, log)?;
    Ok((held_out.into_iter().map(|p| p.map(|p| p[1])).collect(), tuned))
}

/// The answer question (answer / refusal / evasion / inability, [`crate::classify::data::RESPONSE_LABELS`])
/// through a fine-tuned layer (layer `depth`, 1-based; 12 reads answers as deep as the
/// frozen head does), held out by fold: `fold[i]` is row `i`'s fold (its source, or a group
/// of sources), and each fold is read by a layer and head tuned without it. Then once on
/// every row. Returns each kept row's held-out class probabilities and the final layer and
/// head. Classes are weighted by frequency^-0.5, as the frozen head's are.
pub fn answers_tuned(
    encoder: &E5Encoder,
    rows: &[super::fit::Row],
    keep: &[bool],
    fold: &[usize],
    depth: usize,
    tc: &TuneConfig,
    log: impl FnMut(&str),
) -> Result<(HeldOut, TunedTop), ClassifyError> {
    let task = Task {
        texts: rows.iter().map(|r| r.text.as_str()).collect(),
        labels: rows.iter().map(|r| r.label.index()).collect(),
        names: &crate::classify::data::RESPONSE_LABELS,
        class_weight_power: 0.5,
        fold: fold.to_vec(),
    };
    let mut folds = fold.to_vec();
    folds.sort_unstable();
    folds.dedup();
    out_of_fold(encoder, &task, keep, &folds, depth, tc, log)
}

/// Each row's class probabilities from the layer and head tuned without its fold (None for
/// rows that were not read).
pub type HeldOut = Vec<Option<Vec<f32>>>;

/// What a layer is tuned for: labelled texts, each in a fold.
struct Task<'a> {
    texts: Vec<&'a str>,
    labels: Vec<usize>,
    /// The classes' names, in the labels' order.
    names: &'static [&'static str],
    /// Class weights are frequency^-power over each training set (1: balanced).
    class_weight_power: f32,
    fold: Vec<usize>,
}

/// Tunes layer `depth` once without each fold in `folds` (predicting that fold's kept rows)
/// and once on every kept row.
fn out_of_fold(
    encoder: &E5Encoder,
    task: &Task,
    keep: &[bool],
    folds: &[usize],
    depth: usize,
    tc: &TuneConfig,
    mut log: impl FnMut(&str),
) -> Result<(HeldOut, TunedTop), ClassifyError> {
    let layers = encoder.config().num_hidden_layers;
    if depth == 0 || depth > layers {
        return Err(ClassifyError::Invalid(format!(
            "tuned layer {depth} is not between 1 and the encoder's {layers} layers"
        )));
    }
    let chosen: Vec<usize> = (0..task.texts.len()).filter(|&i| keep[i]).collect();
    let texts: Vec<&str> = chosen.iter().map(|&i| task.texts[i]).collect();
    let started = std::time::Instant::now();
    let mut last = std::time::Instant::now();
    let states = trunk_states(
        encoder,
        &texts,
        crate::classify::encoder::E5_ANSWER_TOKENS,
        depth - 1,
        |d, n| {
            if last.elapsed().as_secs() >= 30 || d == n {
                log(&format!(
                    "trunk states {d}/{n} ({:.0}s)",
                    started.elapsed().as_secs_f64()
                ));
                last = std::time::Instant::now();
            }
        },
    )?;
    let cfg = encoder.config().clone();
    let fit = |train: &[usize], what: &str, log: &mut dyn FnMut(&str)| -> Result<TunedTop, ClassifyError> {
        let labels: Vec<usize> = train.iter().map(|&k| task.labels[chosen[k]]).collect();
        let classes = task.names.len();
        let cw = crate::classify::train::class_weights(&labels, classes, task.class_weight_power);
        let set = TrainingSet {
            states: train.iter().map(|&k| &states[k]).collect(),
            weights: labels.iter().map(|&y| cw[y]).collect(),
            labels,
            classes,
        };
        let t = std::time::Instant::now();
        let mut last = std::time::Instant::now();
        tune(
            &cfg,
            encoder.weights_path(),
            depth - 1,
            &set,
            tc,
            |k, total, loss| {
                if last.elapsed().as_secs() >= 60 || k == total {
                    log(&format!(
                        "{what}: step {k}/{total}, loss {loss:.3} ({:.0}s)",
                        t.elapsed().as_secs_f64()
                    ));
                    last = std::time::Instant::now();
                }
            },
        )
    };
    let mut out = vec![None; task.texts.len()];
    for &f in folds {
        let train: Vec<usize> = (0..chosen.len()).filter(|&k| task.fold[chosen[k]] != f).collect();
        let test: Vec<usize> = (0..chosen.len()).filter(|&k| task.fold[chosen[k]] == f).collect();
        if test.is_empty() {
            continue;
        }
        let tuned = fit(&train, &format!("without fold {f}"), &mut log)?;
        let head = tuned.head(task.names)?;
        let vs = tuned.vectors(&test.iter().map(|&k| &states[k]).collect::<Vec<_>>())?;
        for (&k, v) in test.iter().zip(vs) {
            out[chosen[k]] = Some(head.forward(&v));
        }
    }
    let all: Vec<usize> = (0..chosen.len()).collect();
    let tuned = fit(&all, "every fold", &mut log)?;
    Ok((out, tuned))
}

impl TunedTop {
    /// The tuned layer's tensors, named as in the checkpoint (the head left out); the dense
    /// weights rounded as they were tuned, when they were ([`TuneConfig::four_bit_weights`]).
    pub fn layer_tensors(&self) -> Result<std::collections::HashMap<String, Tensor>, ClassifyError> {
        let four_bit = self.layer.has_four_bit_weights();
        let data = self.vars.data().lock().map_err(err)?;
        data.iter()
            .filter(|(name, _)| !name.starts_with("head."))
            .map(|(name, v)| {
                let t = v.as_tensor();
                match t.dims() {
                    // The dense weights, `[outputs, inputs]`; norms and biases are vectors.
                    &[outputs, inputs] if four_bit => {
                        let values = t.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(err)?;
                        let grid = crate::classify::packed::round_to_four_bit_grid(&values, inputs);
                        Tensor::from_vec(grid, (outputs, inputs), t.device())
                            .map(|t| (name.clone(), t))
                            .map_err(err)
                    }
                    _ => Ok((name.clone(), t.clone())),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_checkpoint(dir: &std::path::Path) -> (Config, std::path::PathBuf) {
        let cfg: Config = serde_json::from_str(
            r#"{"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
                "intermediate_size": 16, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
                "max_position_embeddings": 16, "type_vocab_size": 1, "initializer_range": 0.02,
                "layer_norm_eps": 1e-12, "pad_token_id": 0}"#,
        )
        .unwrap();
        let dev = Device::Cpu;
        let mut tensors = std::collections::HashMap::new();
        let p = "encoder.layer.0.";
        for (name, shape) in [
            ("attention.self.query", (8, 8)),
            ("attention.self.key", (8, 8)),
            ("attention.self.value", (8, 8)),
            ("attention.output.dense", (8, 8)),
            ("intermediate.dense", (16, 8)),
            ("output.dense", (8, 16)),
        ] {
            tensors.insert(
                format!("{p}{name}.weight"),
                Tensor::randn(0f32, 0.3, shape, &dev).unwrap(),
            );
            tensors.insert(
                format!("{p}{name}.bias"),
                Tensor::zeros(shape.0, DType::F32, &dev).unwrap(),
            );
        }
        for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
            tensors.insert(
                format!("{p}{name}.weight"),
                Tensor::ones(8, DType::F32, &dev).unwrap(),
            );
            tensors.insert(
                format!("{p}{name}.bias"),
                Tensor::zeros(8, DType::F32, &dev).unwrap(),
            );
        }
        let path = dir.join("tiny.safetensors");
        candle_core::safetensors::save(&tensors, &path).unwrap();
        (cfg, path)
    }

    /// Texts of two classes, every one weighted 1.
    fn two_classes<'a>(states: &'a [Tensor], labels: &[usize]) -> TrainingSet<'a> {
        TrainingSet {
            states: states.iter().collect(),
            labels: labels.to_vec(),
            weights: vec![1.0; states.len()],
            classes: 2,
        }
    }

    #[test]
    fn the_average_is_over_the_last_steps_only() {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        let v = vb.get_with_hints(2, "w", candle_nn::Init::Const(0.0)).unwrap();
        let set = |x: f32| {
            let t = Tensor::new(&[x, 2.0 * x], &Device::Cpu).unwrap();
            vars.data().lock().unwrap()["w"].set(&t).unwrap();
        };
        // Four steps, the last half averaged: the values after steps 3 and 4.
        let mut average = WeightAverage::new(&vars, 4, 0.5).unwrap();
        for (step, x) in [(1, 10.0), (2, 20.0), (3, 1.0), (4, 3.0)] {
            set(x);
            average.add(step).unwrap();
        }
        average.apply().unwrap();
        assert_eq!(v.to_vec1::<f32>().unwrap(), vec![2.0, 4.0]);
        // Off: the last values stand.
        let mut average = WeightAverage::new(&vars, 4, 0.0).unwrap();
        for (step, x) in [(1, 1.0), (2, 5.0)] {
            set(x);
            average.add(step).unwrap();
        }
        average.apply().unwrap();
        assert_eq!(v.to_vec1::<f32>().unwrap(), vec![5.0, 10.0]);
        assert!(WeightAverage::new(&vars, 4, 1.5).is_err());
    }

    #[test]
    fn tuning_learns_a_separable_task_and_padding_does_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, weights) = tiny_checkpoint(dir.path());
        let dev = Device::Cpu;
        // Class 1 texts carry a shifted token somewhere; lengths vary, so batches pad.
        let mut states = Vec::new();
        let mut labels = Vec::new();
        for i in 0..64usize {
            let len = 3 + i % 5;
            let mut x = Tensor::randn(0f32, 1.0, (len, 8), &dev).unwrap();
            if i % 2 == 1 {
                x = x
                    .broadcast_add(&Tensor::new(&[2f32, -2., 2., -2., 0., 0., 0., 0.], &dev).unwrap())
                    .unwrap();
            }
            states.push(x);
            labels.push(i % 2);
        }
        let set = two_classes(&states, &labels);
        let tc = TuneConfig {
            epochs: 15,
            batch: 8,
            layer_lr: 1e-3,
            head_lr: 2e-2,
            ..TuneConfig::default()
        };
        let mut losses = Vec::new();
        let tuned = tune(&cfg, &weights, 0, &set, &tc, |_, _, l| losses.push(l)).unwrap();
        let first: f32 = losses[..8].iter().sum::<f32>() / 8.0;
        let last: f32 = losses[losses.len() - 8..].iter().sum::<f32>() / 8.0;
        assert!(last < first * 0.5, "loss {first} -> {last}");
        let head = tuned.head(&["a", "b"]).unwrap();
        let vs = tuned.vectors(&set.states).unwrap();
        let right = vs
            .iter()
            .zip(&labels)
            .filter(|(v, &y)| (head.forward(v)[1] >= 0.5) == (y == 1))
            .count();
        assert!(right >= 60, "{right}/64 right");
        // A text's vector does not depend on the padding its batch adds.
        let alone = tuned.vectors(&[&states[0]]).unwrap();
        let padded = tuned.vectors(&[&states[0], &states[4]]).unwrap();
        for (a, b) in alone[0].iter().zip(&padded[0]) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        // The exported head and layer reproduce the trained ones.
        let layer = tuned.layer_tensors().unwrap();
        assert_eq!(layer.len(), 16);
        assert!(layer.keys().all(|k| k.starts_with("encoder.layer.0.")));
    }

    #[test]
    fn a_layer_tuned_on_the_four_bit_grid_ships_on_it_and_computes_what_was_trained() {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, weights) = tiny_checkpoint(dir.path());
        let dev = Device::Cpu;
        let states: Vec<Tensor> = (0..32usize)
            .map(|i| {
                let x = Tensor::randn(0f32, 1.0, (3 + i % 4, 8), &dev).unwrap();
                let shift = if i % 2 == 1 { 1.5f32 } else { -1.5 };
                x.broadcast_add(&Tensor::new(&[shift, 0., -shift, 0., 0., 0., 0., 0.], &dev).unwrap())
                    .unwrap()
            })
            .collect();
        let labels: Vec<usize> = (0..32).map(|i| i % 2).collect();
        let set = two_classes(&states, &labels);
        let tc = TuneConfig {
            epochs: 10,
            batch: 8,
            layer_lr: 1e-2,
            head_lr: 2e-2,
            four_bit_weights: true,
            ..TuneConfig::default()
        };
        let mut losses = Vec::new();
        let tuned = tune(&cfg, &weights, 0, &set, &tc, |_, _, l| losses.push(l)).unwrap();
        assert!(
            losses[losses.len() - 4..].iter().sum::<f32>() < losses[..4].iter().sum::<f32>() * 0.5,
            "{losses:?}"
        );
        let exported = tuned.layer_tensors().unwrap();
        let mut rounded = 0;
        for (name, t) in &exported {
            if let &[_, inputs] = t.dims() {
                let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert_eq!(
                    crate::classify::packed::round_to_four_bit_grid(&v, inputs),
                    v,
                    "{name}"
                );
                rounded += 1;
            }
        }
        assert_eq!(rounded, 6, "the six dense weights");
        // The tuned variables themselves moved off the grid (gradients pass straight
        // through), and the export rounded them back onto it.
        let raw = tuned.vars.data().lock().unwrap()["encoder.layer.0.intermediate.dense.weight"]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_ne!(crate::classify::packed::round_to_four_bit_grid(&raw, 8), raw);
        // Loaded to run, the exported layer computes what training computed.
        let vb = VarBuilder::from_tensors(exported, DType::F32, &dev);
        let mut shipped = Layer::load(vb, &cfg, 0, Ops::Fused).unwrap();
        let trained = tuned.vectors(&set.states).unwrap();
        let run = layer_vectors(&shipped, &set.states).unwrap();
        for (a, b) in trained.iter().flatten().zip(run.iter().flatten()) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        if crate::classify::packed::Isa::detect().is_some_and(|isa| isa.takes_8_bit_inputs()) {
            assert_eq!(shipped.quantize_inputs(), 6, "every product on 8-bit weights");
        }
    }
}
