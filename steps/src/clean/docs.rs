//! Human-readable documentation of every feature `clean_data` produces: a
//! label a business user understands, the unit, a one-sentence help text
//! and, where the meaning of the feature limits its values, the domain of
//! valid values (months 1 to 12, 0/1 flags, counts that are whole and not
//! negative). `train_model` copies the entries of a model's features into
//! `Model.info["feature_docs"]`, so that a form built from a model can
//! label and check its inputs without knowing the feature sets.
//!
//! A domain states what the value can be in the world, not what training
//! saw: a purchase month of 12 is valid even when the training data held
//! only March. Features without a natural limit (day differences, which
//! can be negative, or the purchase timestamp) have no domain.
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
    /// The values the feature can take, when its meaning limits them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<Domain>,
}

/// The valid values of a numeric feature, whatever the training data held.
///
/// Serialized as `{"min", "max", "integer", "rule"}`, with `max` left out
/// when the feature has no natural maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Domain {
    /// The smallest valid value.
    pub min: i64,
    /// The largest valid value, or `None` when there is no natural maximum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    /// Whether only whole numbers are valid.
    pub integer: bool,
    /// One sentence that states the domain, such as "A month is a whole
    /// number from 1 to 12.". A form shows it beside the field and as the
    /// message for a value outside the domain.
    pub rule: &'static str,
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
        domain: None,
    }
}

impl FeatureDoc {
    /// Returns the documentation with `domain` as the feature's domain.
    const fn within(self, domain: Domain) -> FeatureDoc {
        FeatureDoc {
            domain: Some(domain),
            ..self
        }
    }
}

/// Returns a domain of real numbers from `min` up, such as a price.
const fn at_least(min: i64, rule: &'static str) -> Domain {
    Domain {
        min,
        max: None,
        integer: false,
        rule,
    }
}

/// Returns a domain of whole numbers from `min` up, such as a count of
/// items.
const fn whole_from(min: i64, rule: &'static str) -> Domain {
    Domain {
        min,
        max: None,
        integer: true,
        rule,
    }
}

/// Returns a domain of the whole numbers from `min` to `max`, both
/// included.
const fn whole_between(min: i64, max: i64, rule: &'static str) -> Domain {
    Domain {
        min,
        max: Some(max),
        integer: true,
        rule,
    }
}

/// The domain of a yes/no flag stored as 1 or 0.
const FLAG: Domain = whole_between(0, 1, "Enter 1 for yes or 0 for no.");

/// The domain of an amount of money.
const MONEY: Domain = at_least(0, "An amount of money cannot be negative.");

/// The domain of a product's size or weight.
const MEASURE: Domain = at_least(0, "A size or weight cannot be negative.");

/// The domain of a text length in characters.
const CHARACTERS: Domain = whole_from(0, "A length is a whole number of characters, 0 or more.");

