//! Linear regression with a ridge penalty: numeric features standardised to
//! mean 0 and standard deviation 1, categorical features one-hot encoded
//! with one column per training level, and an unpenalised intercept.
//!
//! The fit solves the normal equations `(X'X + alpha I) w = X'y` by Cholesky
//! factorisation with nalgebra. `X'X` is accumulated row by row from each
//! row's non-zero entries (the numeric values, one 1 per categorical
//! feature), which costs rows x (non-zeros)^2 instead of rows x columns^2
//! for the wide one-hot design. The penalty also makes the system solvable
//! although every categorical feature's one-hot columns add up to the
//! intercept column.

use super::encoding::{EncodedMatrix, Encoding, FeatureEncoder};
use super::gradient_boosting::log_uniform;
use super::range::ParamRange;
use super::{ModelError, Monitor, RowModel};
use flowrun_engine::{ParamSpec, ParamValue, StepContext, StepError};
use nalgebra::{DMatrix, DVector};
use rand::rngs::StdRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Rows accumulated per parallel task; fixed so that the sums do not depend
/// on the number of threads.
const ROWS_PER_TASK: usize = 8192;

/// Hyperparameters of linear regression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearParams {
    /// The ridge penalty on every coefficient but the intercept.
    pub ridge_alpha: f64,
}

impl Default for LinearParams {
    fn default() -> Self {
        LinearParams { ridge_alpha: 1.0 }
    }
}

/// The range of `ridge_alpha`.
pub const RIDGE_ALPHA: ParamRange = ParamRange::float("ridge_alpha", 0.0, 1e9);

impl LinearParams {
    /// Checks the penalty against its declared range.
    pub fn validate(&self) -> Result<(), ModelError> {
        RIDGE_ALPHA.check(self.ridge_alpha)?;
        Ok(())
    }

    /// Declares the step parameters, with these defaults and ranges.
    pub fn param_specs() -> Vec<ParamSpec> {
        vec![RIDGE_ALPHA.optional(
            ParamValue::Float(LinearParams::default().ridge_alpha),
            "linear regression: ridge penalty on the standardised coefficients",
        )]
    }

    /// Reads the parameters declared by [`LinearParams::param_specs`].
    pub fn from_step(ctx: &StepContext<'_>) -> Result<Self, StepError> {
        Ok(LinearParams {
            ridge_alpha: RIDGE_ALPHA.read_f64(ctx)?,
        })
    }

    /// Draws a penalty log-uniformly between 0.001 and 1000 for tuning.
    pub fn sample(&self, rng: &mut StdRng) -> Self {
        LinearParams {
            ridge_alpha: log_uniform(rng, 1e-3, 1e3),
        }
    }
}

/// The fitted coefficients of one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Term {
    /// `weight * (value - mean) / scale`.
    Numeric {
        /// The training mean.
        mean: f64,
        /// The training standard deviation, or 1 for a constant feature.
        scale: f64,
        /// The coefficient of the standardised value.
        weight: f64,
    },
    /// `weights[code]`.
    Categorical {
        /// One coefficient per level, in encoding order.
        weights: Vec<f64>,
    },
}

/// A fitted linear model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearModel {
    /// The intercept.
    pub intercept: f64,
    /// One term per feature, in feature order.
    pub terms: Vec<Term>,
    /// Per feature, the standard deviation of its contribution to the
    /// prediction over the training rows.
    pub contribution_sd: Vec<f64>,
}

impl LinearModel {
    fn contribution(&self, j: usize, value: f64) -> f64 {
        match &self.terms[j] {
            Term::Numeric {
                mean,
                scale,
                weight,
            } => weight * (value - mean) / scale,
            Term::Categorical { weights } => weights[value as usize],
        }
    }
}

impl RowModel for LinearModel {
    fn predict_row(&self, row: &[f64]) -> f64 {
        let mut prediction = self.intercept;
        for (j, value) in row.iter().enumerate() {
            prediction += self.contribution(j, *value);
        }
        prediction
    }

    fn importance(&self, _encoder: &FeatureEncoder) -> Vec<f64> {
        self.contribution_sd.clone()
    }
}

/// Where a feature's columns start in the design matrix.
#[derive(Clone, Copy)]
enum Layout {
    Numeric {
        column: usize,
        mean: f64,
        scale: f64,
    },
    Categorical {
        offset: usize,
    },
}

