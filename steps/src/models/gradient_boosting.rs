//! Gradient boosting with forust-ml: histogram-binned regression trees fitted
//! one after another to the squared-error gradients of the ones before.
//!
//! forust's `GradientBooster::fit` runs every iteration in one call, with no
//! hook between trees, so a progress bar could not move and a timeout could
//! not stop it. This module therefore drives forust's own building blocks
//! itself: it bins the matrix once with `bin_matrix`, grows each tree with
//! `Tree::fit` and forust's `MissingImputerSplitter`, and updates the
//! predictions from the rows of each leaf, as `fit` does. Without row or
//! column sampling the trees are the same as `fit` would grow; a test checks
//! that. Row sampling draws its rows with this crate's random generator, so
//! sampled trees differ from forust's own sampled ones.
//!
//! The fitted trees are stored in a forust `GradientBooster`, so the payload's
//! `model.booster` object also loads in forust itself. When a model is
//! decoded, its trees are copied once into compact 24-byte nodes, and
//! predicting one row walks those, without the booster's matrix and
//! thread-pool set-up.

use super::encoding::{EncodedMatrix, FeatureEncoder};
use super::range::ParamRange;
use super::{ModelError, Monitor, RowModel};
use flowrun_engine::{ParamSpec, ParamValue, StepContext, StepError};
use forust_ml::binning::{TiledBins, bin_matrix};
use forust_ml::constraints::ConstraintMap;
use forust_ml::gradientbooster::{GrowPolicy, ImportanceMethod};
use forust_ml::objective::{ObjectiveFunction, ObjectiveType, SquaredLoss};
use forust_ml::sampler::SampleMethod;
use forust_ml::splitter::MissingImputerSplitter;
use forust_ml::tree::{Tree, TreeRows};
use forust_ml::{GradientBooster, Matrix};
use rand::rngs::StdRng;
use rand::seq::IteratorRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Histogram bins per feature (forust's default).
const NBINS: u16 = 256;

/// Hyperparameters of gradient boosting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoostingParams {
    /// Number of trees.
    pub iterations: usize,
    /// Shrinkage applied to every leaf value.
    pub learning_rate: f64,
    /// Maximum tree depth.
    pub max_depth: usize,
    /// Maximum leaves per tree.
    pub max_leaves: usize,
    /// Minimum hessian sum (here: rows) in a leaf.
    pub min_leaf_weight: f64,
    /// L2 penalty on leaf values.
    pub l2: f64,
    /// Minimum loss reduction to split a node.
    pub gamma: f64,
    /// Share of rows sampled for each tree.
    pub subsample: f64,
    /// Share of features sampled for each tree.
    pub colsample_bytree: f64,
}

impl Default for BoostingParams {
    // Measured on the full Olist data with the order_time and post_delivery
    // feature sets and the group split: within the seed-to-seed spread
    // (about 0.003 MSE) of the best settings tried, at about 2 CPU seconds
    // of training on the 2-core development machine. Deeper trees with
    // smaller leaves score better on a random split only, because there
    // they memorise rows of orders that also sit in the test part.
    fn default() -> Self {
        BoostingParams {
            iterations: 250,
            learning_rate: 0.06,
            max_depth: 6,
            max_leaves: 32,
            min_leaf_weight: 80.0,
            l2: 1.0,
            gamma: 0.0,
            subsample: 0.7,
            colsample_bytree: 0.7,
        }
    }
}

/// The range of `iterations`: the trees are kept in memory while they
/// are grown, so the bound keeps a typo from exhausting memory.
pub const ITERATIONS: ParamRange = ParamRange::int("iterations", 1, 100_000);
/// The range of `learning_rate`. The valid values are above 0 and at most
/// 1; the smallest accepted, 1e-6, already needs millions of trees to fit.
pub const LEARNING_RATE: ParamRange = ParamRange::float("learning_rate", 1e-6, 1.0);
/// The range of `max_depth`.
pub const MAX_DEPTH: ParamRange = ParamRange::int("max_depth", 1, 64);
/// The range of `max_leaves`.
pub const MAX_LEAVES: ParamRange = ParamRange::int("max_leaves", 2, 65_536);
/// The range of `min_leaf_weight`, in rows.
pub const MIN_LEAF_WEIGHT: ParamRange = ParamRange::float("min_leaf_weight", 0.0, 1e9);
/// The range of `l2`.
pub const L2: ParamRange = ParamRange::float("l2", 0.0, 1e9);
/// The range of `gamma`.
pub const GAMMA: ParamRange = ParamRange::float("gamma", 0.0, 1e9);
/// The range of `subsample`, a share of the rows above 0.
pub const SUBSAMPLE: ParamRange = ParamRange::float("subsample", 1e-6, 1.0);
/// The range of `colsample_bytree`, a share of the features above 0.
pub const COLSAMPLE_BYTREE: ParamRange = ParamRange::float("colsample_bytree", 1e-6, 1.0);