/// The documentation of every feature of every feature set.
pub const FEATURE_DOCS: &[FeatureDoc] = &[
    // The basic features, one per item and payment row.
    doc(
        "price",
        "Item price",
        "BRL",
        "Price of this item, without freight.",
    )
    .within(MONEY),
    doc(
        "freight_value",
        "Freight value",
        "BRL",
        "Freight charged for this item.",
    )
    .within(MONEY),
    doc(
        "payment_sequential",
        "Payment number",
        "",
        "Position of this payment among the order's payments, from 1.",
    )
    .within(whole_from(
        1,
        "A payment number is a whole number, 1 or more.",
    )),
    doc(
        "payment_installments",
        "Payment installments",
        "",
        "Number of installments the customer chose for this payment.",
    )
    .within(whole_from(0, "Installments are a whole number, 0 or more.")),
    doc(
        "payment_value",
        "Payment value",
        "BRL",
        "Amount of this payment.",
    )
    .within(MONEY),
    doc(
        "product_name_lenght",
        "Product name length",
        "characters",
        "Length of the product's name in the catalogue.",
    )
    .within(CHARACTERS),
    doc(
        "product_description_lenght",
        "Product description length",
        "characters",
        "Length of the product's description in the catalogue.",
    )
    .within(CHARACTERS),
    doc(
        "product_photos_qty",
        "Product photos",
        "",
        "Number of photos of the product in the catalogue.",
    )
    .within(whole_from(
        0,
        "A number of photos is a whole number, 0 or more.",
    )),
    doc(
        "product_weight_g",
        "Product weight",
        "g",
        "Weight of the product.",
    )
    .within(MEASURE),
    doc(
        "product_length_cm",
        "Product length",
        "cm",
        "Length of the product's package.",
    )
    .within(MEASURE),
    doc(
        "product_height_cm",
        "Product height",
        "cm",
        "Height of the product's package.",
    )
    .within(MEASURE),
    doc(
        "product_width_cm",
        "Product width",
        "cm",
        "Width of the product's package.",
    )
    .within(MEASURE),
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
    )
    .within(whole_from(
        1,
        "An order has a whole number of items, 1 or more.",
    )),
    doc(
        "order_seller_count",
        "Sellers in the order",
        "",
        "Number of different sellers that ship the order's items.",
    )
    .within(whole_from(
        1,
        "An order has a whole number of sellers, 1 or more.",
    )),
    doc(
        "freight_price_ratio",
        "Freight to price ratio",
        "",
        "Freight of this item divided by its price.",
    )
    .within(at_least(0, "A freight to price ratio cannot be negative.")),
    doc(
        "same_state",
        "Seller in customer's state",
        "1 = yes, 0 = no",
        "Whether the seller ships from the customer's own state.",
    )
    .within(FLAG),
    doc(
        "purchase_month",
        "Purchase month",
        "1-12",
        "Calendar month of the purchase.",
    )
    .within(whole_between(
        1,
        12,
        "A month is a whole number from 1 to 12.",
    )),
    doc(
        "purchase_weekday",
        "Purchase weekday",
        "0 = Monday … 6 = Sunday",
        "Day of the week of the purchase.",
    )
    .within(whole_between(
        0,
        6,
        "A weekday is a whole number from 0 (Monday) to 6 (Sunday).",
    )),
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
    )
    .within(at_least(0, "A delivery time cannot be negative.")),
    doc(
        "delivered",
        "Delivered",
        "1 = yes, 0 = no",
        "Whether the order reached the status delivered.",
    )
    .within(FLAG),
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
/// JSON object from feature name to `{"label", "unit", "help", "domain"}`,
/// where `domain` is present only for features that have one.
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
    fn domain_rules_state_bounds() {
        for doc in FEATURE_DOCS {
            let Some(domain) = doc.domain else { continue };
            let states_min = domain.rule.contains(&domain.min.to_string())
                || (domain.min == 0 && domain.rule.contains("cannot be negative"));
            assert!(
                states_min,
                "{}: the rule does not state the minimum {}",
                doc.name, domain.min
            );
            if let Some(max) = domain.max {
                assert!(max > domain.min, "{}: empty domain", doc.name);
                assert!(
                    domain.rule.contains(&max.to_string()),
                    "{}: the rule does not state the maximum {max}",
                    doc.name
                );
            }
            if domain.integer {
                assert!(
                    domain.rule.contains("whole") || domain.max == Some(domain.min + 1),
                    "{}: the rule does not say that only whole numbers are valid",
                    doc.name
                );
            }
            assert!(
                domain.rule.ends_with('.'),
                "{}: rule is not a sentence",
                doc.name
            );
        }
    }

    #[test]
    fn bounded_features_have_domains() {
        let month = feature_doc("purchase_month").unwrap().domain.unwrap();
        assert_eq!((month.min, month.max, month.integer), (1, Some(12), true));
        // clean_data numbers weekdays from 0 for Monday.
        let weekday = feature_doc("purchase_weekday").unwrap().domain.unwrap();
        assert_eq!(
            (weekday.min, weekday.max, weekday.integer),
            (0, Some(6), true)
        );
        for flag in ["same_state", "delivered"] {
            let domain = feature_doc(flag).unwrap().domain.unwrap();
            assert_eq!(
                (domain.min, domain.max, domain.integer),
                (0, Some(1), true),
                "{flag}"
            );
        }
        for count in [
            "order_item_count",
            "order_seller_count",
            "product_photos_qty",
            "payment_installments",
        ] {
            let domain = feature_doc(count).unwrap().domain.unwrap();
            assert!(
                domain.integer && domain.min >= 0 && domain.max.is_none(),
                "{count}"
            );
        }
        // Day differences can be negative, so they have no domain.
        assert!(feature_doc("delivery_delay_days").unwrap().domain.is_none());
        assert!(
            feature_doc("carrier_handover_days")
                .unwrap()
                .domain
                .is_none()
        );
    }

    /// Every value clean_data produces from the shipped sample, training
    /// fill values included, lies in its feature's domain.
    #[test]
    fn sample_values_within_domains() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/olist-sample");
        let orders = crate::ingest::ingest(&dir, "utf-8").unwrap().orders;
        let options = crate::clean::CleanOptions {
            feature_set: FeatureSet::PostDelivery,
            ..Default::default()
        };
        let cleaned = crate::clean::clean(&orders, &options).unwrap();
        let mut checked = 0;
        for table in [&cleaned.x_train, &cleaned.x_test] {
            for doc in FEATURE_DOCS {
                let Some(domain) = doc.domain else { continue };
                let column = table.column(doc.name).unwrap();
                let flowrun_artifacts::ColumnData::Float64(values) = &column.data else {
                    panic!("{} is not numeric", doc.name);
                };
                for &x in values {
                    assert!(
                        x >= domain.min as f64,
                        "{}: {x} is below the domain",
                        doc.name
                    );
                    if let Some(max) = domain.max {
                        assert!(x <= max as f64, "{}: {x} is above the domain", doc.name);
                    }
                    if domain.integer {
                        assert_eq!(x, x.trunc(), "{}: {x} is not whole", doc.name);
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked > 10_000, "only {checked} values checked");
    }

    #[test]
    fn json_carries_domain() {
        let json = docs_json(["purchase_month", "promised_delivery_days"]);
        let month = &json["purchase_month"]["domain"];
        assert_eq!(month["min"], 1);
        assert_eq!(month["max"], 12);
        assert_eq!(month["integer"], true);
        assert_eq!(month["rule"], "A month is a whole number from 1 to 12.");
        assert!(json["promised_delivery_days"].get("domain").is_none());
        let price = &docs_json(["price"])["price"]["domain"];
        assert_eq!(price["min"], 0);
        assert!(price.get("max").is_none(), "{price}");
        assert_eq!(price["integer"], false);
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