/// Fits ridge regression of `y` on the encoded features.
pub fn train(
    params: &LinearParams,
    encoder: &FeatureEncoder,
    x: &EncodedMatrix,
    y: &[f64],
    monitor: &dyn Monitor,
) -> Result<LinearModel, ModelError> {
    params.validate()?;
    monitor.check()?;

    // Column 0 is the intercept.
    let mut layout = Vec::with_capacity(encoder.features.len());
    let mut width = 1;
    for (j, feature) in encoder.features.iter().enumerate() {
        match &feature.encoding {
            Encoding::Numeric { .. } | Encoding::TargetMean { .. } => {
                let (mean, scale) = mean_and_scale(x.column(j));
                layout.push(Layout::Numeric {
                    column: width,
                    mean,
                    scale,
                });
                width += 1;
            }
            // NOTE: each parallel task accumulates a dense width x width
            // matrix, so a column of thousands of levels (seller_id without
            // target encoding) costs gigabytes. Encode such columns by
            // their target instead.
            Encoding::Categorical { levels, .. } => {
                layout.push(Layout::Categorical { offset: width });
                width += levels.len();
            }
        }
    }

    let (mut gram, xty) = accumulate(&layout, x, y, width);
    for k in 1..width {
        gram[(k, k)] += params.ridge_alpha;
    }
    monitor.check()?;
    let cholesky = gram.cholesky().ok_or_else(|| {
        ModelError::Training(format!(
            "the normal equations are singular with ridge_alpha = {}; set ridge_alpha above 0",
            params.ridge_alpha
        ))
    })?;
    let w = cholesky.solve(&xty);

    let terms = encoder
        .features
        .iter()
        .zip(&layout)
        .map(|(feature, place)| match (place, &feature.encoding) {
            (
                Layout::Numeric {
                    column,
                    mean,
                    scale,
                },
                _,
            ) => Term::Numeric {
                mean: *mean,
                scale: *scale,
                weight: w[*column],
            },
            (Layout::Categorical { offset }, Encoding::Categorical { levels, .. }) => {
                Term::Categorical {
                    weights: w.rows(*offset, levels.len()).iter().copied().collect(),
                }
            }
            (
                Layout::Categorical { .. },
                Encoding::Numeric { .. } | Encoding::TargetMean { .. },
            ) => {
                unreachable!("layout follows the encoding")
            }
        })
        .collect();
    let mut model = LinearModel {
        intercept: w[0],
        terms,
        contribution_sd: Vec::new(),
    };
    model.contribution_sd = (0..x.cols)
        .map(|j| {
            let contributions: Vec<f64> = x
                .column(j)
                .iter()
                .map(|v| model.contribution(j, *v))
                .collect();
            population_sd(&contributions)
        })
        .collect();
    monitor.advance(1);
    Ok(model)
}

/// Returns the mean and the population standard deviation of `values`, or
/// a scale of 1 when they are all equal.
fn mean_and_scale(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = population_sd(values);
    (mean, if sd > 0.0 { sd } else { 1.0 })
}

fn population_sd(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt()
}

/// Accumulates `X'X` and `X'y` over the rows, from each row's non-zeros.
fn accumulate(
    layout: &[Layout],
    x: &EncodedMatrix,
    y: &[f64],
    width: usize,
) -> (DMatrix<f64>, DVector<f64>) {
    let chunk_sums = |start: usize| {
        let end = (start + ROWS_PER_TASK).min(x.rows);
        let mut gram = vec![0.0; width * width];
        let mut xty = vec![0.0; width];
        let mut entries: Vec<(usize, f64)> = Vec::with_capacity(layout.len() + 1);
        for (i, target) in y.iter().enumerate().take(end).skip(start) {
            entries.clear();
            entries.push((0, 1.0));
            for (j, place) in layout.iter().enumerate() {
                let value = x.data[j * x.rows + i];
                entries.push(match *place {
                    Layout::Numeric {
                        column,
                        mean,
                        scale,
                    } => (column, (value - mean) / scale),
                    Layout::Categorical { offset } => (offset + value as usize, 1.0),
                });
            }
            for &(a, va) in &entries {
                xty[a] += va * target;
                for &(b, vb) in &entries {
                    gram[a * width + b] += va * vb;
                }
            }
        }
        (gram, xty)
    };
    let starts: Vec<usize> = (0..x.rows).step_by(ROWS_PER_TASK).collect();
    let parts: Vec<(Vec<f64>, Vec<f64>)> = starts.into_par_iter().map(chunk_sums).collect();
    let mut gram = vec![0.0; width * width];
    let mut xty = vec![0.0; width];
    for (g, v) in parts {
        gram.iter_mut().zip(g).for_each(|(t, p)| *t += p);
        xty.iter_mut().zip(v).for_each(|(t, p)| *t += p);
    }
    (
        DMatrix::from_row_slice(width, width, &gram),
        DVector::from_vec(xty),
    )
}