impl BoostingParams {
    /// Checks every value against its declared range.
    pub fn validate(&self) -> Result<(), ModelError> {
        ITERATIONS.check_usize(self.iterations)?;
        LEARNING_RATE.check(self.learning_rate)?;
        MAX_DEPTH.check_usize(self.max_depth)?;
        MAX_LEAVES.check_usize(self.max_leaves)?;
        MIN_LEAF_WEIGHT.check(self.min_leaf_weight)?;
        L2.check(self.l2)?;
        GAMMA.check(self.gamma)?;
        SUBSAMPLE.check(self.subsample)?;
        COLSAMPLE_BYTREE.check(self.colsample_bytree)?;
        Ok(())
    }

    /// Declares the step parameters, with these defaults and ranges.
    pub fn param_specs() -> Vec<ParamSpec> {
        let d = BoostingParams::default();
        let int = |range: ParamRange, value: usize, doc| {
            range.optional(ParamValue::Int(value as i64), doc)
        };
        let float = |range: ParamRange, value, doc| range.optional(ParamValue::Float(value), doc);
        vec![
            int(
                ITERATIONS,
                d.iterations,
                "gradient boosting: number of trees",
            ),
            float(
                LEARNING_RATE,
                d.learning_rate,
                "gradient boosting: shrinkage of each tree's values, above 0 and at most 1",
            ),
            int(
                MAX_DEPTH,
                d.max_depth,
                "gradient boosting: maximum tree depth",
            ),
            int(
                MAX_LEAVES,
                d.max_leaves,
                "gradient boosting: maximum leaves per tree",
            ),
            float(
                MIN_LEAF_WEIGHT,
                d.min_leaf_weight,
                "gradient boosting: minimum rows in a leaf",
            ),
            float(L2, d.l2, "gradient boosting: L2 penalty on leaf values"),
            float(
                GAMMA,
                d.gamma,
                "gradient boosting: minimum loss reduction to split a node",
            ),
            float(
                SUBSAMPLE,
                d.subsample,
                "gradient boosting: share of rows sampled per tree, above 0 and at most 1",
            ),
            float(
                COLSAMPLE_BYTREE,
                d.colsample_bytree,
                "gradient boosting: share of features sampled per tree, above 0 and at most 1",
            ),
        ]
    }

    /// Reads the parameters declared by [`BoostingParams::param_specs`].
    pub fn from_step(ctx: &StepContext<'_>) -> Result<Self, StepError> {
        Ok(BoostingParams {
            iterations: ITERATIONS.read_usize(ctx)?,
            learning_rate: LEARNING_RATE.read_f64(ctx)?,
            max_depth: MAX_DEPTH.read_usize(ctx)?,
            max_leaves: MAX_LEAVES.read_usize(ctx)?,
            min_leaf_weight: MIN_LEAF_WEIGHT.read_f64(ctx)?,
            l2: L2.read_f64(ctx)?,
            gamma: GAMMA.read_f64(ctx)?,
            subsample: SUBSAMPLE.read_f64(ctx)?,
            colsample_bytree: COLSAMPLE_BYTREE.read_f64(ctx)?,
        })
    }

    /// Draws a random variation of these parameters for tuning: learning
    /// rate, L2 and minimum leaf weight log-uniformly, depth, leaves and
    /// sampling uniformly. The number of iterations stays as set. The leaf
    /// weight goes down to 1, because under a random split the best trees
    /// have leaves of a few rows (see `validation`). Every drawn value is
    /// inside its declared range.
    pub fn sample(&self, rng: &mut StdRng) -> Self {
        let max_depth = rng.random_range(3..=12usize);
        BoostingParams {
            iterations: self.iterations,
            learning_rate: log_uniform(rng, 0.02, 0.3),
            max_depth,
            max_leaves: rng.random_range(8..=(1usize << max_depth).min(256)),
            min_leaf_weight: log_uniform(rng, 1.0, 300.0).round(),
            l2: log_uniform(rng, 0.1, 30.0),
            gamma: 0.0,
            subsample: rng.random_range(0.5..=1.0),
            colsample_bytree: rng.random_range(0.4..=1.0),
        }
    }
}

