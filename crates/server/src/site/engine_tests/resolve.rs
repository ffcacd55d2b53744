//! [`resolve_by_location`] and [`by_location`]: the tables that key the
//! `proxy_pass` and single-location `uwsgi_pass` handlers by location.

use std::sync::Arc;

use portico_config::site::{Location, LocationConfig, Site};

use super::{location, prefix, server};
use crate::site::engine::{LocationId, by_location, resolve_by_location};

fn id(server: usize, index: usize) -> LocationId {
    LocationId { server, index }
}

/// Server 0: `/a` (holding `/a/b`), `/c`, named `@n`; server 1: `/d`.
fn two_servers() -> Site {
    let config = Arc::new(LocationConfig::default());
    let at = |uri: &str| location(prefix(uri), config.clone());
    let mut a = at("/a");
    a.locations.push(at("/a/b"));
    let named = location(prefix("@n"), config.clone());
    Site {
        servers: vec![
            server(LocationConfig::default(), vec![a, at("/c")], vec![named]),
            server(LocationConfig::default(), vec![at("/d")], Vec::new()),
        ],
        ..Site::default()
    }
}

fn lookup(table: &[(usize, &'static str)], location: &Location) -> Option<&'static str> {
    by_location(table, Some(location))
}

fn addresses<T>(table: &[(usize, T)]) -> Vec<usize> {
    table.iter().map(|(a, _)| *a).collect()
}

#[test]
fn resolve_by_location_finds_nested_named_and_later_server_locations() {
    let site = two_servers();
    let map = vec![(id(0, 1), "a/b"), (id(0, 3), "@n"), (id(1, 0), "d")];
    let table = resolve_by_location(&site, &map);
    assert_eq!(table.len(), 3);
    let s0 = &site.servers[0];
    assert_eq!(lookup(&table, &s0.locations[0].locations[0]), Some("a/b"));
    assert_eq!(lookup(&table, &s0.named[0]), Some("@n"));
    assert_eq!(lookup(&table, &site.servers[1].locations[0]), Some("d"));
}

#[test]
fn resolve_by_location_leaves_unmapped_locations_and_unknown_ids_out() {
    let site = two_servers();
    let map = vec![
        (id(0, 2), "c"),
        (id(0, 9), "past the end"),
        (id(7, 0), "no server"),
    ];
    let table = resolve_by_location(&site, &map);
    assert_eq!(table.len(), 1);
    let s0 = &site.servers[0];
    assert_eq!(lookup(&table, &s0.locations[1]), Some("c"));
    assert_eq!(lookup(&table, &s0.locations[0]), None);
    assert_eq!(lookup(&table, &site.servers[1].locations[0]), None);
    assert_eq!(by_location(&table, None), None);
}

#[test]
fn resolve_by_location_gives_equal_maps_equal_tables_for_any_value_type() {
    let site = two_servers();
    let ids = [id(0, 0), id(1, 0)];
    let numbers = resolve_by_location(&site, &[(ids[0], 1u32), (ids[1], 2u32)]);
    let words = resolve_by_location(&site, &[(ids[1], "two"), (ids[0], "one")]);
    assert_eq!(addresses(&numbers), addresses(&words));
    assert_eq!(numbers.len(), 2);
}
