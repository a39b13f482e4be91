//! The matcher tree chooses the route the list would: both Envoy forms of a virtual host are
//! evaluated by a model of Envoy's route and matcher evaluation, over random route sets and
//! random requests.

use envoy_types::pb::envoy::config::route::v3::VirtualHost;
use proptest::prelude::*;

use super::model::{answer, chosen_host, chosen_route, hosts, mappings, request, spec};
use crate::{
    envoy::route::{listed_virtual_host, virtual_host},
    ir::{self, Settings},
};

const LISTENER: &str = "apiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {name: l, namespace: default}\n\
    spec: {port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}\n";

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn the_tree_chooses_the_route_the_list_would(
        specs in prop::collection::vec(spec(), 1..14),
        insecure in prop::sample::select(vec!["Route", "Redirect", "Reject"]),
        requests in prop::collection::vec(request(), 40),
    ) {
        let text = [LISTENER, &hosts(insecure), &mappings(&specs, |i| format!("s{i}"))].concat();
        let loaded = legate_crds::loader::load_str("t.yaml", &text).expect("valid YAML");
        let ir = ir::build(&loaded.resources, &Settings::default());
        let vhosts = &ir.listeners[0].virtual_hosts;
        let listed: Vec<VirtualHost> = vhosts.iter().map(|v| listed_virtual_host(v)).collect();
        let treed: Vec<VirtualHost> = vhosts.iter().map(|v| virtual_host(v)).collect();
        for req in &requests {
            let Some(list) = chosen_host(&listed, req) else { continue };
            let tree = chosen_host(&treed, req).expect("the same hosts");
            let want = chosen_route(list, req).as_ref().map(answer);
            let got = chosen_route(tree, req).as_ref().map(answer);
            prop_assert_eq!(got, want, "{:?} in {}\n{}", req, list.name, text);
        }
    }
}

mod plan {
    use super::super::{Shape, exact_path, plan};

