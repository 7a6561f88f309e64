//! ingest_data on small hand-made data sets written to a temporary folder:
//! join row counts, CSV dialect, encodings, compression and every input
//! error a user can meet.

use flowrun_artifacts::{Artifact, ColumnData, Table};
use flowrun_engine::{CancelToken, ParamValue, Step, StepContext};
use flowrun_steps::clean::{CleanError, CleanOptions, clean};
use flowrun_steps::ingest::{IngestData, IngestError, ingest};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use tempfile::TempDir;

const ORDERS: &str = "olist_orders_dataset";
const ITEMS: &str = "olist_order_items_dataset";
const PAYMENTS: &str = "olist_order_payments_dataset";
const REVIEWS: &str = "olist_order_reviews_dataset";
const PRODUCTS: &str = "olist_products_dataset";
const CUSTOMERS: &str = "olist_customers_dataset";
const SELLERS: &str = "olist_sellers_dataset";
const TRANSLATION: &str = "product_category_name_translation";

/// The tiny data set, in the Kaggle dialect: quoted headers and ids, CRLF
/// line ends in the reviews file, a byte-order mark on the translation.
///
/// - o1: 2 items (p1 from s1, p2 from s2) and 2 payments, so 4 rows.
/// - o2: 1 item, 1 payment, a review with empty comments, so 1 row.
/// - o3: no review, so no row.
/// - o4: product p3 has an untranslated category and seller s9 is not in
///   the sellers file. Both left joins keep the row, so 1 row.
fn files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            ORDERS,
            b"\"order_id\",\"customer_id\",\"order_status\",\"order_purchase_timestamp\",\"order_approved_at\",\"order_delivered_carrier_date\",\"order_delivered_customer_date\",\"order_estimated_delivery_date\"
o1,\"c1\",delivered,2017-10-02 10:56:33,2017-10-02 11:07:15,2017-10-04 19:55:00,2017-10-10 21:25:13,2017-10-18 00:00:00
o2,\"c2\",delivered,2018-07-24 20:41:37,2018-07-26 03:24:27,2018-07-26 14:31:00,2018-08-07 15:27:45,2018-08-13 00:00:00
o3,\"c3\",shipped,2018-08-08 08:38:49,2018-08-08 08:55:23,2018-08-08 13:50:00,,2018-09-04 00:00:00
o4,\"c4\",canceled,2017-11-18 19:28:06,,,,2017-12-15 00:00:00
"
            .to_vec(),
        ),
        (
            ITEMS,
            b"\"order_id\",\"order_item_id\",\"product_id\",\"seller_id\",\"shipping_limit_date\",\"price\",\"freight_value\"
o1,1,p1,s1,2017-10-06 11:07:15,58.90,13.29
o1,2,p2,s2,2017-10-06 11:07:15,239.90,19.93
o2,1,p1,s1,2018-07-30 03:24:27,199.00,17.87
o3,1,p2,s2,2018-08-13 08:55:23,12.99,12.79
o4,1,p3,s9,2017-11-23 19:28:06,199.90,18.14
"
            .to_vec(),
        ),
        (
            PAYMENTS,
            b"\"order_id\",\"payment_sequential\",\"payment_type\",\"payment_installments\",\"payment_value\"
o1,1,credit_card,8,99.33
o1,2,voucher,1,232.09
o2,1,boleto,1,216.87
o3,1,credit_card,1,25.78
o4,1,debit_card,2,218.04
"
            .to_vec(),
        ),
        (
            REVIEWS,
            b"\"review_id\",\"order_id\",\"review_score\",\"review_comment_title\",\"review_comment_message\",\"review_creation_date\",\"review_answer_timestamp\"\r
\"r1\",\"o1\",4,,\"Chegou antes do prazo,\r
recomendo\",2017-10-11 00:00:00,2017-10-12 03:43:48\r
\"r2\",\"o2\",5,,,2018-08-08 00:00:00,2018-08-08 18:37:50\r
\"r4\",\"o4\",1,Ruim,\"veio \"\"quebrado\"\", quero devolver\",,\r
"
            .to_vec(),
        ),
        (
            PRODUCTS,
            b"\"product_id\",\"product_category_name\",\"product_name_lenght\",\"product_description_lenght\",\"product_photos_qty\",\"product_weight_g\",\"product_length_cm\",\"product_height_cm\",\"product_width_cm\"
\"p1\",perfumaria,40,287,1,225,16,10,14
\"p2\",artes,44,276,1,1000,30,18,20
\"p3\",portateis_cozinha,,,,,,,
"
            .to_vec(),
        ),
        (
            CUSTOMERS,
            b"\"customer_id\",\"customer_unique_id\",\"customer_zip_code_prefix\",\"customer_city\",\"customer_state\"
\"c1\",u1,\"14409\",franca,SP
\"c2\",u2,\"09790\",sao bernardo do campo,SP
\"c3\",u3,\"01151\",sao paulo,SP
\"c4\",u4,\"08775\",mogi das cruzes,RJ
"
            .to_vec(),
        ),
        (
            SELLERS,
            b"\"seller_id\",\"seller_zip_code_prefix\",\"seller_city\",\"seller_state\"
\"s1\",\"13023\",campinas,SP
\"s2\",\"13844\",mogi guacu,MG
"
            .to_vec(),
        ),
        (
            TRANSLATION,
            b"\xEF\xBB\xBFproduct_category_name,product_category_name_english\r
perfumaria,perfumery\r
artes,art\r
"
            .to_vec(),
        ),
    ]
}

