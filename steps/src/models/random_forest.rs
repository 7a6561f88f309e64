//! A random forest of regression trees, written for this crate: bootstrap
//! samples, a random subset of features at every split, histogram-binned
//! split search, and trees grown in parallel with rayon.
//!
//! Why it is written here instead of taken from a crate: on a synthetic
//! table of the training set's shape (94,000 rows x 40 features), the
//! regression forests of crates.io were far too slow. `randomforest` 0.2.0
//! took 724 s for 4 trees, and `smartcore` 0.7.0 took 1.1 s for 4 trees of
//! depth 16, single-threaded, which is about 27 s for 100 trees. smartcore
//! also predicts only from its own dense matrix type, so every single-row
//! request would allocate one. (Measured on the 2-core development machine
//! with release builds.) Binning every feature into at most 256 bins once
//! and searching splits over bin histograms makes a tree cost about
//! rows x depth x sampled features, a few tens of milliseconds here.
//!
//! A tree is stored as flat arrays with one byte per split for its
//! threshold bin, and the thresholds themselves once per forest, which
//! keeps payloads and the memory walked per prediction small.

use super::encoding::{EncodedMatrix, FeatureEncoder};
use super::gradient_boosting::log_uniform;
use super::range::ParamRange;
use super::{ModelError, Monitor, RowModel};
use flowrun_engine::{ParamSpec, ParamValue, StepContext, StepError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The most bins a feature is split into; bin codes fit in a byte.
const MAX_BINS: usize = 256;

/// The `feature` value that marks a leaf.
const LEAF: u16 = u16::MAX;

/// Hyperparameters of the random forest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForestParams {
    /// Number of trees.
    pub trees: usize,
    /// Maximum tree depth.
    pub max_depth: usize,
    /// Minimum bootstrap rows in a leaf.
    pub min_leaf: usize,
    /// Share of features tried at each split.
    pub max_features: f64,
    /// Size of each bootstrap sample as a share of the training rows.
    pub sample_fraction: f64,
}

impl Default for ForestParams {
    // Chosen on the full Olist data (order_time features, group split).
    fn default() -> Self {
        ForestParams {
            trees: 100,
            max_depth: 14,
            min_leaf: 20,
            max_features: 0.33,
            sample_fraction: 1.0,
        }
    }
}

/// The range of `forest_trees`: every tree is kept in memory, so the bound
/// keeps a typo from running for days or exhausting memory.
pub const TREES: ParamRange = ParamRange::int("forest_trees", 1, 10_000);
/// The range of `forest_max_depth`.
pub const MAX_DEPTH: ParamRange = ParamRange::int("forest_max_depth", 1, 64);
/// The range of `forest_min_leaf`, in rows.
pub const MIN_LEAF: ParamRange = ParamRange::int("forest_min_leaf", 1, 1_000_000_000);
/// The range of `forest_max_features`, a share of the features above 0.
pub const MAX_FEATURES: ParamRange = ParamRange::float("forest_max_features", 1e-6, 1.0);
/// The range of `forest_sample_fraction`, a share of the rows above 0.
pub const SAMPLE_FRACTION: ParamRange = ParamRange::float("forest_sample_fraction", 1e-6, 1.0);

impl ForestParams {
    /// Checks every value against its declared range.
    pub fn validate(&self) -> Result<(), ModelError> {
        TREES.check_usize(self.trees)?;
        MAX_DEPTH.check_usize(self.max_depth)?;
        MIN_LEAF.check_usize(self.min_leaf)?;
        MAX_FEATURES.check(self.max_features)?;
        SAMPLE_FRACTION.check(self.sample_fraction)?;
        Ok(())
    }

    /// Declares the step parameters, with these defaults and ranges.
    pub fn param_specs() -> Vec<ParamSpec> {
        let d = ForestParams::default();
        let int = |range: ParamRange, value: usize, doc| {
            range.optional(ParamValue::Int(value as i64), doc)
        };
        let float = |range: ParamRange, value, doc| range.optional(ParamValue::Float(value), doc);
        vec![
            int(TREES, d.trees, "random forest: number of trees"),
            int(MAX_DEPTH, d.max_depth, "random forest: maximum tree depth"),
            int(
                MIN_LEAF,
                d.min_leaf,
                "random forest: minimum bootstrap rows in a leaf",
            ),
            float(
                MAX_FEATURES,
                d.max_features,
                "random forest: share of features tried at each split, above 0 and at most 1",
            ),
            float(
                SAMPLE_FRACTION,
                d.sample_fraction,
                "random forest: bootstrap sample size as a share of the rows, above 0 and at most 1",
            ),
        ]
    }

