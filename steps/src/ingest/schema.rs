//! The Kaggle files ingest_data reads, the columns it keeps from each, and
//! the columns of the joined table.
//!
//! This module only describes the files and never reads one. Adding a column to
//! the joined table means adding it to its file's spec here and to
//! [`OUTPUT_COLUMNS`].

/// The type a field's text is parsed into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueKind {
    /// Kept as text. An empty field is missing.
    Text,
    /// A decimal number. An empty field is missing (NaN).
    Number,
    /// `YYYY-MM-DD HH:MM:SS`, stored as seconds since the Unix epoch. An
    /// empty field is missing (NaN).
    Timestamp,
}

/// A column to keep from a file.
#[derive(Debug)]
pub(crate) struct ColumnSpec {
    /// The header name, spelled as in the Kaggle file.
    pub(crate) name: &'static str,
    pub(crate) kind: ValueKind,
}

/// One Kaggle file and the columns kept from it.
#[derive(Debug)]
pub(crate) struct TableSpec {
    /// The file name without `.csv` or `.csv.gz`.
    pub(crate) file: &'static str,
    /// The short name used in metrics (`rows_<name>`).
    pub(crate) name: &'static str,
    pub(crate) columns: &'static [ColumnSpec],
}

impl TableSpec {
    /// Returns the position of a kept column.
    ///
    /// # Panics
    /// Panics when the column is not kept, which is a mistake in this
    /// module's tables rather than in the data.
    pub(crate) fn position(&self, column: &str) -> usize {
        self.columns
            .iter()
            .position(|c| c.name == column)
            .unwrap_or_else(|| panic!("column `{column}` is not kept from {}", self.file))
    }
}

const fn text(name: &'static str) -> ColumnSpec {
    ColumnSpec {
        name,
        kind: ValueKind::Text,
    }
}

const fn number(name: &'static str) -> ColumnSpec {
    ColumnSpec {
        name,
        kind: ValueKind::Number,
    }
}

const fn timestamp(name: &'static str) -> ColumnSpec {
    ColumnSpec {
        name,
        kind: ValueKind::Timestamp,
    }
}

/// The role of each file in the join, also its index in [`TABLES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Orders = 0,
    Items = 1,
    Payments = 2,
    Reviews = 3,
    Products = 4,
    Customers = 5,
    Sellers = 6,
    Translation = 7,
}

/// Every file read, in [`Source`] order.
pub(crate) static TABLES: [TableSpec; 8] = [
    TableSpec {
        file: "olist_orders_dataset",
        name: "orders",
        columns: &[
            text("order_id"),
            text("customer_id"),
            text("order_status"),
            timestamp("order_purchase_timestamp"),
            timestamp("order_approved_at"),
            timestamp("order_delivered_carrier_date"),
            timestamp("order_delivered_customer_date"),
            timestamp("order_estimated_delivery_date"),
        ],
    },
    TableSpec {
        file: "olist_order_items_dataset",
        name: "order_items",
        columns: &[
            text("order_id"),
            number("order_item_id"),
            text("product_id"),
            text("seller_id"),
            timestamp("shipping_limit_date"),
            number("price"),
            number("freight_value"),
        ],
    },
    TableSpec {
        file: "olist_order_payments_dataset",
        name: "order_payments",
        columns: &[
            text("order_id"),
            number("payment_sequential"),
            text("payment_type"),
            number("payment_installments"),
            number("payment_value"),
        ],
    },
    TableSpec {
        file: "olist_order_reviews_dataset",
        name: "order_reviews",
        columns: &[
            text("order_id"),
            number("review_score"),
            timestamp("review_creation_date"),
            timestamp("review_answer_timestamp"),
        ],
    },
    TableSpec {
        file: "olist_products_dataset",
        name: "products",
        columns: &[
            text("product_id"),
            text("product_category_name"),
            number("product_name_lenght"),
            number("product_description_lenght"),
            number("product_photos_qty"),
            number("product_weight_g"),
            number("product_length_cm"),
            number("product_height_cm"),
            number("product_width_cm"),
        ],
    },
    TableSpec {
        file: "olist_customers_dataset",
        name: "customers",
        columns: &[text("customer_id"), text("customer_state")],
    },
    TableSpec {
        file: "olist_sellers_dataset",
        name: "sellers",
        columns: &[text("seller_id"), text("seller_state")],
    },
    TableSpec {
        file: "product_category_name_translation",
        name: "category_translation",
        columns: &[
            text("product_category_name"),
            text("product_category_name_english"),
        ],
    },
];

/// The columns of the joined table in order, each taken from one file.
/// Join keys appear once, from the first file that has them.
pub(crate) static OUTPUT_COLUMNS: &[(Source, &str)] = &[
    (Source::Orders, "order_id"),
    (Source::Orders, "order_status"),
    (Source::Orders, "order_purchase_timestamp"),
    (Source::Orders, "order_approved_at"),
    (Source::Orders, "order_delivered_carrier_date"),
    (Source::Orders, "order_delivered_customer_date"),
    (Source::Orders, "order_estimated_delivery_date"),
    (Source::Items, "order_item_id"),
    (Source::Items, "product_id"),
    (Source::Items, "seller_id"),
    (Source::Items, "shipping_limit_date"),
    (Source::Items, "price"),
    (Source::Items, "freight_value"),
    (Source::Payments, "payment_sequential"),
    (Source::Payments, "payment_type"),
    (Source::Payments, "payment_installments"),
    (Source::Payments, "payment_value"),
    (Source::Reviews, "review_score"),
    (Source::Reviews, "review_creation_date"),
    (Source::Reviews, "review_answer_timestamp"),
    (Source::Products, "product_category_name"),
    (Source::Products, "product_name_lenght"),
    (Source::Products, "product_description_lenght"),
    (Source::Products, "product_photos_qty"),
    (Source::Products, "product_weight_g"),
    (Source::Products, "product_length_cm"),
    (Source::Products, "product_height_cm"),
    (Source::Products, "product_width_cm"),
    (Source::Customers, "customer_state"),
    (Source::Sellers, "seller_state"),
    (Source::Translation, "product_category_name_english"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_columns_are_kept_and_unique() {
        for (i, (source, name)) in OUTPUT_COLUMNS.iter().enumerate() {
            let table = &TABLES[*source as usize];
            assert!(
                table.columns.iter().any(|c| c.name == *name),
                "{name} is not kept from {}",
                table.file
            );
            assert!(
                OUTPUT_COLUMNS[..i].iter().all(|(_, other)| other != name),
                "{name} appears twice"
            );
        }
    }

    #[test]
    fn sources_index_their_tables() {
        assert_eq!(TABLES[Source::Orders as usize].name, "orders");
        assert_eq!(TABLES[Source::Items as usize].name, "order_items");
        assert_eq!(TABLES[Source::Payments as usize].name, "order_payments");
        assert_eq!(TABLES[Source::Reviews as usize].name, "order_reviews");
        assert_eq!(TABLES[Source::Products as usize].name, "products");
        assert_eq!(TABLES[Source::Customers as usize].name, "customers");
        assert_eq!(TABLES[Source::Sellers as usize].name, "sellers");
        assert_eq!(
            TABLES[Source::Translation as usize].name,
            "category_translation"
        );
    }
}