    fn prefix(key: &str) -> Shape<'_> {
        Shape {
            key: Some(key),
            conditions: Some(vec![]),
        }
    }

    fn conditional(key: &str) -> Shape<'_> {
        Shape {
            key: Some(key),
            conditions: Some(vec![exact_path(key).expect("a path")]),
        }
    }

    fn segments(shapes: &[Shape]) -> (Vec<Vec<String>>, std::ops::Range<usize>) {
        let p = plan(shapes).expect("a tree");
        let keys = p
            .segments
            .iter()
            .map(|s| {
                let mut keys: Vec<String> = s.nodes.keys().map(|k| (*k).to_owned()).collect();
                keys.sort();
                keys
            })
            .collect();
        (keys, p.rest)
    }

    #[test]
    fn ten_thousand_prefixes_are_one_map() {
        let keys: Vec<String> = (0..10_000).map(|i| format!("/svc-{i:05}/")).collect();
        let shapes: Vec<Shape> = keys.iter().map(|k| prefix(k)).collect();
        let (segments, rest) = segments(&shapes);
        assert_eq!(segments.len(), 1);
        assert_eq!(segments[0].len(), 10_000);
        assert!(rest.is_empty());
    }

    #[test]
    fn a_shorter_prefix_listed_first_starts_a_new_map() {
        // Precedence put /a/ before /a/b/: the tree would try /a/b/ first.
        // (Four routes, more than a unit test's list gathers.)
        let shapes = [
            prefix("/a/"),
            prefix("/a/b/"),
            prefix("/c/"),
            prefix("/d/"),
            prefix("/e/"),
        ];
        let (segments, rest) = segments(&shapes);
        assert_eq!(segments, [vec!["/a/"], vec!["/a/b/", "/c/", "/d/", "/e/"]]);
        assert!(rest.is_empty());
        // Longer first (Emissary's usual order) is one map.
        let longer_first = [prefix("/a/b/"), prefix("/a/"), prefix("/b/"), prefix("/c/")];
        let (one, _) = super::plan::segments(&longer_first);
        assert_eq!(one, [vec!["/a/", "/b/", "/c/"]]);
    }

    /// The keys of the only (last) map; with a list after it if `rest`.
    fn gathered(shapes: &[Shape]) -> Vec<(String, Option<Vec<usize>>)> {
        let p = plan(shapes).expect("a tree");
        let mut keys: Vec<(String, Option<Vec<usize>>)> = p.segments[0]
            .nodes
            .iter()
            .map(|(k, n)| {
                (
                    (*k).to_owned(),
                    n.tries.is_empty().then(|| n.last.clone()).flatten(),
                )
            })
            .collect();
        keys.sort();
        keys
    }

    #[test]
    fn keys_under_a_common_prefix_are_gathered_into_a_list_a_few_routes_at_a_time() {
        // Unit tests gather up to 3 routes: /b/ has 4, so its keys stay apart.
        let keys = ["/a/1", "/a/2", "/b/1", "/b/2", "/b/3", "/b/4"];
        let shapes: Vec<Shape> = keys.iter().map(|k| prefix(k)).collect();
        let want = [
            ("/a/", Some(vec![0, 1])),
            ("/b/1", Some(vec![2])),
            ("/b/2", Some(vec![3])),
        ];
        let got = gathered(&shapes);
        assert_eq!(got[..3], want.map(|(k, l)| (k.to_owned(), l)));
        assert_eq!(got.len(), 5);
    }

    #[test]
    fn a_gathered_list_ends_with_the_routes_of_the_keys_it_would_fall_back_to() {
        let regex = Shape {
            key: None,
            conditions: None,
        };
        let shapes = [
            prefix("/a/1"),
            prefix("/a/2"),
            prefix("/a/3"),
            prefix("/a"),
            regex,
        ];
        // /a matches whatever /a/ does not: the list cannot end where the tree goes on.
        let want = [("/a", Some(vec![3])), ("/a/", Some(vec![0, 1, 2, 3]))];
        assert_eq!(gathered(&shapes), want.map(|(k, l)| (k.to_owned(), l)));
    }

    #[test]
    fn keys_are_not_gathered_where_the_tree_goes_on_after_them() {
        let regex = Shape {
            key: None,
            conditions: None,
        };
        // A path under /a/ that neither matches goes on to the regex route: a list cannot.
        let shapes = [prefix("/a/1"), conditional("/a/2"), regex];
        let keys: Vec<String> = gathered(&shapes).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["/a/1", "/a/2"]);
        // With nothing after it, a miss is the list's 404 as the tree's.
        let closed = gathered(&[prefix("/a/1"), conditional("/a/2")]);
        assert_eq!(closed, [("/a/".to_owned(), Some(vec![0, 1]))]);
    }

    #[test]
    fn a_gathering_prefix_ends_on_a_whole_character() {
        // The keys differ inside é (C3 A9) and è (C3 A8): each pair gathers under its letter.
        let keys = ["/é1", "/é2", "/è1", "/è2"];
        let shapes: Vec<Shape> = keys.iter().map(|k| prefix(k)).collect();
        let want = [("/è", Some(vec![2, 3])), ("/é", Some(vec![0, 1]))];
        assert_eq!(gathered(&shapes), want.map(|(k, l)| (k.to_owned(), l)));
        // Three gather under the last whole character they share.
        let three = gathered(&shapes[..3]);
        assert_eq!(three, [("/".to_owned(), Some(vec![0, 1, 2]))]);
    }

    #[test]
    fn from_a_route_no_key_serves_the_rest_is_listed() {
        let regex = Shape {
            key: None,
            conditions: None,
        };
        let (segments, rest) = segments(&[prefix("/a/"), regex, prefix("/b/")]);
        assert_eq!(segments, [vec!["/a/"]]);
        assert_eq!(rest, 1..3);
        assert!(
            plan(&[
                Shape {
                    key: None,
                    conditions: None
                },
                prefix("/a/")
            ])
            .is_none()
        );
    }

    #[test]
    fn a_prefix_longer_than_a_key_may_be_is_listed() {
        let long = format!("/{}", "a".repeat(super::super::MAX_KEY));
        let (segments, rest) = segments(&[prefix("/a/"), prefix(&long), prefix("/b/")]);
        assert_eq!(segments, [vec!["/a/"]]);
        assert_eq!(rest, 1..3);
    }

    #[test]
    fn a_canary_is_listed_with_the_route_behind_it_and_without_one_ends_the_tree() {
        let share = |key| Shape {
            key: Some(key),
            conditions: None,
        };
        let p = plan(&[
            share("/c/"),
            conditional("/c/"),
            prefix("/c/"),
            prefix("/d/"),
        ])
        .expect("a tree");
        assert_eq!(p.segments[0].nodes["/c/"].last, Some(vec![0, 1, 2]));
        assert!(p.rest.is_empty());
        let p = plan(&[prefix("/d/"), share("/c/"), conditional("/c/")]).expect("a tree");
        assert_eq!(p.rest, 1..3);
    }

    #[test]
    fn routes_after_one_that_always_matches_its_key_are_left_out() {
        let p = plan(&[conditional("/a/"), prefix("/a/"), conditional("/a/")]).expect("a tree");
        let node = &p.segments[0].nodes["/a/"];
        let tries: Vec<usize> = node.tries.iter().map(|(_, i)| *i).collect();
        assert_eq!((tries, node.last.clone()), (vec![0], Some(vec![1])));
    }
}
