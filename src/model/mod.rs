//! The data model: what callers hand to Cairn and get back, as plain data — configuration,
//! records and their payloads, hits, and filters.
//!
//! | file | role |
//! |---|---|
//! | `config.rs` | [`Options`], [`Durability`], [`CollectionConfig`], [`TextConfig`], name rules |
//! | `id.rs` | [`Id`], [`IdType`]: integer or string ids and their 64-bit keys |
//! | `record.rs` | [`Record`], [`Payload`], [`Hit`], [`Legs`], [`LegScore`]; the stored document codec |
//! | `value.rs` | [`Value`]: any JSON value, its JSON and stored forms, depth limit and validation |
//! | `filter/` | [`Filter`]: builder, serde form, text syntax, validation, reference matcher |

pub(crate) mod config;
pub mod filter;
pub(crate) mod id;
pub(crate) mod record;
pub(crate) mod value;

pub use config::{
    CollectionConfig, Durability, MAX_DIM, Options, Quantization, TextConfig, validate_name,
};
pub use filter::Filter;
pub use id::{Id, IdType, MAX_ID_BYTES};
pub use record::{Hit, LegScore, Legs, Payload, Record, Value};