    /// Reads the parameters declared by [`ForestParams::param_specs`].
    pub fn from_step(ctx: &StepContext<'_>) -> Result<Self, StepError> {
        Ok(ForestParams {
            trees: TREES.read_usize(ctx)?,
            max_depth: MAX_DEPTH.read_usize(ctx)?,
            min_leaf: MIN_LEAF.read_usize(ctx)?,
            max_features: MAX_FEATURES.read_f64(ctx)?,
            sample_fraction: SAMPLE_FRACTION.read_f64(ctx)?,
        })
    }

    /// Draws a random variation of these parameters for tuning: depth, leaf
    /// size and feature share; the number of trees stays as set.
    pub fn sample(&self, rng: &mut StdRng) -> Self {
        ForestParams {
            trees: self.trees,
            max_depth: rng.random_range(6..=20usize),
            min_leaf: log_uniform(rng, 2.0, 200.0).round() as usize,
            max_features: rng.random_range(0.15..=0.8),
            sample_fraction: rng.random_range(0.3..=1.0),
        }
    }
}

/// One regression tree as flat arrays indexed by node. Node 0 is the root.
/// A split node's children are `child` (left) and `child + 1` (right); a
/// leaf's `child` is the index of its value in `leaf_values`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressionTree {
    /// The feature a node splits on, or `u16::MAX` for a leaf.
    pub feature: Vec<u16>,
    /// The threshold bin of a split: rows with values up to the bin's
    /// upper threshold go left.
    pub bin: Vec<u8>,
    /// The left child of a split, or the value index of a leaf.
    pub child: Vec<u32>,
    /// The mean target of each leaf's rows.
    pub leaf_values: Vec<f32>,
}

/// A fitted random forest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForestModel {
    /// Per feature, the upper threshold of each bin but the last.
    pub thresholds: Vec<Vec<f64>>,
    /// The trees.
    pub trees: Vec<RegressionTree>,
    /// Per feature, the total decrease of squared error of its splits.
    pub impurity_decrease: Vec<f64>,
}

impl RegressionTree {
    fn predict(&self, row: &[f64], thresholds: &[Vec<f64>]) -> f32 {
        let mut node = 0;
        loop {
            let feature = self.feature[node];
            let child = self.child[node] as usize;
            if feature == LEAF {
                return self.leaf_values[child];
            }
            let feature = feature as usize;
            let threshold = thresholds[feature][self.bin[node] as usize];
            node = if row[feature] <= threshold {
                child
            } else {
                child + 1
            };
        }
    }
}

impl RowModel for ForestModel {
    fn predict_row(&self, row: &[f64]) -> f64 {
        let total: f64 = self
            .trees
            .iter()
            .map(|tree| f64::from(tree.predict(row, &self.thresholds)))
            .sum();
        total / self.trees.len() as f64
    }

    fn importance(&self, _encoder: &FeatureEncoder) -> Vec<f64> {
        self.impurity_decrease.clone()
    }
}

/// Every feature's values as bin codes, column-major.
struct Binned {
    rows: usize,
    codes: Vec<u8>,
    thresholds: Vec<Vec<f64>>,
}

impl Binned {
    fn new(x: &EncodedMatrix) -> Binned {
        let columns: Vec<(Vec<f64>, Vec<u8>)> = (0..x.cols)
            .into_par_iter()
            .map(|j| {
                let column = x.column(j);
                let thresholds = bin_thresholds(column);
                let codes = column
                    .iter()
                    .map(|v| thresholds.partition_point(|t| t < v) as u8)
                    .collect();
                (thresholds, codes)
            })
            .collect();
        let mut codes = Vec::with_capacity(x.rows * x.cols);
        let mut thresholds = Vec::with_capacity(x.cols);
        for (t, c) in columns {
            thresholds.push(t);
            codes.extend(c);
        }
        Binned {
            rows: x.rows,
            codes,
            thresholds,
        }
    }

    fn code(&self, feature: usize, row: u32) -> u8 {
        self.codes[feature * self.rows + row as usize]
    }
}

/// Returns at most `MAX_BINS - 1` ascending thresholds for a column: the
/// midpoints between neighbouring distinct values when there are few
/// enough, otherwise midpoints just above evenly spaced quantiles.
fn bin_thresholds(column: &[f64]) -> Vec<f64> {
    let mut sorted = column.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    let mut distinct = sorted.clone();
    distinct.dedup();
    if distinct.len() <= MAX_BINS {
        return distinct.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
    }
    let mut thresholds: Vec<f64> = Vec::with_capacity(MAX_BINS - 1);
    for k in 1..MAX_BINS {
        let value = sorted[k * sorted.len() / MAX_BINS];
        let above = sorted.partition_point(|v| *v <= value);
        if above < sorted.len() {
            let threshold = (value + sorted[above]) / 2.0;
            if thresholds.last().is_none_or(|last| *last < threshold) {
                thresholds.push(threshold);
            }
        }
    }
    thresholds
}

