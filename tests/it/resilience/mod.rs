//! Failures and fallbacks (issue 17): resource exhaustion, slow request bodies, upstream
//! connection limits. Each case runs the real binary against upstreams the test starts.

mod body_timeout;
mod descriptors;
mod shedding;
mod upstream_conns;
