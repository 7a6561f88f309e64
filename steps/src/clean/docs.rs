//! Human-readable documentation of every feature `clean_data` produces: a
//! label a business user understands, the unit and a one-sentence help
//! text. `train_model` copies the entries of a model's features into
//! `Model.info["feature_docs"]`, so that a form built from a model can
//! label its inputs without knowing the feature sets.
//!
//! This table is the only place feature documentation is kept. A test
//! checks that every feature of every set has an entry. The module never
//! computes a feature.

use serde::Serialize;

/// The documentation of one feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FeatureDoc {
    /// The column name.
    #[serde(skip)]
    pub name: &'static str,
    /// A short label for a form field.
    pub label: &'static str,
    /// The unit of a numeric value, or an empty string for counts without
    /// a unit, flags and categories.
    pub unit: &'static str,
    /// One sentence on what the value means.
    pub help: &'static str,
}

const fn doc(
    name: &'static str,
    label: &'static str,
    unit: &'static str,
    help: &'static str,
) -> FeatureDoc {
    FeatureDoc {
        name,
        label,
        unit,
        help,
    }
}

/// The documentation of every feature of every feature set.
pub const FEATURE_DOCS: &[FeatureDoc] = &[
    // The basic features, one per item and payment row.
    doc(
        "price",
        "Item price",
        "BRL",
        "Price of this item, without freight.",
    ),
    doc(
        "freight_value",
        "Freight value",
        "BRL",
        "Freight charged for this item.",
    ),
    doc(
        "payment_sequential",
        "Payment number",
        "",
        "Position of this payment among the order's payments, from 1.",
    ),
    doc(
        "payment_installments",
        "Payment installments",
        "",
        "Number of installments the customer chose for this payment.",
    ),
    doc(
        "payment_value",
        "Payment value",
        "BRL",
        "Amount of this payment.",
    ),
    doc(
        "product_name_lenght",
        "Product name length",
        "characters",
        "Length of the product's name in the catalogue.",
    ),
    doc(
        "product_description_lenght",
        "Product description length",
        "characters",
        "Length of the product's description in the catalogue.",
    ),
    doc(
        "product_photos_qty",
        "Product photos",
        "",
        "Number of photos of the product in the catalogue.",
    ),
    doc(
        "product_weight_g",
        "Product weight",
        "g",
        "Weight of the product.",
    ),
    doc(
        "product_length_cm",
        "Product length",
        "cm",
        "Length of the product's package.",
    ),
    doc(
        "product_height_cm",
        "Product height",
        "cm",
        "Height of the product's package.",
    ),
    doc(
        "product_width_cm",
        "Product width",
        "cm",
        "Width of the product's package.",
    ),
    // What is known when the order is placed.
    doc(
        "promised_delivery_days",
        "Promised delivery time",
        "days",
        "Days from purchase to the delivery date promised to the customer.",
    ),
    doc(
        "order_item_count",
        "Items in the order",
        "",
        "Number of items in the whole order.",
    ),
    doc(
        "order_seller_count",
        "Sellers in the order",
        "",
        "Number of different sellers that ship the order's items.",
    ),
    doc(
        "freight_price_ratio",
        "Freight to price ratio",
        "",
        "Freight of this item divided by its price.",
    ),
    doc(
        "same_state",
        "Seller in customer's state",
        "1 = yes, 0 = no",
        "Whether the seller ships from the customer's own state.",
    ),
    doc(
        "purchase_month",
        "Purchase month",
        "1-12",
        "Calendar month of the purchase.",
    ),
    doc(
        "purchase_weekday",
        "Purchase weekday",
        "0 = Monday … 6 = Sunday",
        "Day of the week of the purchase.",
    ),
    doc(
        "product_category",
        "Product category",
        "",
        "Catalogue category of the product, in English where a translation exists.",
    ),
    doc(
        "customer_state",
        "Customer state",
        "",
        "Brazilian state of the delivery address, as a two-letter code such as SP.",
    ),
    doc(
        "seller_state",
        "Seller state",
        "",
        "Brazilian state the seller ships from, as a two-letter code such as SP.",
    ),
    doc(
        "payment_type",
        "Payment type",
        "",
        "How this payment was made: credit_card, boleto, voucher or debit_card.",
    ),
    doc(
        "purchase_timestamp",
        "Purchase time",
        "seconds since 1970-01-01 00:00",
        "Date and time the order was placed, in Brazilian local time counted as if it were UTC.",
    ),
    doc(
        "seller_id",
        "Seller",
        "",
        "Olist id of the seller; the model uses the seller's mean review score in training.",
    ),
    // What is known once the parcel arrives.
    doc(
        "delivery_delay_days",
        "Delivery delay",
        "days",
        "Days between the promised and the actual delivery date; negative when early.",
    ),
    doc(
        "delivery_days",
        "Delivery time",
        "days",
        "Days from purchase to delivery to the customer.",
    ),
    doc(
        "delivered",
        "Delivered",
        "1 = yes, 0 = no",
        "Whether the order reached the status delivered.",
    ),
    doc(
        "carrier_handover_days",
        "Time to carrier",
        "days",
        "Days from purchase until the seller handed the parcel to the carrier.",
    ),
];

/// Returns the documentation of a feature, or `None` for a column that no
/// feature set produces.
pub fn feature_doc(name: &str) -> Option<&'static FeatureDoc> {
    FEATURE_DOCS.iter().find(|doc| doc.name == name)
}

/// Returns the documentation of the named features that have any, as a
/// JSON object from feature name to `{"label", "unit", "help"}`.
pub fn docs_json<'a>(names: impl IntoIterator<Item = &'a str>) -> serde_json::Value {
    names
        .into_iter()
        .filter_map(|name| {
            let doc = feature_doc(name)?;
            let value = serde_json::to_value(doc).expect("feature docs serialize to JSON");
            Some((name.to_string(), value))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clean::FeatureSet;

    #[test]
    fn every_feature_documented() {
        for set in FeatureSet::ALL {
            for name in set.columns() {
                let doc = feature_doc(name).unwrap_or_else(|| panic!("{name} has no doc"));
                assert!(!doc.label.is_empty(), "{name} has no label");
                assert!(!doc.help.is_empty(), "{name} has no help");
                assert!(doc.help.ends_with('.'), "{name}: help is not a sentence");
            }
        }
    }

    #[test]
    fn docs_listed_once() {
        for (i, doc) in FEATURE_DOCS.iter().enumerate() {
            assert!(
                FEATURE_DOCS[..i].iter().all(|other| other.name != doc.name),
                "{} is documented twice",
                doc.name
            );
        }
    }

    #[test]
    fn every_doc_names_a_feature() {
        let all = FeatureSet::PostDelivery.columns();
        for doc in FEATURE_DOCS {
            assert!(all.contains(&doc.name), "{} is no feature", doc.name);
        }
    }

    #[test]
    fn json_skips_undocumented_columns() {
        let json = docs_json(["freight_value", "my_own_column"]);
        assert_eq!(json["freight_value"]["label"], "Freight value");
        assert_eq!(json["freight_value"]["unit"], "BRL");
        assert!(json.get("my_own_column").is_none());
        assert!(json["freight_value"].get("name").is_none());
    }
}
