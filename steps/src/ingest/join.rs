//! Joins the raw tables into the `orders` table.
//!
//! The join is orders ⋈ items ⋈ payments ⋈ reviews on `order_id`,
//! ⋈ products on `product_id` and ⋈ customers on `customer_id`, all inner,
//! then left joins of sellers on `seller_id` and the category translation
//! on `product_category_name`. Every join is many-to-many, as in SQL: an
//! order with 2 items and 2 payments gives 4 rows, and a key that appears
//! twice in a lookup table doubles the rows it matches. A missing (empty)
//! key matches nothing.
//!
//! It runs in two phases so that the loop that emits rows does no hashing.
//! First every key column is resolved, in one sequential pass per table,
//! to a dense key number from a hash index of the table it points to.
//! Then the emitting loop follows plain `u32` arrays. The hash map is
//! foldhash's, several times faster than the standard SipHash on the
//! 32-character ids. Flooding resistance is not needed because the keys
//! come from the user's own files.
//!
//! Output rows follow the first appearance of each order id in the orders
//! file, then within an order the items, payments and reviews files, so
//! the result is the same on every run and thread count. This module never
//! reads files.
//!
//! Row numbers are `u32`, so a file may have at most 4,294,967,294 data
//! rows. The reader rejects larger files before they get here.

use super::reader::{RawColumn, RawTable, TextColumn};
use super::schema::{OUTPUT_COLUMNS, Source};
use flowrun_artifacts::{Column, ColumnData, Table};
use rayon::prelude::*;

/// A key number or row number that matched nothing.
const NONE: u32 = u32::MAX;

/// Row numbers grouped by a dense number (a key number), in file order
/// within each group: group `g` contains `rows[starts[g]..starts[g + 1]]`.
struct Groups {
    starts: Vec<u32>,
    rows: Vec<u32>,
}

impl Groups {
    /// Groups row `r` under `group_of_row[r]`; rows under [`NONE`] are left
    /// out.
    fn new(group_of_row: &[u32], groups: usize) -> Self {
        let mut starts = vec![0u32; groups + 1];
        for &group in group_of_row.iter().filter(|&&g| g != NONE) {
            starts[group as usize + 1] += 1;
        }
        for g in 1..starts.len() {
            starts[g] += starts[g - 1];
        }

        // A counting sort keeps each group's rows in file order.
        let mut next_slot = starts.clone();
        let mut rows = vec![0u32; starts[groups] as usize];
        for (row, &group) in group_of_row.iter().enumerate() {
            if group != NONE {
                let slot = &mut next_slot[group as usize];
                rows[*slot as usize] = row as u32;
                *slot += 1;
            }
        }
        Groups { starts, rows }
    }

    /// Returns the rows of a group, or none for [`NONE`].
    fn get(&self, group: u32) -> &[u32] {
        if group == NONE {
            return &[];
        }
        let group = group as usize;
        &self.rows[self.starts[group] as usize..self.starts[group + 1] as usize]
    }
}

/// A hash index of a table's key column: each distinct key gets a dense
/// number, in order of first appearance, and the rows that carry it.
struct KeyIndex<'a> {
    numbers: foldhash::HashMap<&'a str, u32>,
    rows: Groups,
}

impl<'a> KeyIndex<'a> {
    fn build(keys: &'a TextColumn) -> Self {
        let mut numbers =
            foldhash::HashMap::with_capacity_and_hasher(keys.len(), Default::default());
        let number_of_row: Vec<u32> = (0..keys.len())
            .map(|row| match keys.get(row) {
                Some(key) => {
                    let next = numbers.len() as u32;
                    *numbers.entry(key).or_insert(next)
                }
                None => NONE,
            })
            .collect();
        let rows = Groups::new(&number_of_row, numbers.len());
        KeyIndex { numbers, rows }
    }

    fn len(&self) -> usize {
        self.numbers.len()
    }

    /// Returns the key number of every value of `keys` (a column of another
    /// table), [`NONE`] where this index lacks the key.
    fn resolve(&self, keys: &TextColumn) -> Vec<u32> {
        (0..keys.len())
            .map(|row| {
                keys.get(row)
                    .and_then(|key| self.numbers.get(key).copied())
                    .unwrap_or(NONE)
            })
            .collect()
    }
}

/// One output row: a row number in each table, in [`Source`] order, with
/// [`NONE`] where a left join found nothing. Plain `u32`s keep a row at
/// 32 bytes, half the size of `Option<u32>`s.
#[derive(Debug, Clone, Copy)]
struct JoinedRow([u32; 8]);

/// Joins the tables, given in [`Source`] order, into the output table.
///
/// Each raw table is dropped as soon as its output columns are built, so
/// the peak memory is about the output plus the largest raw tables, not
/// the output plus all of them.
pub(crate) fn join(tables: Vec<RawTable>) -> Table {
    let rows = match_rows(&tables);
    let mut columns: Vec<Option<Column>> = OUTPUT_COLUMNS.iter().map(|_| None).collect();
    for (index, table) in tables.into_iter().enumerate() {
        let built: Vec<(usize, Column)> = OUTPUT_COLUMNS
            .par_iter()
            .enumerate()
            .filter(|(_, (source, _))| *source as usize == index)
            .map(|(position, &(source, name))| (position, gather(&table, source, name, &rows)))
            .collect();
        drop(table);
        for (position, column) in built {
            columns[position] = Some(column);
        }
    }
    let columns = columns
        .into_iter()
        .map(|column| column.expect("every output column comes from one of the tables"))
        .collect();
    Table::new(columns)
        .expect("every gathered column has one value per joined row and a unique name")
}

