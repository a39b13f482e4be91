//! `add_linkerd_headers` on the data path: the upstream sees `l5d-dst-override: <host>:<port>`,
//! the header a Linkerd sidecar routes by, when the Mapping sets it or, where the Mapping says
//! nothing, when the `ambassador` Module does (Emissary: `python/ambassador/src/ambassador/ir/
//! irhttpmapping.py`; its test: `python/tests/src/tests/kat/t_linkerd.py` if present).

mod support;

use pretty_assertions::assert_eq;
use support::{
    Upstream,
    gateway::{Gateway, module, route, served_by},
};

#[tokio::test]
async fn the_mapping_or_else_the_module_adds_the_linkerd_destination_header() {
    let gw = Gateway::start().await;
    let up = Upstream::start("shop").await;
    let target = up.service();
    gw.write(
        "routes.yaml",
        &[
            route("own", &up, "prefix: /own/\nadd_linkerd_headers: true"),
            route("quiet", &up, "prefix: /quiet/\nadd_linkerd_headers: false"),
            route("plain", &up, "prefix: /plain/"),
        ]
        .concat(),
    );
    let echo = served_by(&gw.wait_upstream("/own/", "shop").await, "shop");
    assert_eq!(echo["headers"]["l5d-dst-override"], target.as_str());
    let echo = served_by(&gw.wait_upstream("/plain/", "shop").await, "shop");
    assert_eq!(echo["headers"]["l5d-dst-override"], serde_json::Value::Null);

    // The Module's default reaches the Mapping that says nothing, not the one that says false.
    gw.write("module.yaml", &module("add_linkerd_headers: true"));
    let echo = gw
        .wait_for("/plain/", "the Module's default", |r| {
            r.status == 200 && r.json()["headers"]["l5d-dst-override"].is_string()
        })
        .await
        .json();
    assert_eq!(echo["headers"]["l5d-dst-override"], target.as_str());
    let echo = served_by(&gw.get("/quiet/", "example.com").await, "shop");
    assert_eq!(echo["headers"]["l5d-dst-override"], serde_json::Value::Null);
}
