//! Training the n-gram heads (sparse SGD, plain Rust) and the dense heads (the encoder's
//! heads and the combiner: candle-nn, full-batch AdamW).
//!
//! Both minimise cross-entropy with per-class weights (a power of the inverse class
//! frequency, balanced by default), because refusals are rare next to answers and a head that
//! never says "refusal" would otherwise look good. The n-gram heads are trained the way
//! fastText trains them (see [`train_ngram_head`]): an embedding table of 65,536 rows is
//! touched a few rows at a time, which dense tensor updates would make a hundred times
//! slower. Everything is deterministic for a given seed.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use super::features::{extract, FeatureConfig};
use super::ngram::{HeadConfig, NgramHead};
use super::ClassifyError;

/// Hyper-parameters of a training run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Embedding width.
    pub dim: usize,
    pub epochs: usize,
    pub learning_rate: f64,
    /// Seed of the shuffles and of the initial weights.
    pub seed: u64,
    /// Class weights are `frequency^-power` (0: none, 0.5: inverse square root, 1: balanced).
    pub class_weight_power: f32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            dim: 16,
            epochs: 8,
            learning_rate: 0.2,
            seed: 17,
            class_weight_power: 1.0,
        }
    }
}

/// One labelled text.
#[derive(Debug, Clone)]
pub struct Example {
    pub text: String,
    /// Index into the label list.
    pub label: usize,
    /// Extra weight of the example (1 for most).
    pub weight: f32,
}

/// A small deterministic PRNG (splitmix64), so shuffles need no dependency.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Fisher–Yates.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

fn err(e: impl std::fmt::Display) -> ClassifyError {
    ClassifyError::model("train", e)
}

/// Per-class loss weights: `frequency^-power`, normalised to mean 1 over the examples'
/// labels.
pub fn class_weights(labels: &[usize], n_labels: usize, power: f32) -> Vec<f32> {
    let mut counts = vec![0usize; n_labels];
    for &label in labels {
        counts[label] += 1;
    }
    let raw: Vec<f32> = counts
        .iter()
        .map(|&c| if c == 0 { 0.0 } else { (c as f32).powf(-power) })
        .collect();
    let mean: f32 = labels.iter().map(|&l| raw[l]).sum::<f32>() / labels.len().max(1) as f32;
    raw.iter().map(|w| w / mean.max(1e-12)).collect()
}

/// Trains an n-gram head on labelled texts. `progress` is called after each epoch with the
/// epoch number and the mean training loss.
///
/// fastText's recipe: plain SGD, one example at a time, the learning rate falling linearly
/// to zero over the run. Only the rows of the features an example has are touched, so an
/// epoch costs what reading the features costs (a second for tens of thousands of
/// answers), which is what makes leave-one-source-out retraining cheap. Deterministic for a
/// given seed.
pub fn train_ngram_head(
    examples: &[Example],
    labels: &[&str],
    features: FeatureConfig,
    cfg: &TrainConfig,
    mut progress: impl FnMut(usize, f32),
) -> Result<NgramHead, ClassifyError> {
    if examples.is_empty() {
        return Err(ClassifyError::Invalid("no training examples".into()));
    }
    if let Some(bad) = examples.iter().find(|e| e.label >= labels.len()) {
        return Err(ClassifyError::Invalid(format!(
            "label index {} out of range for {} labels",
            bad.label,
            labels.len()
        )));
    }
    let n_labels = labels.len();
    let buckets = features.buckets as usize;
    let dim = cfg.dim;
    let mut rng = SplitMix::new(cfg.seed);

    let feats: Vec<Vec<u32>> = examples
        .iter()
        .map(|e| {
            let mut f = Vec::new();
            extract(&e.text, &features, &mut f);
            f
        })
        .collect();
    let label_ids: Vec<usize> = examples.iter().map(|e| e.label).collect();
    let cw = class_weights(&label_ids, n_labels, cfg.class_weight_power);

    let scale = 1.0 / dim as f32;
    let mut emb: Vec<f32> = (0..buckets * dim)
        .map(|_| (rng.next_f32() * 2.0 - 1.0) * scale)
        .collect();
    // fastText starts the output layer at zero: every class equally likely.
    let mut w = vec![0f32; n_labels * dim];
    let mut b = vec![0f32; n_labels];

    let mut order: Vec<usize> = (0..examples.len()).collect();
    let steps = (cfg.epochs * examples.len()).max(1) as f64;
    let mut step = 0usize;
    let mut bag = vec![0f32; dim];
    let mut grad_bag = vec![0f32; dim];
    let mut logits = vec![0f32; n_labels];
    for epoch in 0..cfg.epochs {
        rng.shuffle(&mut order);
        let mut total = 0f64;
        for &i in &order {
            let lr = (cfg.learning_rate * (1.0 - step as f64 / steps)) as f32;
            step += 1;
            let f = &feats[i];
            if f.is_empty() {
                continue;
            }
            let inv = 1.0 / f.len() as f32;
            bag.iter_mut().for_each(|v| *v = 0.0);
            for &id in f {
                let row = &emb[id as usize * dim..(id as usize + 1) * dim];
                bag.iter_mut().zip(row).for_each(|(v, r)| *v += r * inv);
            }
            for (k, l) in logits.iter_mut().enumerate() {
                *l = b[k]
                    + w[k * dim..(k + 1) * dim]
                        .iter()
                        .zip(&bag)
                        .map(|(a, v)| a * v)
                        .sum::<f32>();
            }
            let probs = super::softmax(&logits);
            let y = examples[i].label;
            let weight = cw[y] * examples[i].weight;
            total += (-(probs[y].max(1e-12)).ln() * weight) as f64;
            grad_bag.iter_mut().for_each(|g| *g = 0.0);
            for k in 0..n_labels {
                let g = (probs[k] - if k == y { 1.0 } else { 0.0 }) * weight;
                if g == 0.0 {
                    continue;
                }
                let wk = &mut w[k * dim..(k + 1) * dim];
                for d in 0..dim {
                    grad_bag[d] += g * wk[d];
                    wk[d] -= lr * g * bag[d];
                }
                b[k] -= lr * g;
            }
            for &id in f {
                let row = &mut emb[id as usize * dim..(id as usize + 1) * dim];
                row.iter_mut()
                    .zip(&grad_bag)
                    .for_each(|(r, g)| *r -= lr * g * inv);
            }
        }
        progress(epoch + 1, (total / examples.len() as f64) as f32);
    }

    Ok(NgramHead {
        config: HeadConfig {
            features,
            dim,
            labels: labels.iter().map(|s| s.to_string()).collect(),
        },
        embedding: emb,
        weight: w,
        bias: b,
    })
}

