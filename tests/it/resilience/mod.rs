//! Failures and fallbacks (issue 17): resource exhaustion, slow request bodies, upstream
//! connection limits, retries with a budget. Each case runs the real binary against upstreams the test starts.

mod body_timeout;
mod descriptors;
mod retries;
mod shedding;
mod upstream_conns;
