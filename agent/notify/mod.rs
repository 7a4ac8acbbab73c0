//! Notifications: alert events from the evaluator, delivered to receivers off the request path.

pub mod event;
pub use event::{AlertEvent, AlertStatus};
