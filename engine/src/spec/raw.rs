//! The serde mirror of a pipeline file, and its parsing with serde-saphyr.
//!
//! These types follow the YAML one to one and carry serde-saphyr's
//! [`Spanned`] locations, so that later checks can point at the offending
//! text. Nothing here checks meaning (whether a step is registered, whether
//! a value fits its type): `resolve` does that and collects every error.
//!
//! Parsing is strict about the shape of the file. A duplicate key, a value
//! of the wrong kind (a list where a mapping belongs) and a YAML syntax
//! error stop it with exactly one error, because serde stops at the first
//! such problem in a document. Only `true`/`false` are booleans, so `yes`
//! and `on` stay strings. Unknown keys do not stop it: [`RawPipeline`],
//! [`RawStep`] and the full form of [`RawParam`] keep them in an
//! [`UnknownKeys`], and the load reports them with the semantic errors.
//!
//! Five types have hand-written `Deserialize` impls. [`OrderedMap`] keeps
//! mapping order with a location per key, because steps run in file order.
//! [`RawValue`] accepts any YAML value, including null, which a derived
//! untagged enum would reject without a location. [`RawParam`] reads both
//! the full and the shorthand form of a parameter and keeps the locations
//! inside the full form. [`RawPipeline`] and [`RawStep`] collect their
//! unknown keys with locations. Serde's `#[serde(flatten)]` could collect
//! leftover keys into a map, but it buffers them through serde's own
//! content type, and serde-saphyr 2.2 documents that a [`Spanned`] read
//! from that buffer has no location.

use super::error::{Diagnostics, FileId, Pos, SpecError};
use super::unknown_keys::{MappingKind, STEP_KEYS, TOP_KEYS, UnknownKeys};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, MergeKeyPolicy, NonFiniteFloatPolicy, Spanned};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

/// The top level of a pipeline file.
#[derive(Debug)]
pub(crate) struct RawPipeline {
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) description: Option<Spanned<String>>,
    pub(crate) extends: Option<Spanned<String>>,
    pub(crate) parameters: Option<OrderedMap<Spanned<RawParam>>>,
    pub(crate) steps: Option<OrderedMap<Spanned<Option<RawStep>>>>,
    pub(crate) unknown: UnknownKeys,
}

/// One entry under `steps:`.
#[derive(Debug)]
pub(crate) struct RawStep {
    pub(crate) uses: Option<Spanned<String>>,
    pub(crate) params: Option<OrderedMap<Spanned<RawValue>>>,
    pub(crate) inputs: Option<OrderedMap<Spanned<String>>>,
    pub(crate) after: Option<Vec<Spanned<String>>>,
    pub(crate) retries: Option<Spanned<RawValue>>,
    pub(crate) retry_delay: Option<Spanned<String>>,
    pub(crate) timeout: Option<Spanned<String>>,
    pub(crate) cache: Option<Spanned<RawValue>>,
    pub(crate) unknown: UnknownKeys,
}

impl RawStep {
    /// A step with every key left out, as `id:` with no value reads.
    pub(crate) const EMPTY: RawStep = RawStep {
        uses: None,
        params: None,
        inputs: None,
        after: None,
        retries: None,
        retry_delay: None,
        timeout: None,
        cache: None,
        unknown: UnknownKeys::new(MappingKind::Step),
    };
}

/// A pipeline parameter: either the full form (a mapping of `type`,
/// `default`, `doc` and `choices`) or a bare default whose type is inferred.
/// A mapping is always read as the full form, so a `map` parameter must be
/// written in full.
#[derive(Debug)]
pub(crate) enum RawParam {
    Full(Box<RawParamDef>),
    Shorthand(RawValue),
}

#[derive(Debug)]
pub(crate) struct RawParamDef {
    pub(crate) ty: Option<Spanned<String>>,
    pub(crate) default: Option<Spanned<RawValue>>,
    pub(crate) doc: Option<String>,
    pub(crate) choices: Option<Spanned<Vec<String>>>,
    pub(crate) unknown: UnknownKeys,
}

/// Any YAML value, before it is checked against a parameter type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    List(Vec<RawValue>),
    Map(BTreeMap<String, RawValue>),
}

impl RawValue {
    /// Names the value's YAML type for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            RawValue::Null => "null".to_string(),
            RawValue::Bool(b) => format!("the bool `{b}`"),
            RawValue::Int(i) => format!("the int `{i}`"),
            RawValue::Float(f) => format!("the float `{}`", crate::param::format_float(*f)),
            RawValue::String(s) => format!("the string `{s}`"),
            RawValue::List(_) => "a list".to_string(),
            RawValue::Map(_) => "a map".to_string(),
        }
    }
}

