#[path = "../benches/fleet.rs"]
mod fleet;
use legate_agent::ir::{self, group, host, mapping};
fn main() {
    let resources = fleet::resources(10_000, 100, 1);
    let settings = ir::Settings::default();
    let refs: Vec<&legate_crds::Resource> = resources.iter().collect();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let mut routes = Vec::new();
        for r in &resources {
            if let legate_crds::Resource::Mapping(m) = r {
                routes.push(mapping::route(m, &settings).unwrap().0);
            }
        }
        let t1 = t.elapsed();
        let mut rej = Vec::new();
        let groups = group::groups(routes, &mut rej);
        let t2 = t.elapsed();
        let hosts = host::hosts(&refs, &mut rej);
        let listeners = host::listeners(&refs, &mut rej);
        let t3 = t.elapsed();
        let mut un = Vec::new();
        let ls = host::bind(&listeners, &hosts, &groups, &mut un);
        let t4 = t.elapsed();
        eprintln!(
            "routes {:?} groups {:?} hosts {:?} bind {:?} ({} vhosts)",
            t1,
            t2 - t1,
            t3 - t2,
            t4 - t3,
            ls[0].virtual_hosts.len()
        );
    }
}
