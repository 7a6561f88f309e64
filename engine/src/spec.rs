//! TODO: being written.
pub fn format_duration(d: std::time::Duration) -> String { format!("{d:?}") }