/// The best split found for a node.
struct Split {
    feature: usize,
    bin: u8,
    gain: f64,
}

/// Grows one tree; holds the scratch buffers reused across its nodes.
struct TreeBuilder<'a> {
    binned: &'a Binned,
    y: &'a [f64],
    params: &'a ForestParams,
    tried_features: usize,
    rng: StdRng,
    feature_order: Vec<usize>,
    sums: [f64; MAX_BINS],
    counts: [u32; MAX_BINS],
    tree: RegressionTree,
    impurity_decrease: Vec<f64>,
}

impl TreeBuilder<'_> {
    fn grow(mut self, rows: &mut [u32]) -> (RegressionTree, Vec<f64>) {
        self.push_node();
        // (node, start, end, depth) of nodes still to split.
        let mut pending = vec![(0usize, 0usize, rows.len(), 0usize)];
        while let Some((node, start, end, depth)) = pending.pop() {
            let node_rows = &mut rows[start..end];
            let sum: f64 = node_rows.iter().map(|&i| self.y[i as usize]).sum();
            let count = node_rows.len();
            let split = if depth < self.params.max_depth && count >= 2 * self.params.min_leaf {
                self.best_split(node_rows, sum, count)
            } else {
                None
            };
            let Some(split) = split else {
                self.tree.feature[node] = LEAF;
                self.tree.child[node] = self.tree.leaf_values.len() as u32;
                self.tree.leaf_values.push((sum / count as f64) as f32);
                continue;
            };

            let binned = self.binned;
            let left_count = partition(node_rows, |i| binned.code(split.feature, i) <= split.bin);
            let left = self.push_node();
            self.push_node();
            self.tree.feature[node] = split.feature as u16;
            self.tree.bin[node] = split.bin;
            self.tree.child[node] = left as u32;
            self.impurity_decrease[split.feature] += split.gain;
            pending.push((left + 1, start + left_count, end, depth + 1));
            pending.push((left, start, start + left_count, depth + 1));
        }
        (self.tree, self.impurity_decrease)
    }

    fn push_node(&mut self) -> usize {
        self.tree.feature.push(LEAF);
        self.tree.bin.push(0);
        self.tree.child.push(0);
        self.tree.feature.len() - 1
    }

    /// Finds the split with the largest decrease of squared error among a
    /// fresh random subset of features, leaving at least `min_leaf` rows on
    /// each side.
    fn best_split(&mut self, rows: &[u32], sum: f64, count: usize) -> Option<Split> {
        let features = self.feature_order.len();
        // A partial Fisher-Yates shuffle puts the tried features first.
        for k in 0..self.tried_features {
            let pick = self.rng.random_range(k..features);
            self.feature_order.swap(k, pick);
        }
        let parent_score = sum * sum / count as f64;
        let min_leaf = self.params.min_leaf;
        let mut best: Option<Split> = None;

        for k in 0..self.tried_features {
            let feature = self.feature_order[k];
            let bins = self.binned.thresholds[feature].len();
            if bins == 0 {
                continue;
            }
            self.sums[..=bins].fill(0.0);
            self.counts[..=bins].fill(0);
            for &i in rows {
                let code = self.binned.code(feature, i) as usize;
                self.sums[code] += self.y[i as usize];
                self.counts[code] += 1;
            }
            let (mut left_sum, mut left_count) = (0.0, 0usize);
            for bin in 0..bins {
                left_sum += self.sums[bin];
                left_count += self.counts[bin] as usize;
                let right_count = count - left_count;
                if left_count < min_leaf {
                    continue;
                }
                if right_count < min_leaf {
                    break;
                }
                let right_sum = sum - left_sum;
                let gain = left_sum * left_sum / left_count as f64
                    + right_sum * right_sum / right_count as f64
                    - parent_score;
                if gain > best.as_ref().map_or(1e-12, |b| b.gain) {
                    best = Some(Split {
                        feature,
                        bin: bin as u8,
                        gain,
                    });
                }
            }
        }
        best
    }
}

/// Moves the rows for which `goes_left` holds to the front and returns how
/// many there are.
fn partition(rows: &mut [u32], goes_left: impl Fn(u32) -> bool) -> usize {
    let mut next = 0;
    for k in 0..rows.len() {
        if goes_left(rows[k]) {
            rows.swap(next, k);
            next += 1;
        }
    }
    next
}

