//! Rebuilds the shipped Olist sample (`data/olist-sample/`) from the full
//! Kaggle tables.
//!
//! Run from the repository root:
//!
//! ```text
//! cargo run --release -p flowrun-steps --example make_sample -- ../shared/data/olist data/olist-sample
//! ```
//!
//! The sample keeps every row of the orders whose id passes [`keep_order`]
//! (a hash rule, so the choice is reproducible in any language and needs no
//! random seed), the items, payments and reviews of those orders, the
//! customers, products and sellers they reference, and the whole category
//! translation. Records are copied byte for byte from the input, so quoting,
//! line ends and the translation file's byte-order mark stay as Kaggle wrote
//! them. Output files are gzip with no name and a zero timestamp in the
//! header, so a rebuild from the same input gives the same bytes.
//!
//! The data is the Brazilian E-Commerce Public Dataset by Olist, licensed
//! CC BY-NC-SA 4.0, and the sample inherits that licence.

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use std::collections::HashSet;
use std::error::Error;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// An order is selected when the FNV-1a hash of its id, modulo this, is below
/// [`KEEP_BELOW`]. Of the 99,441 orders, that keeps 3,518 (3.5 %).
const HASH_MODULUS: u64 = 1000;
const KEEP_BELOW: u64 = 35;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Returns the 64-bit FNV-1a hash of `bytes`. Written out because the rule
/// must be easy to reproduce outside Rust: FNV-1a is a two-line loop with
/// published constants (offset basis 0xcbf29ce484222325, prime
/// 0x100000001b3).
fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Returns whether an order belongs in the sample.
fn keep_order(order_id: &str) -> bool {
    fnv1a_64(order_id.as_bytes()) % HASH_MODULUS < KEEP_BELOW
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        return Err("usage: make_sample <full data folder> <sample folder>".into());
    };
    let (input, output) = (Path::new(input), Path::new(output));
    std::fs::create_dir_all(output)
        .map_err(|e| format!("failed to create {}: {e}", output.display()))?;

    let mut orders = HashSet::new();
    let mut customers = HashSet::new();
    let orders_kept = filter_table(input, output, "olist_orders_dataset", |row| {
        let keep = keep_order(row.get("order_id")?);
        if keep {
            orders.insert(row.get("order_id")?.to_string());
            customers.insert(row.get("customer_id")?.to_string());
        }
        Ok(keep)
    })?;

    let mut products = HashSet::new();
    let mut sellers = HashSet::new();
    filter_table(input, output, "olist_order_items_dataset", |row| {
        let keep = orders.contains(row.get("order_id")?);
        if keep {
            products.insert(row.get("product_id")?.to_string());
            sellers.insert(row.get("seller_id")?.to_string());
        }
        Ok(keep)
    })?;
    for file in [
        "olist_order_payments_dataset",
        "olist_order_reviews_dataset",
    ] {
        filter_table(input, output, file, |row| {
            Ok(orders.contains(row.get("order_id")?))
        })?;
    }

    filter_table(input, output, "olist_customers_dataset", |row| {
        Ok(customers.contains(row.get("customer_id")?))
    })?;
    filter_table(input, output, "olist_products_dataset", |row| {
        Ok(products.contains(row.get("product_id")?))
    })?;
    filter_table(input, output, "olist_sellers_dataset", |row| {
        Ok(sellers.contains(row.get("seller_id")?))
    })?;
    filter_table(input, output, "product_category_name_translation", |_| {
        Ok(true)
    })?;

    println!(
        "selected {orders_kept} orders (FNV-1a 64 of order_id mod {HASH_MODULUS} < {KEEP_BELOW})"
    );
    Ok(())
}

/// One record of a table, with its header for lookups by column name.
struct Row<'a> {
    file: &'a str,
    header: &'a csv::ByteRecord,
    record: &'a csv::ByteRecord,
}

impl Row<'_> {
    fn get(&self, column: &str) -> Result<&str> {
        let position = self
            .header
            .iter()
            .position(|name| {
                name.strip_prefix("\u{feff}".as_bytes()).unwrap_or(name) == column.as_bytes()
            })
            .ok_or_else(|| format!("{}: missing column `{column}`", self.file))?;
        Ok(std::str::from_utf8(&self.record[position])?)
    }
}

/// Copies the header and every record of `<file>.csv.gz` for which `keep`
/// returns true into the output folder. Returns the number selected.
fn filter_table(
    input: &Path,
    output: &Path,
    file: &str,
    mut keep: impl FnMut(&Row<'_>) -> Result<bool>,
) -> Result<usize> {
    let source = input.join(format!("{file}.csv.gz"));
    let mut bytes = Vec::new();
    File::open(&source)
        .and_then(|f| MultiGzDecoder::new(f).read_to_end(&mut bytes))
        .map_err(|e| format!("failed to read {}: {e}", source.display()))?;

    // Each record's bytes run from its start to the next record's start,
    // which includes its line end and any quoted line breaks.
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let header = reader.byte_headers()?.clone();
    let mut starts = Vec::new();
    let mut selected = Vec::new();
    let mut record = csv::ByteRecord::new();
    while reader.read_byte_record(&mut record)? {
        let start = record
            .position()
            .expect("csv records carry a position")
            .byte() as usize;
        starts.push(start);
        let row = Row {
            file,
            header: &header,
            record: &record,
        };
        selected.push(keep(&row)?);
    }
    starts.push(bytes.len());

    let target = output.join(format!("{file}.csv.gz"));
    let mut encoder = GzEncoder::new(
        File::create(&target).map_err(|e| format!("failed to create {}: {e}", target.display()))?,
        Compression::best(),
    );
    let header_end = starts.first().copied().unwrap_or(bytes.len());
    encoder.write_all(&bytes[..header_end])?;
    for (i, _) in selected.iter().enumerate().filter(|(_, keep)| **keep) {
        encoder.write_all(&bytes[starts[i]..starts[i + 1]])?;
    }
    encoder.finish()?;

    let count = selected.iter().filter(|keep| **keep).count();
    println!(
        "{}: {count} of {} rows",
        PathBuf::from(&target).display(),
        selected.len()
    );
    Ok(count)
}
