//! The `ingest_data` step: reads the Olist tables from a folder of Kaggle
//! CSV files and joins them into one `orders` table.
//!
//! # Files and columns
//!
//! Each table is `<file>.csv` or `<file>.csv.gz` in `data_dir`. Only the
//! columns listed in [`schema`] are read, which keeps memory low:
//!
//! | file | columns kept |
//! |---|---|
//! | olist_orders_dataset | order_id, customer_id (join key only), order_status and the five order timestamps |
//! | olist_order_items_dataset | order_id, order_item_id, product_id, seller_id, shipping_limit_date, price, freight_value |
//! | olist_order_payments_dataset | order_id, payment_sequential, payment_type, payment_installments, payment_value |
//! | olist_order_reviews_dataset | order_id, review_score, review_creation_date, review_answer_timestamp |
//! | olist_products_dataset | product_id, product_category_name and the seven size columns |
//! | olist_customers_dataset | customer_id, customer_state |
//! | olist_sellers_dataset | seller_id, seller_state |
//! | product_category_name_translation | product_category_name, product_category_name_english |
//!
//! Some columns are left out of the joined table on purpose, because each
//! text column costs about 7 MB on the full data and no step uses them. They
//! are the review title and message (free text, large, not features),
//! `review_id`, `customer_id` (Olist issues one per order, so it repeats
//! `order_id`), `customer_unique_id`, and the zip code prefixes and cities
//! of customers and sellers.
//!
//! Column names keep the Kaggle spelling (`product_name_lenght`). Numbers
//! are Float64, and timestamps are Float64 seconds since the Unix epoch,
//! read as UTC. An empty numeric or timestamp field is NaN. Ids and text
//! are Utf8, and an empty text field is missing (`None`).
//!
//! # Bad values
//!
//! A number or timestamp that does not parse fails the step with the file,
//! the line and the column. Nothing is dropped or replaced silently, and an
//! empty field is the only way to write a missing value.
//!
//! # The join
//!
//! See [`join`]: inner joins of orders, items, payments, reviews, products
//! and customers, left joins of sellers and the category translation. On the
//! full Kaggle data it gives 117,329 rows.
//!
//! # Cost
//!
//! The eight files are read in parallel with rayon, each by a single task,
//! and joined with hash indexes. On the full data (28 MB of gzip, 64 MB of
//! CSV), the `ingest_olist` example with `--ingest-only` in a release build
//! used 0.65 s of CPU and peaked at 93 MB resident (`/usr/bin/time -v`, on a
//! 2-core AMD EPYC virtual machine). Its wall time was 0.9-1.1 s while other
//! builds kept the load average near 4.
//!
//! The step never writes files and never reads anything outside `data_dir`.

mod error;
mod join;
mod reader;
mod schema;
pub(crate) mod timestamp;

pub use error::IngestError;

use flowrun_artifacts::{Artifact, ArtifactKind, Table};
use flowrun_engine::{
    ParamSpec, ParamType, ParamValue, Registry, Step, StepContext, StepError, StepOutputs,
    StepSignature,
};
use rayon::prelude::*;
use reader::TextEncoding;
use std::path::Path;
use std::time::Instant;

/// The result of [`ingest`]: the joined table and the row count of each
/// file read.
#[derive(Debug)]
pub struct Ingested {
    /// The joined `orders` table.
    pub orders: Table,
    /// Each file's short name (`orders`, `order_items`, ...) and its number
    /// of data rows, in the order the files are listed in the module doc.
    pub table_rows: Vec<(&'static str, usize)>,
}

/// Reads the Olist tables in `data_dir` and joins them.
///
/// `encoding` is `utf-8`, `latin-1` or `windows-1252` (the last two are
/// read the same way).
pub fn ingest(data_dir: &Path, encoding: &str) -> Result<Ingested, IngestError> {
    let encoding = TextEncoding::from_label(encoding)?;
    let tables = schema::TABLES
        .par_iter()
        .map(|spec| reader::read_table(data_dir, spec, encoding))
        .collect::<Result<Vec<_>, _>>()?;

    let table_rows = tables.iter().map(|t| (t.spec.name, t.rows)).collect();
    let orders = join::join(tables);
    Ok(Ingested { orders, table_rows })
}

/// The `ingest_data` step.
pub struct IngestData {
    signature: StepSignature,
}

impl IngestData {
    /// Creates the step with its signature.
    pub fn new() -> Self {
        let signature = StepSignature::new(
            "ingest_data",
            "Read the Olist Kaggle CSV files (plain or gzip) and join them into one orders table",
        )
        // The files' contents enter the cache key, so edited data re-runs
        // the pipeline even though the folder name is the same.
        .param(
            ParamSpec::required(
                "data_dir",
                ParamType::Path,
                "folder of the Kaggle CSV files, each name.csv or name.csv.gz",
            )
            .hash_contents(),
        )
        .param(
            ParamSpec::optional(
                "encoding",
                ParamType::String,
                ParamValue::String("utf-8".to_string()),
                "text encoding of the files: utf-8, or latin-1 / windows-1252",
            )
            .with_choices(TextEncoding::NAMES),
        )
        .output(
            "orders",
            ArtifactKind::Table,
            "one row per order, item, payment and review, with product, customer, seller and category columns",
        );
        IngestData { signature }
    }
}

impl Default for IngestData {
    fn default() -> Self {
        Self::new()
    }
}

impl Step for IngestData {
    fn signature(&self) -> &StepSignature {
        &self.signature
    }

    fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutputs, StepError> {
        let data_dir = Path::new(ctx.param_str("data_dir")?);
        let encoding = ctx.param_str("encoding")?;
        ctx.check_cancelled()?;

        let started = Instant::now();
        let ingested =
            ingest(data_dir, encoding).map_err(|error| StepError::failed(error.to_string()))?;
        for (name, rows) in &ingested.table_rows {
            ctx.log_metric(&format!("rows_{name}"), *rows as f64);
        }
        let joined = ingested.orders.num_rows();
        ctx.log_metric("rows_joined", joined as f64);
        tracing::info!(
            data_dir = %data_dir.display(),
            rows = joined,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "ingested the Olist tables"
        );

        ctx.check_cancelled()?;
        Ok(StepOutputs::new().with("orders", Artifact::Table(ingested.orders)))
    }
}

/// Registers `ingest_data`.
pub fn register(registry: &mut Registry) {
    registry.register(IngestData::new(), flowrun_engine::code_fingerprint!());
}