/// Fits a random forest to `y`, calling `monitor` once per tree.
///
/// Tree `t` draws its bootstrap sample and features from its own generator
/// seeded with `seed` and `t`, so the forest does not depend on how rayon
/// schedules the trees.
pub fn train(
    params: &ForestParams,
    x: &EncodedMatrix,
    y: &[f64],
    seed: u64,
    monitor: &dyn Monitor,
) -> Result<ForestModel, ModelError> {
    params.validate()?;
    if x.cols > LEAF as usize {
        return Err(ModelError::Training(format!(
            "the random forest reads at most {} features, found {}",
            LEAF, x.cols
        )));
    }
    let binned = Binned::new(x);
    let tried_features = ((x.cols as f64 * params.max_features).round() as usize).clamp(1, x.cols);
    let sample_rows = ((x.rows as f64 * params.sample_fraction).round() as usize).max(1);

    let grown: Vec<(RegressionTree, Vec<f64>)> = (0..params.trees)
        .into_par_iter()
        .map(|t| {
            monitor.check()?;
            let mut rng =
                StdRng::seed_from_u64(seed ^ (t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut rows: Vec<u32> = (0..sample_rows)
                .map(|_| rng.random_range(0..x.rows) as u32)
                .collect();
            let builder = TreeBuilder {
                binned: &binned,
                y,
                params,
                tried_features,
                rng,
                feature_order: (0..x.cols).collect(),
                sums: [0.0; MAX_BINS],
                counts: [0; MAX_BINS],
                tree: RegressionTree {
                    feature: Vec::new(),
                    bin: Vec::new(),
                    child: Vec::new(),
                    leaf_values: Vec::new(),
                },
                impurity_decrease: vec![0.0; x.cols],
            };
            let grown = builder.grow(&mut rows);
            monitor.advance(1);
            Ok(grown)
        })
        .collect::<Result<_, ModelError>>()?;

    let mut impurity_decrease = vec![0.0; x.cols];
    let mut trees = Vec::with_capacity(grown.len());
    for (tree, decrease) in grown {
        for (total, d) in impurity_decrease.iter_mut().zip(decrease) {
            *total += d;
        }
        trees.push(tree);
    }
    Ok(ForestModel {
        thresholds: binned.thresholds,
        trees,
        impurity_decrease,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Unmonitored;

    #[test]
    fn thresholds_between_distinct_values() {
        assert_eq!(bin_thresholds(&[3.0, 1.0, 2.0, 2.0]), vec![1.5, 2.5]);
        assert!(bin_thresholds(&[4.0, 4.0]).is_empty());
    }

    #[test]
    fn many_values_capped_at_max_bins() {
        let column: Vec<f64> = (0..10_000).map(|i| (i as f64).sqrt()).collect();
        let thresholds = bin_thresholds(&column);
        assert!(thresholds.len() < MAX_BINS);
        assert!(thresholds.len() > MAX_BINS - 10);
        assert!(thresholds.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn codes_agree_with_thresholds() {
        let data: Vec<f64> = (0..1000).map(|i| ((i * 37) % 1000) as f64 / 7.0).collect();
        let x = EncodedMatrix {
            rows: 1000,
            cols: 1,
            data,
        };
        let binned = Binned::new(&x);
        for i in 0..x.rows {
            let code = binned.code(0, i as u32) as usize;
            let value = x.data[i];
            let thresholds = &binned.thresholds[0];
            if code < thresholds.len() {
                assert!(value <= thresholds[code]);
            }
            if code > 0 {
                assert!(value > thresholds[code - 1]);
            }
        }
    }

    #[test]
    fn step_function_learned() {
        let rows = 400;
        let data: Vec<f64> = (0..rows).map(|i| i as f64).collect();
        let y: Vec<f64> = data
            .iter()
            .map(|v| if *v < 200.0 { 1.0 } else { 5.0 })
            .collect();
        let x = EncodedMatrix {
            rows,
            cols: 1,
            data,
        };
        let params = ForestParams {
            trees: 10,
            min_leaf: 5,
            max_features: 1.0,
            ..ForestParams::default()
        };
        let forest = train(&params, &x, &y, 1, &Unmonitored).unwrap();
        assert!((forest.predict_row(&[10.0]) - 1.0).abs() < 1e-6);
        assert!((forest.predict_row(&[390.0]) - 5.0).abs() < 1e-6);
        assert!(forest.impurity_decrease[0] > 0.0);
    }
}