/// A mapping that keeps its keys in file order, each with its location.
#[derive(Debug)]
pub(crate) struct OrderedMap<V>(pub(crate) Vec<(Spanned<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = OrderedMap<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    entries.push((key, map.next_value()?));
                }
                Ok(OrderedMap(entries))
            }
        }

        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

struct RawValueVisitor;

impl<'de> Visitor<'de> for RawValueVisitor {
    type Value = RawValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<RawValue, E> {
        Ok(RawValue::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<RawValue, E> {
        Ok(RawValue::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<RawValue, E> {
        // Beyond i64, an integer can only be kept as a float.
        Ok(i64::try_from(v).map_or(RawValue::Float(v as f64), RawValue::Int))
    }

    fn visit_i128<E>(self, v: i128) -> Result<RawValue, E> {
        Ok(i64::try_from(v).map_or(RawValue::Float(v as f64), RawValue::Int))
    }

    fn visit_u128<E>(self, v: u128) -> Result<RawValue, E> {
        Ok(i64::try_from(v).map_or(RawValue::Float(v as f64), RawValue::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<RawValue, E> {
        Ok(RawValue::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<RawValue, E> {
        Ok(RawValue::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<RawValue, E> {
        Ok(RawValue::String(v))
    }

    fn visit_unit<E>(self) -> Result<RawValue, E> {
        Ok(RawValue::Null)
    }

    fn visit_none<E>(self) -> Result<RawValue, E> {
        Ok(RawValue::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawValue, D::Error> {
        RawValue::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(RawValue::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawValue, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            entries.insert(key, map.next_value()?);
        }
        Ok(RawValue::Map(entries))
    }
}

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawValueVisitor)
    }
}

impl<'de> Deserialize<'de> for RawParam {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ParamVisitor;

        impl<'de> Visitor<'de> for ParamVisitor {
            type Value = RawParam;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a parameter: a default value, or a mapping of type, default, doc and choices",
                )
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawParam, A::Error> {
                let mut def = RawParamDef {
                    ty: None,
                    default: None,
                    doc: None,
                    choices: None,
                    unknown: UnknownKeys::new(MappingKind::Parameter),
                };
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    match key.value.as_str() {
                        "type" => def.ty = Some(map.next_value()?),
                        "default" => def.default = Some(map.next_value()?),
                        "doc" => def.doc = Some(map.next_value()?),
                        "choices" => def.choices = Some(map.next_value()?),
                        _ => def.unknown.skip(key, &mut map)?,
                    }
                }
                Ok(RawParam::Full(Box::new(def)))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawParam, A::Error> {
                RawValueVisitor.visit_seq(seq).map(RawParam::Shorthand)
            }

            fn visit_bool<E>(self, v: bool) -> Result<RawParam, E> {
                Ok(RawParam::Shorthand(RawValue::Bool(v)))
            }

            fn visit_i64<E>(self, v: i64) -> Result<RawParam, E> {
                Ok(RawParam::Shorthand(RawValue::Int(v)))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawParam, E> {
                RawValueVisitor.visit_u64(v).map(RawParam::Shorthand)
            }

            fn visit_f64<E>(self, v: f64) -> Result<RawParam, E> {
                Ok(RawParam::Shorthand(RawValue::Float(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<RawParam, E> {
                Ok(RawParam::Shorthand(RawValue::String(v.to_string())))
            }

            fn visit_unit<E>(self) -> Result<RawParam, E> {
                Ok(RawParam::Shorthand(RawValue::Null))
            }

            fn visit_none<E>(self) -> Result<RawParam, E> {
                Ok(RawParam::Shorthand(RawValue::Null))
            }
        }

        deserializer.deserialize_any(ParamVisitor)
    }
}

impl<'de> Deserialize<'de> for RawPipeline {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PipelineVisitor;

        impl<'de> Visitor<'de> for PipelineVisitor {
            type Value = RawPipeline;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a pipeline: a mapping with `name` and `steps`")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawPipeline, A::Error> {
                let mut pipeline = RawPipeline {
                    name: None,
                    description: None,
                    extends: None,
                    parameters: None,
                    steps: None,
                    unknown: UnknownKeys::new(MappingKind::TopLevel),
                };
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    match key.value.as_str() {
                        "name" => pipeline.name = map.next_value()?,
                        "description" => pipeline.description = map.next_value()?,
                        "extends" => pipeline.extends = map.next_value()?,
                        "parameters" => pipeline.parameters = map.next_value()?,
                        "steps" => pipeline.steps = map.next_value()?,
                        _ => pipeline.unknown.skip(key, &mut map)?,
                    }
                }
                Ok(pipeline)
            }
        }

        deserializer.deserialize_struct("RawPipeline", TOP_KEYS, PipelineVisitor)
    }
}

impl<'de> Deserialize<'de> for RawStep {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StepVisitor;

        impl<'de> Visitor<'de> for StepVisitor {
            type Value = RawStep;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a step: a mapping of keys such as `uses`, `params` and `inputs`")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawStep, A::Error> {
                let mut step = RawStep::EMPTY;
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    match key.value.as_str() {
                        "uses" => step.uses = map.next_value()?,
                        "params" => step.params = map.next_value()?,
                        "inputs" => step.inputs = map.next_value()?,
                        "after" => step.after = map.next_value()?,
                        "retries" => step.retries = map.next_value()?,
                        "retry_delay" => step.retry_delay = map.next_value()?,
                        "timeout" => step.timeout = map.next_value()?,
                        "cache" => step.cache = map.next_value()?,
                        _ => step.unknown.skip(key, &mut map)?,
                    }
                }
                Ok(step)
            }
        }

        deserializer.deserialize_struct("RawStep", STEP_KEYS, StepVisitor)
    }
}

fn options(duplicate_keys: DuplicateKeyPolicy) -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    options.duplicate_keys = duplicate_keys;
    options.merge_keys = MergeKeyPolicy::Merge;
    // `.inf` and `.nan` are valid floats for a float parameter.
    options.non_finite_float_policy = NonFiniteFloatPolicy::PassThrough;
    // Errors are rendered by flowrun with the file name, not by the crate.
    options.with_snippet = false;
    options
}

/// Parses one pipeline file. An empty file (or one with only comments)
/// yields `Ok(None)`.
pub(crate) fn parse(text: &str) -> Result<Option<RawPipeline>, serde_saphyr::Error> {
    serde_saphyr::from_str_with_options(text, options(DuplicateKeyPolicy::Error))
}

/// Parses `file` and turns a parse failure into a located error.
#[expect(
    clippy::result_large_err,
    reason = "a SpecError is built only on the failure path of a load, so its size costs nothing that matters"
)]
pub(crate) fn parse_file(
    file: FileId,
    diagnostics: &Diagnostics<'_>,
) -> Result<Option<RawPipeline>, SpecError> {
    let text = diagnostics.sources().text(file);
    parse(text).map_err(|error| convert_error(file, text, &error, diagnostics))
}

/// Turns a serde-saphyr error into a [`SpecError`] with flowrun's wording
/// where the cause is a common one.
fn convert_error(
    file: FileId,
    text: &str,
    error: &serde_saphyr::Error,
    diagnostics: &Diagnostics<'_>,
) -> SpecError {
    let error = error.without_snippet();
    let pos = error
        .location()
        .filter(|l| l.line() > 0)
        .map(|l| Pos::from_saphyr(file, &l));
    let located = |message: String| match pos {
        Some(pos) => diagnostics.at(pos, message),
        None => SpecError::new(message),
    };

    match error {
        serde_saphyr::Error::DuplicateMappingKey { key, .. } => {
            let key = key.clone().unwrap_or_default();
            let mut converted = located(format!("duplicate key `{key}`"))
                .with_help("remove one of the two entries; YAML keys must be unique in a mapping");
            if let Some(first) = pos.and_then(|p| first_duplicate(text, p)) {
                let first = Pos { file, ..first };
                converted
                    .notes
                    .push(diagnostics.note(first, format!("`{key}` is first defined here")));
            }
            converted
        }
        serde_saphyr::Error::Unexpected { expected, .. } => {
            if let Some(shape) = root_shape(text).filter(|s| *s != RootShape::Mapping) {
                return not_a_mapping(shape, located);
            }
            let expected = match *expected {
                "mapping start" => "a mapping of keys to values",
                "sequence start" => "a list",
                "string scalar" => "a single value",
                other => other,
            };
            located(format!("wrong kind of value: expected {expected} here"))
        }
        _ => {
            if let Some(shape) = root_shape(text).filter(|s| *s != RootShape::Mapping) {
                return not_a_mapping(shape, located);
            }
            located(strip_location_suffix(&error.to_string()))
        }
    }
}

fn not_a_mapping(shape: RootShape, located: impl Fn(String) -> SpecError) -> SpecError {
    located(format!(
        "a pipeline file must be a mapping with `name` and `steps`, but this file is {}",
        shape.describe()
    ))
    .with_help("start the file with `name: <pipeline name>` followed by `steps:`")
}

/// Removes the " at line N, column M" that serde-saphyr appends to its
/// messages, since flowrun prints the location on its own line.
fn strip_location_suffix(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(cut) if message[cut..].contains(", column ") => message[..cut].to_string(),
        _ => message.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RootShape {
    Mapping,
    List,
    Scalar,
}

impl RootShape {
    fn describe(self) -> &'static str {
        match self {
            RootShape::Mapping => "a mapping",
            RootShape::List => "a list",
            RootShape::Scalar => "a single value",
        }
    }
}

/// Reads only the kind of the document's root node, or `None` when the
/// text is not valid YAML.
fn root_shape(text: &str) -> Option<RootShape> {
    struct ShapeVisitor;

    impl<'de> Visitor<'de> for ShapeVisitor {
        type Value = RootShape;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any YAML value")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RootShape, A::Error> {
            while map
                .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                .is_some()
            {}
            Ok(RootShape::Mapping)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RootShape, A::Error> {
            while seq.next_element::<de::IgnoredAny>()?.is_some() {}
            Ok(RootShape::List)
        }

        fn visit_bool<E>(self, _: bool) -> Result<RootShape, E> {
            Ok(RootShape::Scalar)
        }

        fn visit_i64<E>(self, _: i64) -> Result<RootShape, E> {
            Ok(RootShape::Scalar)
        }

        fn visit_u64<E>(self, _: u64) -> Result<RootShape, E> {
            Ok(RootShape::Scalar)
        }

        fn visit_f64<E>(self, _: f64) -> Result<RootShape, E> {
            Ok(RootShape::Scalar)
        }

        fn visit_str<E>(self, _: &str) -> Result<RootShape, E> {
            Ok(RootShape::Scalar)
        }
    }

    struct Shape(RootShape);

    impl<'de> Deserialize<'de> for Shape {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(ShapeVisitor).map(Shape)
        }
    }

    let options = options(DuplicateKeyPolicy::PassThrough);
    serde_saphyr::from_str_with_options::<Shape>(text, options)
        .ok()
        .map(|shape| shape.0)
}

/// A YAML node with the location of every mapping key, read with duplicate
/// keys allowed, to find the first of two duplicate keys.
enum KeyTree {
    Leaf,
    List(Vec<KeyTree>),
    Mapping(Vec<(Spanned<String>, KeyTree)>),
}

impl<'de> Deserialize<'de> for KeyTree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TreeVisitor;

        impl<'de> Visitor<'de> for TreeVisitor {
            type Value = KeyTree;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }

            fn visit_bool<E>(self, _: bool) -> Result<KeyTree, E> {
                Ok(KeyTree::Leaf)
            }

            fn visit_i64<E>(self, _: i64) -> Result<KeyTree, E> {
                Ok(KeyTree::Leaf)
            }

            fn visit_u64<E>(self, _: u64) -> Result<KeyTree, E> {
                Ok(KeyTree::Leaf)
            }

            fn visit_f64<E>(self, _: f64) -> Result<KeyTree, E> {
                Ok(KeyTree::Leaf)
            }

            fn visit_str<E>(self, _: &str) -> Result<KeyTree, E> {
                Ok(KeyTree::Leaf)
            }

            fn visit_unit<E>(self) -> Result<KeyTree, E> {
                Ok(KeyTree::Leaf)
            }

            fn visit_none<E>(self) -> Result<KeyTree, E> {
                Ok(KeyTree::Leaf)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyTree, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(KeyTree::List(items))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyTree, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    entries.push((key, map.next_value()?));
                }
                Ok(KeyTree::Mapping(entries))
            }
        }