/// Writes the data set, replacing the files named in `changes`.
fn write_data(changes: &[(&str, &[u8])]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (file, bytes) in files() {
        let bytes = changes
            .iter()
            .find(|(name, _)| *name == file)
            .map_or(bytes.clone(), |(_, changed)| changed.to_vec());
        std::fs::write(dir.path().join(format!("{file}.csv")), bytes).unwrap();
    }
    dir
}

fn original(file: &str) -> Vec<u8> {
    files()
        .into_iter()
        .find(|(name, _)| *name == file)
        .unwrap()
        .1
}

/// Replaces the first occurrence of `from` in a file of the data set.
fn edited(file: &str, from: &str, to: &[u8]) -> Vec<u8> {
    let bytes = original(file);
    let at = bytes
        .windows(from.len())
        .position(|window| window == from.as_bytes())
        .unwrap_or_else(|| panic!("{from:?} not in {file}"));
    [&bytes[..at], to, &bytes[at + from.len()..]].concat()
}

fn header_only(file: &str) -> Vec<u8> {
    let bytes = original(file);
    let end = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    bytes[..end].to_vec()
}

fn texts<'a>(table: &'a Table, column: &str) -> Vec<Option<&'a str>> {
    table
        .utf8_column(column)
        .unwrap()
        .iter()
        .map(Option::as_deref)
        .collect()
}

/// Asserts that two tables are equal, counting NaN equal to NaN.
fn assert_same_table(left: &Table, right: &Table) {
    assert_eq!(left.column_names(), right.column_names());
    for (a, b) in left.columns().iter().zip(right.columns()) {
        match (&a.data, &b.data) {
            (ColumnData::Float64(x), ColumnData::Float64(y)) => {
                let same = x.len() == y.len()
                    && x.iter()
                        .zip(y)
                        .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()));
                assert!(same, "column {} differs: {x:?} vs {y:?}", a.name);
            }
            (x, y) => assert_eq!(x, y, "column {} differs", a.name),
        }
    }
}

fn error_of(dir: &Path, encoding: &str) -> String {
    ingest(dir, encoding).unwrap_err().to_string()
}

