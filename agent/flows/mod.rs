//! Critical flows: path patterns, the request → flow router and automatic route templates.

pub mod pattern;
pub mod router;
pub mod templates;

pub use pattern::{Pattern, PatternError, Segment};
pub use router::{RouteInfo, RouteMatch, Router};
pub use templates::{OTHER_ROUTE, RouteTemplates, TemplateEntry, TemplateSnapshot, template_path};