/// The key columns of every table resolved to key numbers.
struct Resolved<'a> {
    orders: KeyIndex<'a>,
    items_by_order: Groups,
    payments_by_order: Groups,
    reviews_by_order: Groups,
    customers: KeyIndex<'a>,
    customer_of_order: Vec<u32>,
    products: KeyIndex<'a>,
    product_of_item: Vec<u32>,
    sellers: KeyIndex<'a>,
    seller_of_item: Vec<u32>,
    translations: KeyIndex<'a>,
    translation_of_product: Vec<u32>,
}

impl<'a> Resolved<'a> {
    fn new(tables: &'a [RawTable]) -> Self {
        let table = |source: Source| &tables[source as usize];
        let items = table(Source::Items);
        let products_table = table(Source::Products);

        let orders = KeyIndex::build(table(Source::Orders).text("order_id"));
        let by_order = |source: Source| {
            Groups::new(
                &orders.resolve(table(source).text("order_id")),
                orders.len(),
            )
        };
        let ((items_by_order, payments_by_order), reviews_by_order) = rayon::join(
            || rayon::join(|| by_order(Source::Items), || by_order(Source::Payments)),
            || by_order(Source::Reviews),
        );

        let customers = KeyIndex::build(table(Source::Customers).text("customer_id"));
        let customer_of_order = customers.resolve(table(Source::Orders).text("customer_id"));
        let products = KeyIndex::build(products_table.text("product_id"));
        let product_of_item = products.resolve(items.text("product_id"));
        let sellers = KeyIndex::build(table(Source::Sellers).text("seller_id"));
        let seller_of_item = sellers.resolve(items.text("seller_id"));
        let translations =
            KeyIndex::build(table(Source::Translation).text("product_category_name"));
        let translation_of_product =
            translations.resolve(products_table.text("product_category_name"));

        Resolved {
            orders,
            items_by_order,
            payments_by_order,
            reviews_by_order,
            customers,
            customer_of_order,
            products,
            product_of_item,
            sellers,
            seller_of_item,
            translations,
            translation_of_product,
        }
    }
}

/// Finds the row numbers of every output row.
fn match_rows(tables: &[RawTable]) -> Vec<JoinedRow> {
    let keys = Resolved::new(tables);
    let mut joined = Vec::new();
    for order_key in 0..keys.orders.len() as u32 {
        let payments = keys.payments_by_order.get(order_key);
        let reviews = keys.reviews_by_order.get(order_key);
        let items = keys.items_by_order.get(order_key);
        if payments.is_empty() || reviews.is_empty() || items.is_empty() {
            continue;
        }
        for &order in keys.orders.rows.get(order_key) {
            let customers = keys
                .customers
                .rows
                .get(keys.customer_of_order[order as usize]);
            for &item in items {
                let sellers = left(keys.sellers.rows.get(keys.seller_of_item[item as usize]));
                let products = keys.products.rows.get(keys.product_of_item[item as usize]);
                for &product in products {
                    let translation_key = keys.translation_of_product[product as usize];
                    let translations = left(keys.translations.rows.get(translation_key));
                    for &payment in payments {
                        for &review in reviews {
                            for &customer in customers {
                                for &seller in sellers {
                                    for &translation in translations {
                                        joined.push(JoinedRow([
                                            order,
                                            item,
                                            payment,
                                            review,
                                            product,
                                            customer,
                                            seller,
                                            translation,
                                        ]));
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    joined
}

/// Returns the matches of a left join, or [`NONE`] alone when nothing
/// matched.
fn left(rows: &[u32]) -> &[u32] {
    if rows.is_empty() { &[NONE] } else { rows }
}

/// Builds one output column by taking each output row's value from `table`.
fn gather(table: &RawTable, source: Source, name: &str, rows: &[JoinedRow]) -> Column {
    let row_of = |joined: &JoinedRow| {
        let row = joined.0[source as usize];
        (row != NONE).then_some(row as usize)
    };
    let data = match &table.columns[table.spec.position(name)] {
        RawColumn::Text(values) => ColumnData::Utf8(
            rows.iter()
                .map(|joined| {
                    row_of(joined)
                        .and_then(|row| values.get(row))
                        .map(str::to_string)
                })
                .collect(),
        ),
        RawColumn::Float(values) => ColumnData::Float64(
            rows.iter()
                .map(|joined| row_of(joined).map_or(f64::NAN, |row| values[row]))
                .collect(),
        ),
    };
    Column::new(name, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(values: &[&str]) -> TextColumn {
        let mut column = TextColumn::default();
        for value in values {
            column.push(value);
        }
        column
    }

    #[test]
    fn index_numbers_keys_by_first_appearance() {
        let keys = column(&["b", "a", "b", "", "c", "b"]);
        let index = KeyIndex::build(&keys);
        assert_eq!(index.len(), 3);
        assert_eq!(index.rows.get(0), &[0, 2, 5]);
        assert_eq!(index.rows.get(1), &[1]);
        assert_eq!(index.rows.get(2), &[4]);
        assert_eq!(index.rows.get(NONE), &[] as &[u32]);

        let other = column(&["c", "", "d", "a"]);
        assert_eq!(index.resolve(&other), vec![2, NONE, NONE, 1]);
    }

    #[test]
    fn groups_keep_file_order() {
        let groups = Groups::new(&[1, 0, NONE, 1, 0, 1], 3);
        assert_eq!(groups.get(0), &[1, 4]);
        assert_eq!(groups.get(1), &[0, 3, 5]);
        assert_eq!(groups.get(2), &[] as &[u32]);
    }
}