#[test]
fn join_repeats_items_and_payments() {
    let dir = write_data(&[]);
    let ingested = ingest(dir.path(), "utf-8").unwrap();
    let orders = &ingested.orders;

    assert_eq!(orders.num_rows(), 6);
    assert_eq!(
        texts(orders, "order_id"),
        vec![Some("o1"); 4]
            .into_iter()
            .chain([Some("o2"), Some("o4")])
            .collect::<Vec<_>>()
    );
    // Items are the outer loop, payments the inner one.
    assert_eq!(
        texts(orders, "product_id")[..4],
        [Some("p1"), Some("p1"), Some("p2"), Some("p2")]
    );
    assert_eq!(
        texts(orders, "payment_type")[..4],
        [
            Some("credit_card"),
            Some("voucher"),
            Some("credit_card"),
            Some("voucher")
        ]
    );
    assert_eq!(
        ingested.table_rows,
        vec![
            ("orders", 4),
            ("order_items", 5),
            ("order_payments", 5),
            ("order_reviews", 3),
            ("products", 3),
            ("customers", 4),
            ("sellers", 2),
            ("category_translation", 2),
        ]
    );
}

#[test]
fn left_joins_keep_unmatched_rows() {
    let dir = write_data(&[]);
    let orders = ingest(dir.path(), "utf-8").unwrap().orders;
    let last = orders.num_rows() - 1;

    assert_eq!(texts(&orders, "order_id")[last], Some("o4"));
    assert_eq!(
        texts(&orders, "product_category_name")[last],
        Some("portateis_cozinha")
    );
    assert_eq!(texts(&orders, "product_category_name_english")[last], None);
    assert_eq!(texts(&orders, "seller_id")[last], Some("s9"));
    assert_eq!(texts(&orders, "seller_state")[last], None);
    assert_eq!(
        texts(&orders, "product_category_name_english")[0],
        Some("perfumery")
    );
    assert_eq!(texts(&orders, "seller_state")[2], Some("MG"));
}

#[test]
fn values_are_typed() {
    let dir = write_data(&[]);
    let orders = ingest(dir.path(), "utf-8").unwrap().orders;

    for column in orders.columns() {
        let expected = if [
            "order_id",
            "order_status",
            "product_id",
            "seller_id",
            "payment_type",
            "product_category_name",
            "customer_state",
            "seller_state",
            "product_category_name_english",
        ]
        .contains(&column.name.as_str())
        {
            "utf8"
        } else {
            "float64"
        };
        assert_eq!(column.data.type_name(), expected, "{}", column.name);
    }
    for dropped in [
        "review_comment_title",
        "review_comment_message",
        "review_id",
        "customer_id",
        "customer_city",
    ] {
        assert!(orders.column(dropped).is_none(), "{dropped} is kept");
    }

    let purchase = orders.f64_column("order_purchase_timestamp").unwrap();
    assert_eq!(purchase[0], 1_506_941_793.0); // 2017-10-02 10:56:33 UTC
    let price = orders.f64_column("price").unwrap();
    assert_eq!(price[0], 58.90);
    assert_eq!(price[2], 239.90);
    // p3 has no sizes and o4 no delivery dates or review dates.
    let last = orders.num_rows() - 1;
    assert!(orders.f64_column("product_weight_g").unwrap()[last].is_nan());
    assert!(orders.f64_column("order_approved_at").unwrap()[last].is_nan());
    assert!(orders.f64_column("review_creation_date").unwrap()[last].is_nan());
    assert_eq!(orders.f64_column("review_score").unwrap()[last], 1.0);
}

#[test]
fn quoted_comments_keep_reviews_intact() {
    // The first comment has a line break and a comma, the second is empty,
    // and the third has doubled quotes. The fields after each comment must
    // still land in their own columns.
    let dir = write_data(&[]);
    let ingested = ingest(dir.path(), "utf-8").unwrap();
    let reviews = ingested
        .table_rows
        .iter()
        .find(|(name, _)| *name == "order_reviews")
        .unwrap();
    assert_eq!(reviews.1, 3);

    let orders = &ingested.orders;
    let created = orders.f64_column("review_creation_date").unwrap();
    let answered = orders.f64_column("review_answer_timestamp").unwrap();
    assert_eq!(created[0], 1_507_680_000.0); // 2017-10-11 00:00:00
    assert_eq!(answered[0], 1_507_779_828.0); // 2017-10-12 03:43:48
    assert_eq!(created[4], 1_533_686_400.0); // 2018-08-08 00:00:00
    assert_eq!(
        orders.f64_column("review_score").unwrap()[..5],
        [4.0, 4.0, 4.0, 4.0, 5.0]
    );
}