/// `Σ wᵢ · (−log softmax(logitsᵢ)[yᵢ]) / Σ wᵢ`.
pub fn weighted_cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    weights: &Tensor,
) -> candle_core::Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, 1)?;
    let picked = logp.gather(targets, 1)?.squeeze(1)?;
    let num = (picked * weights)?.sum_all()?;
    let den = weights.sum_all()?;
    num.neg()?.broadcast_div(&den)
}

/// A linear softmax head over fixed feature vectors (the sentence-encoder tier's heads).
#[derive(Debug, Clone)]
pub struct LinearHead {
    pub labels: Vec<String>,
    /// `labels × dim`, row-major.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl LinearHead {
    /// Class probabilities for one vector.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        let dim = x.len();
        let logits: Vec<f32> = self
            .weight
            .chunks_exact(dim)
            .zip(&self.bias)
            .map(|(w, b)| w.iter().zip(x).map(|(a, v)| a * v).sum::<f32>() + b)
            .collect();
        super::softmax(&logits)
    }
}

/// Trains a linear softmax head on fixed vectors (full-batch AdamW). Class weights are
/// `frequency^-class_weight_power` (0: the data's own class balance, so the probabilities
/// stay calibrated to it; 1: balanced classes), multiplied by each example's own weight in
/// `example_weights` (`None`: 1 each).
pub fn train_linear_head(
    xs: &[Vec<f32>],
    ys: &[usize],
    example_weights: Option<&[f32]>,
    labels: &[&str],
    epochs: usize,
    learning_rate: f64,
    class_weight_power: f32,
) -> Result<LinearHead, ClassifyError> {
    if xs.is_empty() {
        return Err(ClassifyError::Invalid("no training examples".into()));
    }
    let dev = Device::Cpu;
    let dim = xs[0].len();
    let n = xs.len();
    let flat: Vec<f32> = xs.iter().flatten().copied().collect();
    let x = Tensor::from_vec(flat, (n, dim), &dev).map_err(err)?;
    let cw = class_weights(ys, labels.len(), class_weight_power);
    if example_weights.is_some_and(|w| w.len() != n) {
        return Err(ClassifyError::Invalid(format!(
            "{n} training examples but {} example weights",
            example_weights.map_or(0, <[f32]>::len)
        )));
    }
    let weights: Vec<f32> = ys
        .iter()
        .enumerate()
        .map(|(i, &y)| cw[y] * example_weights.map_or(1.0, |w| w[i]))
        .collect();
    let weights = Tensor::from_vec(weights, n, &dev).map_err(err)?;
    let targets =
        Tensor::from_vec(ys.iter().map(|&y| y as u32).collect::<Vec<u32>>(), (n, 1), &dev).map_err(err)?;
    let w = Var::zeros((labels.len(), dim), DType::F32, &dev).map_err(err)?;
    let b = Var::zeros(labels.len(), DType::F32, &dev).map_err(err)?;
    let mut opt = AdamW::new(
        vec![w.clone(), b.clone()],
        ParamsAdamW {
            lr: learning_rate,
            weight_decay: 1e-4,
            ..ParamsAdamW::default()
        },
    )
    .map_err(err)?;
    for _ in 0..epochs {
        let loss = x
            .matmul(&w.as_tensor().t().map_err(err)?)
            .and_then(|l| l.broadcast_add(b.as_tensor()))
            .and_then(|l| weighted_cross_entropy(&l, &targets, &weights))
            .map_err(err)?;
        opt.backward_step(&loss).map_err(err)?;
    }
    let to_vec = |v: &Var| {
        v.as_tensor()
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(err)
    };
    Ok(LinearHead {
        labels: labels.iter().map(|s| s.to_string()).collect(),
        weight: to_vec(&w)?,
        bias: to_vec(&b)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ngram_head_learns_a_toy_task() {
        let mut examples = Vec::new();
        for i in 0..40 {
            examples.push(Example {
                text: format!("I'm sorry, but I can't help with request number {i}."),
                label: 1,
                weight: 1.0,
            });
            examples.push(Example {
                text: format!("抱歉，我无法回答第{i}个问题。"),
                label: 1,
                weight: 1.0,
            });
            examples.push(Example {
                text: format!("Sure! Here is a detailed answer to question {i}: first, mix the flour."),
                label: 0,
                weight: 1.0,
            });
        }
        let features = FeatureConfig {
            buckets: 1 << 12,
            ..FeatureConfig::default()
        };
        let cfg = TrainConfig {
            dim: 8,
            epochs: 20,
            learning_rate: 0.5,
            ..TrainConfig::default()
        };
        let mut losses = Vec::new();
        let head = train_ngram_head(&examples, &["answer", "refusal"], features, &cfg, |_, l| {
            losses.push(l)
        })
        .unwrap();
        assert!(losses.last().unwrap() < &losses[0], "{losses:?}");
        assert!(head.forward("I'm sorry, but I can't do that.")[1] > 0.8);
        assert!(head.forward("Here is a detailed answer: mix the sugar.")[0] > 0.8);
        assert!(head.forward("抱歉，我无法提供帮助。")[1] > 0.8);
        // The head names its classes (not its examples' labels), and saves and loads as a
        // model with them.
        assert_eq!(
            head.config.labels,
            vec!["answer".to_string(), "refusal".to_string()]
        );
        let model = super::super::ngram::NgramModel {
            response: Some(head),
            prompt: None,
            prompt_languages: super::super::ngram::PromptLanguages::unrecorded(),
            info: Default::default(),
        };
        let loaded = super::super::ngram::NgramModel::from_bytes(&model.to_bytes().unwrap()).unwrap();
        let again = loaded.response.expect("a response head");
        assert_eq!(
            again.config.labels,
            vec!["answer".to_string(), "refusal".to_string()]
        );
        assert!(again.forward("I'm sorry, but I can't do that.")[1] > 0.8);
    }

    #[test]
    fn linear_head_learns_separable_points() {
        let xs: Vec<Vec<f32>> = (0..20)
            .map(|i| vec![if i % 2 == 0 { 1.0 } else { -1.0 }, 0.5])
            .collect();
        let ys: Vec<usize> = (0..20).map(|i| i % 2).collect();
        let head = train_linear_head(&xs, &ys, None, &["a", "b"], 200, 0.1, 1.0).unwrap();
        assert!(head.forward(&[1.0, 0.5])[0] > 0.9);
        assert!(head.forward(&[-1.0, 0.5])[1] > 0.9);
    }

    #[test]
    fn example_weights_decide_between_conflicting_examples() {
        // The same point labelled both ways: the heavier label wins, and a wrong count of
        // weights is an error, not a panic.
        let xs: Vec<Vec<f32>> = vec![vec![1.0, 0.0]; 4];
        let ys = vec![0, 0, 1, 1];
        let towards = |w: [f32; 4]| {
            let head = train_linear_head(&xs, &ys, Some(&w), &["a", "b"], 200, 0.1, 0.0).unwrap();
            head.forward(&[1.0, 0.0])[1]
        };
        assert!(towards([1.0, 1.0, 3.0, 3.0]) > 0.65);
        assert!(towards([3.0, 3.0, 1.0, 1.0]) < 0.35);
        assert!(train_linear_head(&xs, &ys, Some(&[1.0]), &["a", "b"], 10, 0.1, 0.0).is_err());
    }
}