/// Draws a value whose logarithm is uniform between those of `low` and `high`.
pub(crate) fn log_uniform(rng: &mut StdRng, low: f64, high: f64) -> f64 {
    rng.random_range(low.ln()..=high.ln()).exp()
}

/// A fitted gradient-boosting model.
#[derive(Serialize, Deserialize)]
#[serde(from = "StoredBooster")]
pub struct BoostingModel {
    /// The forust booster holding the trees and the base score.
    pub booster: GradientBooster,
    /// The trees as compact nodes, built from `booster` once.
    #[serde(skip_serializing)]
    flat: FlatTrees,
}

/// The serialized form of [`BoostingModel`].
#[derive(Deserialize)]
struct StoredBooster {
    booster: GradientBooster,
}

impl From<StoredBooster> for BoostingModel {
    fn from(stored: StoredBooster) -> Self {
        BoostingModel::new(stored.booster)
    }
}

/// The `feature` value that marks a leaf of a [`FlatTrees`] node.
const FLAT_LEAF: u32 = u32::MAX;

/// One node of a [`FlatTrees`]: 24 bytes against 80 for forust's `Node`, so
/// that a request walks fewer cache lines.
#[derive(Debug, Clone, Copy)]
struct FlatNode {
    /// The split value of a split node, or the value of a leaf.
    value: f64,
    /// The split feature, or `FLAT_LEAF`.
    feature: u32,
    /// The child for values below `value`.
    left: u32,
    /// The child for other values.
    right: u32,
    /// The child for a missing (NaN) value.
    missing: u32,
}

/// Every tree's nodes in one array, with each tree's root position.
#[derive(Debug, Clone, Default)]
struct FlatTrees {
    nodes: Vec<FlatNode>,
    roots: Vec<u32>,
}

impl FlatTrees {
    fn new(booster: &GradientBooster) -> Self {
        let mut flat = FlatTrees::default();
        for tree in &booster.trees {
            let offset = flat.nodes.len() as u32;
            flat.roots.push(offset);
            // forust numbers nodes by position in `tree.nodes`, so child
            // numbers only need the tree's offset.
            flat.nodes.extend(tree.nodes.iter().map(|node| {
                if node.is_leaf {
                    FlatNode {
                        value: f64::from(node.weight_value),
                        feature: FLAT_LEAF,
                        left: 0,
                        right: 0,
                        missing: 0,
                    }
                } else {
                    FlatNode {
                        value: node.split_value,
                        feature: node.split_feature as u32,
                        left: offset + node.left_child as u32,
                        right: offset + node.right_child as u32,
                        missing: offset + node.missing_node as u32,
                    }
                }
            }));
        }
        flat
    }

    /// Walks tree `root` for `row` with forust's rule: a missing value takes
    /// the missing branch, a value below the split value goes left.
    fn leaf_value(&self, root: u32, row: &[f64]) -> f64 {
        let mut node = &self.nodes[root as usize];
        while node.feature != FLAT_LEAF {
            let value = row[node.feature as usize];
            let next = if value.is_nan() {
                node.missing
            } else if value < node.value {
                node.left
            } else {
                node.right
            };
            node = &self.nodes[next as usize];
        }
        node.value
    }
}

impl BoostingModel {
    /// Wraps a fitted booster whose missing value is NaN, as this module
    /// trains them.
    pub fn new(booster: GradientBooster) -> Self {
        let flat = FlatTrees::new(&booster);
        BoostingModel { booster, flat }
    }
}

impl RowModel for BoostingModel {
    fn predict_row(&self, row: &[f64]) -> f64 {
        // Summed in tree order from the base score, as forust's `predict`
        // does, so both give the same value.
        let mut prediction = self.booster.base_score;
        for &root in &self.flat.roots {
            prediction += self.flat.leaf_value(root, row);
        }
        prediction
    }

    fn importance(&self, encoder: &FeatureEncoder) -> Vec<f64> {
        let gains = self
            .booster
            .calculate_feature_importance(ImportanceMethod::TotalGain, false);
        (0..encoder.features.len())
            .map(|j| gains.get(&j).map_or(0.0, |g| f64::from(*g).max(0.0)))
            .collect()
    }
}

/// Fits gradient-boosted trees to `y`, calling `monitor` once per tree.
pub fn train(
    params: &BoostingParams,
    x: &EncodedMatrix,
    y: &[f64],
    seed: u64,
    monitor: &dyn Monitor,
) -> Result<BoostingModel, ModelError> {
    params.validate()?;
    // Run on a rayon worker, as forust's own `fit` does, so that its parallel
    // loops are not each handed over from a blocked outside thread.
    rayon::scope(|_| fit_trees(params, x, y, seed, monitor))
}