#[test]
fn gzip_files_read_like_plain_ones() {
    let plain = write_data(&[]);
    let compressed = tempfile::tempdir().unwrap();
    for (file, bytes) in files() {
        let path = compressed.path().join(format!("{file}.csv.gz"));
        let mut encoder = flate2::write::GzEncoder::new(
            std::fs::File::create(path).unwrap(),
            flate2::Compression::default(),
        );
        encoder.write_all(&bytes).unwrap();
        encoder.finish().unwrap();
    }
    let from_plain = ingest(plain.path(), "utf-8").unwrap().orders;
    let from_gzip = ingest(compressed.path(), "utf-8").unwrap().orders;
    assert_same_table(&from_plain, &from_gzip);
}

#[test]
fn latin1_needs_declaration() {
    let reviews = edited(REVIEWS, "Ruim", b"Entrega r\xE1pida");
    let dir = write_data(&[(REVIEWS, &reviews)]);

    let message = error_of(dir.path(), "utf-8");
    assert!(
        message.contains("olist_order_reviews_dataset.csv, line 5"),
        "{message}"
    );
    assert!(message.contains("`review_comment_title`"), "{message}");
    assert!(message.contains("invalid UTF-8"), "{message}");
    assert!(
        message.contains("declare `encoding: latin-1` on ingest_data"),
        "{message}"
    );

    let orders = ingest(dir.path(), "latin-1").unwrap().orders;
    assert_eq!(orders.num_rows(), 6);
    let windows = ingest(dir.path(), "windows-1252").unwrap().orders;
    assert_same_table(&orders, &windows);
}

#[test]
fn latin1_text_decoded_in_kept_columns() {
    let sellers = edited(SELLERS, "MG", b"M\xC9");
    let dir = write_data(&[(SELLERS, &sellers)]);
    let orders = ingest(dir.path(), "latin-1").unwrap().orders;
    assert_eq!(texts(&orders, "seller_state")[2], Some("MÉ"));
}

#[test]
fn header_only_gives_no_training_rows() {
    let orders = header_only(ORDERS);
    let dir = write_data(&[(ORDERS, &orders)]);
    let ingested = ingest(dir.path(), "utf-8").unwrap();
    assert_eq!(ingested.orders.num_rows(), 0);
    assert_eq!(ingested.table_rows[0], ("orders", 0));
    assert_eq!(ingested.orders.columns().len(), 31);

    let error = clean(&ingested.orders, &CleanOptions::default()).unwrap_err();
    assert!(matches!(error, CleanError::NoTrainingRows(_)));
    assert!(error.to_string().starts_with("no training rows"), "{error}");
}

#[test]
fn empty_file_missing_header() {
    let dir = write_data(&[(PAYMENTS, b"")]);
    let message = error_of(dir.path(), "utf-8");
    assert!(
        message.contains("olist_order_payments_dataset.csv"),
        "{message}"
    );
    assert!(message.contains("missing header"), "{message}");
    assert!(message.contains("payment_installments"), "{message}");
}

#[test]
fn missing_table_names_file_and_source() {
    let dir = write_data(&[]);
    std::fs::remove_file(dir.path().join(format!("{SELLERS}.csv"))).unwrap();
    let error = ingest(dir.path(), "utf-8").unwrap_err();
    assert!(matches!(error, IngestError::MissingTable { .. }));
    let message = error.to_string();
    assert!(
        message.contains("olist_sellers_dataset.csv or olist_sellers_dataset.csv.gz"),
        "{message}"
    );
    assert!(message.contains("olistbr/brazilian-ecommerce"), "{message}");
}

#[test]
fn plain_and_gzip_twins_rejected() {
    let dir = write_data(&[]);
    std::fs::write(dir.path().join(format!("{SELLERS}.csv.gz")), b"").unwrap();
    let message = error_of(dir.path(), "utf-8");
    assert!(message.contains("both"), "{message}");
    assert!(
        message.contains("olist_sellers_dataset.csv.gz"),
        "{message}"
    );
}

