//! Benchmarks for the flow router (200 patterns) and the route templates of unmatched traffic.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::Method;
use redline::flows::{Pattern, RouteTemplates, Router, template_path};

const RESOURCES: [&str; 38] = [
    "users",
    "orders",
    "products",
    "carts",
    "payments",
    "invoices",
    "shipments",
    "reviews",
    "coupons",
    "categories",
    "inventory",
    "warehouses",
    "suppliers",
    "customers",
    "accounts",
    "sessions",
    "tokens",
    "webhooks",
    "events",
    "reports",
    "notifications",
    "messages",
    "threads",
    "comments",
    "teams",
    "projects",
    "tasks",
    "labels",
    "files",
    "images",
    "videos",
    "subscriptions",
    "plans",
    "refunds",
    "disputes",
    "addresses",
    "wishlists",
    "returns",
];

/// 200 patterns of realistic shapes, grouped four to a flow.
fn patterns() -> Vec<Vec<Pattern>> {
    let mut all: Vec<String> = Vec::new();
    for r in RESOURCES {
        all.push(format!("GET /api/v1/{r}"));
        all.push(format!("POST /api/v1/{r}"));
        all.push(format!("GET /api/v1/{r}/{{id}}"));
        all.push(format!("PATCH /api/v1/{r}/{{id}}"));
        all.push(format!("/api/v1/{r}/{{id}}/items/{{item_id}}"));
    }
    all.extend(
        [
            "GET /",
            "GET /healthz",
            "POST /api/checkout",
            "GET /api/v2/{resource}/{id}",
            "GET /static/{path...}",
            "GET /assets/{file...}",
            "/api/v1/{resource}/{id}/history",
            "/api/v1/orders/{id}/items/{item_id}/refund",
            "POST /graphql",
            "/{tenant}/api/{rest...}",
        ]
        .map(String::from),
    );
    assert_eq!(all.len(), 200);
    all.chunks(4)
        .map(|c| {
            c.iter()
                .map(|p| Pattern::parse(p).expect("valid"))
                .collect()
        })
        .collect()
}

fn bench_router(c: &mut Criterion) {
    let router = Router::new(&patterns());
    let requests: [(Method, &str); 8] = [
        (Method::GET, "/api/v1/orders/12345"),
        (Method::GET, "/api/v1/users/42/items/7"),
        (Method::POST, "/api/v1/orders/981/items/3/refund"),
        (Method::GET, "/static/css/app.min.css"),
        (Method::PATCH, "/api/v1/returns/77?expand=items"),
        (Method::GET, "/api/v1/payments/9f8e7d6c/history"),
        (Method::GET, "/acme/api/internal/jobs/5"),
        (Method::DELETE, "/nope/missing/path"),
    ];
    let mut i = 0;
    c.bench_function("router/find_200_patterns", |b| {
        b.iter(|| {
            let (m, p) = &requests[i % requests.len()];
            i += 1;
            black_box(router.find(black_box(m), black_box(p)))
        })
    });
}

fn bench_templates(c: &mut Criterion) {
    let paths = [
        "/users/123/orders/9f8e7d6c5b4a3f2e",
        "/u/550e8400-e29b-41d4-a716-446655440000/profile",
        "/api/v2/search?q=shoes",
        "/t/dGhpc2lzYXRva2VuMTIz_-x/confirm",
    ];
    let mut out = String::with_capacity(128);
    let mut i = 0;
    c.bench_function("templates/template_path", |b| {
        b.iter(|| {
            template_path(black_box(paths[i % paths.len()]), &mut out);
            i += 1;
            black_box(out.len())
        })
    });

    let templates = RouteTemplates::new(200, true);
    for p in paths {
        templates.observe(p);
    }
    let mut i = 0;
    c.bench_function("templates/observe_existing", |b| {
        b.iter(|| {
            let e = templates.observe(black_box(paths[i % paths.len()]));
            i += 1;
            black_box(e)
        })
    });
}

criterion_group!(benches, bench_router, bench_templates);
criterion_main!(benches);