fn fit_trees(
    params: &BoostingParams,
    x: &EncodedMatrix,
    y: &[f64],
    seed: u64,
    monitor: &dyn Monitor,
) -> Result<BoostingModel, ModelError> {
    let data = Matrix::new(&x.data, x.rows, x.cols);
    let weights = vec![1.0; x.rows];
    let base_score = SquaredLoss::calc_init(y, &weights);
    let binned = bin_matrix(&data, &weights, NBINS, f64::NAN, true)
        .map_err(|e| ModelError::Training(format!("forust could not bin the features: {e}")))?;
    let bins = Matrix::new(&binned.binned_data, x.rows, x.cols);
    let splitter = MissingImputerSplitter {
        l1: 0.0,
        l2: params.l2 as f32,
        max_delta_step: 0.0,
        gamma: params.gamma as f32,
        min_leaf_weight: params.min_leaf_weight as f32,
        learning_rate: params.learning_rate as f32,
        allow_missing_splits: true,
        constraints_map: ConstraintMap::new(),
    };
    let sampling_rows = params.subsample < 1.0;
    let sample_method = if sampling_rows {
        SampleMethod::Random
    } else {
        SampleMethod::None
    };
    let all_columns: Vec<usize> = (0..x.cols).collect();
    let sampled_columns = ((x.cols as f64 * params.colsample_bytree).floor() as usize).max(1);
    let tiles = TiledBins::new(&bins, &binned.cuts, true);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut yhat = vec![base_score; x.rows];
    let mut trees = Vec::with_capacity(params.iterations);

    for _ in 0..params.iterations {
        monitor.check()?;
        let (grad, hess) = SquaredLoss::calc_grad_hess(y, &yhat, &weights);
        let (rows, excluded) = if sampling_rows {
            sample_rows(&mut rng, x.rows, params.subsample)
        } else {
            (data.index.clone(), Vec::new())
        };
        let columns: Vec<usize> = if params.colsample_bytree < 1.0 {
            let mut chosen = all_columns
                .iter()
                .copied()
                .choose_multiple(&mut rng, sampled_columns);
            chosen.sort_unstable();
            chosen
        } else {
            all_columns.clone()
        };

        let mut tree = Tree::new();
        let tree_rows = tree.fit_with_tiles(
            &bins,
            rows,
            &columns,
            &binned.cuts,
            &grad,
            &hess,
            &splitter,
            params.max_leaves,
            params.max_depth,
            true,
            &sample_method,
            &GrowPolicy::DepthWise,
            Some(&tiles),
        );
        add_tree_predictions(&mut yhat, &tree, tree_rows, excluded, &data);
        trees.push(tree);
        monitor.advance(1);
    }

    let mut booster = GradientBooster::default()
        .set_objective_type(ObjectiveType::SquaredLoss)
        .set_iterations(params.iterations)
        .set_learning_rate(params.learning_rate as f32)
        .set_max_depth(params.max_depth)
        .set_max_leaves(params.max_leaves)
        .set_l2(params.l2 as f32)
        .set_gamma(params.gamma as f32)
        .set_min_leaf_weight(params.min_leaf_weight as f32)
        .set_subsample(params.subsample as f32)
        .set_colsample_bytree(params.colsample_bytree)
        .set_seed(seed)
        .set_base_score(base_score)
        .set_initialize_base_score(false);
    booster.trees = trees;
    Ok(BoostingModel::new(booster))
}

/// Draws each row into the sample with probability `share`; returns the
/// sampled rows and the others, both ascending.
fn sample_rows(rng: &mut StdRng, rows: usize, share: f64) -> (Vec<usize>, Vec<usize>) {
    let mut sampled = Vec::with_capacity((rows as f64 * share) as usize + 1);
    let mut excluded = Vec::with_capacity(rows - sampled.capacity().min(rows));
    for i in 0..rows {
        if rng.random::<f64>() < share {
            sampled.push(i);
        } else {
            excluded.push(i);
        }
    }
    (sampled, excluded)
}