#[test]
fn renamed_column_named() {
    // The Kaggle header misspells "length", so a corrected header is a rename.
    let products = edited(PRODUCTS, "product_name_lenght", b"product_name_length");
    let dir = write_data(&[(PRODUCTS, &products)]);
    let error = ingest(dir.path(), "utf-8").unwrap_err();
    assert!(matches!(error, IngestError::MissingColumn { .. }));
    let message = error.to_string();
    assert!(message.contains("olist_products_dataset.csv"), "{message}");
    assert!(
        message.contains("missing column `product_name_lenght`"),
        "{message}"
    );
    assert!(message.contains("product_name_length"), "{message}");
}

#[test]
fn text_in_numeric_column_named() {
    let items = edited(ITEMS, "239.90", b"239,90");
    let dir = write_data(&[(ITEMS, &items)]);
    let message = error_of(dir.path(), "utf-8");
    // The unquoted comma adds a field, which the CSV reader reports.
    assert!(
        message.contains("olist_order_items_dataset.csv, line 3"),
        "{message}"
    );
    assert!(
        message.contains("8 fields but the header has 7"),
        "{message}"
    );

    let items = edited(ITEMS, "239.90", b"about 240");
    let dir = write_data(&[(ITEMS, &items)]);
    let error = ingest(dir.path(), "utf-8").unwrap_err();
    assert!(matches!(error, IngestError::InvalidNumber { line: 3, .. }));
    let message = error.to_string();
    assert!(
        message.contains("olist_order_items_dataset.csv, line 3, column `price`"),
        "{message}"
    );
    assert!(message.contains("`about 240` is not a number"), "{message}");
}

#[test]
fn bad_timestamp_named() {
    // Line 4 because the first review's comment spans lines 2 and 3.
    let reviews = edited(REVIEWS, "2018-08-08 00:00:00", b"08/08/2018");
    let dir = write_data(&[(REVIEWS, &reviews)]);
    let error = ingest(dir.path(), "utf-8").unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("olist_order_reviews_dataset.csv, line 4, column `review_creation_date`"),
        "{message}"
    );
    assert!(message.contains("YYYY-MM-DD HH:MM:SS"), "{message}");
}

#[test]
fn unsupported_encoding_lists_choices() {
    let dir = write_data(&[]);
    let message = error_of(dir.path(), "ebcdic");
    assert!(
        message.contains("unsupported encoding `ebcdic`"),
        "{message}"
    );
    assert!(
        message.contains("utf-8, latin-1, windows-1252"),
        "{message}"
    );
}

#[test]
fn step_outputs_orders_table() {
    let dir = write_data(&[]);
    let params = BTreeMap::from([
        (
            "data_dir".to_string(),
            ParamValue::String(dir.path().display().to_string()),
        ),
        ("encoding".to_string(), ParamValue::String("utf-8".into())),
    ]);
    let inputs = BTreeMap::new();
    let cancel = CancelToken::new();
    let ctx = StepContext::standalone("ingest", &params, &inputs, &cancel, dir.path());

    let step = IngestData::new();
    assert_eq!(step.signature().name, "ingest_data");
    let outputs = step.run(&ctx).unwrap();
    let Some(Artifact::Table(orders)) = outputs.artifacts.get("orders") else {
        panic!("no orders table in {:?}", outputs.artifacts.keys());
    };
    assert_eq!(orders.num_rows(), 6);
    assert!(matches!(
        orders.column("price").unwrap().data,
        ColumnData::Float64(_)
    ));
}

#[test]
fn step_error_names_missing_folder() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let params = BTreeMap::from([
        (
            "data_dir".to_string(),
            ParamValue::String(missing.display().to_string()),
        ),
        ("encoding".to_string(), ParamValue::String("utf-8".into())),
    ]);
    let inputs = BTreeMap::new();
    let cancel = CancelToken::new();
    let ctx = StepContext::standalone("ingest", &params, &inputs, &cancel, dir.path());
    let error = IngestData::new().run(&ctx).unwrap_err().to_string();
    assert!(error.contains("nowhere"), "{error}");
    assert!(error.contains("not found"), "{error}");
}