        deserializer.deserialize_any(TreeVisitor)
    }
}

/// Finds the first occurrence of the duplicate key found at `second`, by
/// re-reading the file with duplicates allowed and looking for the mapping
/// that contains a key at that position.
fn first_duplicate(text: &str, second: Pos) -> Option<Pos> {
    let tree: KeyTree =
        serde_saphyr::from_str_with_options(text, options(DuplicateKeyPolicy::PassThrough)).ok()?;
    find_first_duplicate(&tree, second)
}

fn find_first_duplicate(tree: &KeyTree, second: Pos) -> Option<Pos> {
    match tree {
        KeyTree::Leaf => None,
        KeyTree::List(items) => items.iter().find_map(|i| find_first_duplicate(i, second)),
        KeyTree::Mapping(entries) => {
            let at_second = |key: &Spanned<String>| {
                let pos = Pos::from_saphyr(second.file, &key.referenced);
                (pos.line, pos.column) == (second.line, second.column)
            };
            if let Some((duplicate, _)) = entries.iter().find(|(key, _)| at_second(key)) {
                return entries
                    .iter()
                    .map(|(key, _)| key)
                    .find(|key| key.value == duplicate.value && !at_second(key))
                    .map(|key| Pos::from_saphyr(second.file, &key.referenced));
            }
            entries
                .iter()
                .find_map(|(_, value)| find_first_duplicate(value, second))
        }
    }
}
