//! Failures and fallbacks: resource exhaustion, slow request bodies, upstream
//! connection limits, retries with a budget, circuit breaking, fallbacks, fault injection, and their spans. Each case runs the real binary against upstreams the test starts.

mod adaptive;
mod body_timeout;
mod breaker;
mod descriptors;
mod end_to_end;
mod fallbacks;
mod faults;
mod retries;
mod shedding;
mod spans;
mod upstream_conns;