/// Adds a new tree's values to the training predictions. Rows the tree was
/// fitted on take their leaf's value from the partition that `Tree::fit`
/// leaves behind; rows outside the sample walk the tree. When the partition
/// may disagree with the tree's thresholds (`tree_rows` is `None`), every
/// row walks the tree.
fn add_tree_predictions(
    yhat: &mut [f64],
    tree: &Tree,
    tree_rows: Option<TreeRows>,
    excluded: Vec<usize>,
    data: &Matrix<f64>,
) {
    let Some(tree_rows) = tree_rows else {
        let values = tree.predict(data, true, &f64::NAN);
        yhat.iter_mut().zip(values).for_each(|(p, v)| *p += v);
        return;
    };
    for (leaf_rows, value) in tree_rows.leaves(tree) {
        for &i in leaf_rows {
            yhat[i] += value;
        }
    }
    if !excluded.is_empty() {
        let mut rest = Matrix::new(data.data, data.rows, data.cols);
        rest.index = excluded;
        let values = tree.predict(&rest, true, &f64::NAN);
        for (&i, v) in rest.index.iter().zip(values) {
            yhat[i] += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Unmonitored;

    fn synthetic(rows: usize) -> (EncodedMatrix, Vec<f64>) {
        let mut rng = StdRng::seed_from_u64(7);
        let cols = 3;
        let mut data = vec![0.0; rows * cols];
        for v in data.iter_mut() {
            *v = rng.random_range(0.0..10.0);
        }
        let y = (0..rows)
            .map(|i| (data[i] / 2.0_f64).sin() + 0.3 * data[rows + i] + rng.random_range(-0.1..0.1))
            .collect();
        (EncodedMatrix { rows, cols, data }, y)
    }

    #[test]
    fn trees_match_forust_fit() {
        let (x, y) = synthetic(2000);
        let params = BoostingParams {
            iterations: 20,
            subsample: 1.0,
            colsample_bytree: 1.0,
            min_leaf_weight: 5.0,
            ..BoostingParams::default()
        };
        let ours = train(&params, &x, &y, 1, &Unmonitored).unwrap();

        let data = Matrix::new(&x.data, x.rows, x.cols);
        let mut reference = GradientBooster::default()
            .set_objective_type(ObjectiveType::SquaredLoss)
            .set_iterations(params.iterations)
            .set_learning_rate(params.learning_rate as f32)
            .set_max_depth(params.max_depth)
            .set_max_leaves(params.max_leaves)
            .set_l2(params.l2 as f32)
            .set_min_leaf_weight(params.min_leaf_weight as f32)
            .set_initialize_base_score(true);
        reference.fit_unweighted(&data, &y, None).unwrap();

        let expected = reference.predict(&data, false);
        let mut row = vec![0.0; x.cols];
        for (i, want) in expected.iter().enumerate() {
            x.copy_row(i, &mut row);
            assert_eq!(ours.predict_row(&row), *want, "row {i}");
        }
    }

    #[test]
    fn flat_trees_match_forust_walk() {
        let (x, y) = synthetic(1000);
        let params = BoostingParams {
            iterations: 30,
            ..BoostingParams::default()
        };
        let model = train(&params, &x, &y, 5, &Unmonitored).unwrap();
        let json = serde_json::to_string(&model).unwrap();
        let decoded: BoostingModel = serde_json::from_str(&json).unwrap();
        let mut row = vec![0.0; x.cols];
        for i in 0..x.rows {
            x.copy_row(i, &mut row);
            if i % 3 == 0 {
                row[i % x.cols] = f64::NAN;
            }
            let mut expected = model.booster.base_score;
            for tree in &model.booster.trees {
                expected += tree.predict_row_from_row_slice(&row, &f64::NAN);
            }
            assert_eq!(model.predict_row(&row), expected, "row {i}");
            assert_eq!(decoded.predict_row(&row), expected, "decoded, row {i}");
        }
    }

    #[test]
    fn sampling_is_seeded() {
        let (x, y) = synthetic(500);
        let params = BoostingParams {
            iterations: 10,
            ..BoostingParams::default()
        };
        let a = train(&params, &x, &y, 3, &Unmonitored).unwrap();
        let b = train(&params, &x, &y, 3, &Unmonitored).unwrap();
        let c = train(&params, &x, &y, 4, &Unmonitored).unwrap();
        let mut row = vec![0.0; x.cols];
        let mut differs = false;
        for i in 0..x.rows {
            x.copy_row(i, &mut row);
            assert_eq!(a.predict_row(&row), b.predict_row(&row));
            differs |= a.predict_row(&row) != c.predict_row(&row);
        }
        assert!(differs, "another seed should sample other rows");
    }

    #[test]
    fn invalid_learning_rate_rejected() {
        let params = BoostingParams {
            learning_rate: 0.0,
            ..BoostingParams::default()
        };
        let error = params.validate().unwrap_err();
        assert!(error.to_string().contains("`learning_rate`"), "{error}");
    }
}
