//! The real Envoy, fed the matcher trees the agent writes, answers each request from the route
//! a list of the same routes names (Emissary's order, every condition on every route), as a
//! model of Envoy's route matching evaluates that list. The unit tests in
//! `src/envoy/route_tree/` hold the tree to the list through the same model over many more
//! random sets; this is a sample of them through Envoy itself.

mod support;

#[path = "../src/envoy/route_tree/model.rs"]
#[allow(dead_code)] // The unit tests use what this file does not.
mod model;

use proptest::{
    strategy::{Strategy, ValueTree},
    test_runner::TestRunner,
};
use reqwest::Method;

use legate_agent::{envoy, ir};
use model::{Request, chosen_host, chosen_route};
use support::{Upstream, gateway::Gateway};

/// Route sets per Host policy, and requests per route set.
const SETS: usize = 4;
/// Mappings drawn per set: more routes than a virtual host lists rather than trees, so that
/// keys are gathered into lists and fall back to shorter ones.
const MAPPINGS: std::ops::Range<usize> = 24..48;
const REQUESTS: usize = 40;

#[tokio::test]
async fn envoy_serves_through_the_tree_the_route_the_list_names() {
    let upstream = Upstream::start("u").await;
    let mut runner = TestRunner::deterministic();
    let (mut treed, mut sent) = (0, 0);
    for insecure in ["Route", "Redirect", "Reject"] {
        let gw = Gateway::start_with_hosts(&model::hosts(insecure)).await;
        for set in 0..SETS {
            // The real Envoy's canary draw is its own: few canaries here (no weights), and a
            // request whose route depends on the draw is not sent (Mappings of one match, as
            // Emissary groups them, still split the traffic); the unit tests have them all.
            let mut specs = draw(
                &mut runner,
                proptest::collection::vec(model::spec(), MAPPINGS),
            );
            for s in &mut specs {
                s.canary = 1;
            }
            // Served once its marker route answers as itself (before any route of the set).
            let marker = format!("set-{insecure}-{set}");
            let yaml = model::mappings(&specs, |_| upstream.service())
                + &support::gateway::mapping(
                    "marker",
                    &format!(
                        "hostname: \"*\"\nprefix: /{marker}/\nprecedence: 10\nservice: {}\n\
                         add_response_headers: {{x-route: {marker}}}",
                        upstream.service()
                    ),
                );
            gw.write("routes.yaml", &yaml);
            let this_set = |r: &support::Reply| r.header("x-route") == Some(marker.as_str());
            let path = format!("/{marker}/");
            gw.wait_for_request(
                Method::GET,
                &path,
                "b.example.com",
                &[],
                "the set",
                this_set,
            )
            .await;

            let ir = ir_of(&gw);
            let tables = envoy::translate(&ir).routes;
            treed += tables[0]
                .virtual_hosts
                .iter()
                .filter(|v| v.matcher.is_some())
                .count();
            let tables = envoy::listed_route_tables(&ir);
            let vhosts = &tables[0].virtual_hosts;
            for _ in 0..REQUESTS {
                let mut req = draw(&mut runner, model::request());
                // A client sends no fragment.
                if req.path.contains('#') {
                    continue;
                }
                // At `l7Depth: 0` Envoy trusts no proxy in front: it sets `X-Forwarded-Proto`
                // from the connection, cleartext here.
                for (name, value) in &mut req.headers {
                    if name == "x-forwarded-proto" {
                        *value = "http".to_owned();
                    }
                }
                let listed = |draw| {
                    let req = Request {
                        draw,
                        ..req.clone()
                    };
                    chosen_host(vhosts, &req)
                        .and_then(|v| chosen_route(v, &req))
                        .map(|r| model::answer(&r))
                };
                if listed(0) != listed(99) {
                    continue;
                }
                let want = listed(0)
                    // A redirect is known by its status.
                    .map(|(name, redirect)| match redirect {
                        true => (String::new(), true),
                        false => (name, false),
                    });
                let got = served(&gw, &req).await;
                sent += 1;
                assert_eq!(got, want, "{req:?} ({insecure}, set {set})\n{yaml}");
            }
        }
    }
    // Most sets give both Hosts' virtual hosts more routes than are listed.
    assert!(
        treed >= SETS * 3,
        "only {treed} virtual hosts were served as trees"
    );
    assert!(
        sent >= SETS * 3 * REQUESTS / 2,
        "only {sent} requests were sent"
    );
}

fn draw<S: Strategy>(runner: &mut TestRunner, strategy: S) -> S::Value {
    strategy.new_tree(runner).expect("a value").current()
}

/// The IR of what the gateway's directory holds, as the agent builds it.
fn ir_of(gw: &Gateway) -> ir::Ir {
    let loaded = legate_crds::loader::load_dir(gw.dir.path()).expect("the directory");
    ir::build(&loaded.loaded.resources, &ir::Settings::default())
}

/// Which route answered: its Mapping (from its `x-route` header) and whether it redirected;
/// `None` for Envoy's 404 of no route.
async fn served(gw: &Gateway, req: &Request) -> Option<(String, bool)> {
    let header = |name: &str| req.header(name).unwrap_or_default();
    let method = Method::from_bytes(header(":method").as_bytes()).expect("a method");
    let h = req.header("x-h");
    let headers: Vec<(&str, &str)> = h.iter().map(|v| ("x-h", v.as_str())).collect();
    let reply = gw
        .send(method, &req.path, &header(":authority"), &headers)
        .await;
    match reply.status {
        404 => None,
        301 => Some((String::new(), true)),
        200 => {
            let mapping = reply
                .header("x-route")
                .unwrap_or_else(|| panic!("no x-route: {}", support::gateway::describe(&reply)));
            Some((format!("Mapping default/{mapping}"), false))
        }
        _ => panic!("{req:?}: {}", support::gateway::describe(&reply)),
    }
}
