//! The README's compatibility tables say exactly what the code does.

mod common;

use std::collections::BTreeSet;

use tinylet::config::{FLAGS_NOT_IMPLEMENTED, IMPLEMENTED_FIELDS, flags, kubelet};

/// The backticked names in the README table row whose first cell is `status`, under `heading`.
fn row(heading: &str, status: &str) -> BTreeSet<String> {
    let readme = common::read(&common::repo().join("README.md"));
    let section = readme
        .split(heading)
        .nth(1)
        .unwrap_or_else(|| panic!("no {heading:?} in README"));
    let line = section
        .lines()
        .find(|l| l.starts_with(&format!("| {status} |")))
        .unwrap_or_else(|| panic!("no row {status:?} under {heading:?}"));
    let cell = line.splitn(3, '|').nth(2).unwrap_or_default();
    // Only top-level names: drop parenthesised notes.
    let mut names = BTreeSet::new();
    let mut depth = 0;
    for (i, part) in cell.split('`').enumerate() {
        if i % 2 == 0 {
            depth += part.matches('(').count() as i32 - part.matches(')').count() as i32;
        } else if depth == 0 {
            names.insert(part.trim_start_matches("--").to_string());
        }
    }
    names
}

fn set<'a>(items: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    items.into_iter().map(String::from).collect()
}

#[test]
fn config_field_table_matches_the_code() {
    let heading = "### KubeletConfiguration fields";
    let supported = set(IMPLEMENTED_FIELDS.iter().copied());
    let rest = set(kubelet::FIELDS
        .iter()
        .copied()
        .filter(|f| !IMPLEMENTED_FIELDS.contains(f)));
    assert_eq!(row(heading, "supported"), supported);
    assert_eq!(
        row(heading, "accepted, validated, not implemented yet"),
        rest
    );
}

#[test]
fn flag_table_matches_the_code() {
    let heading = "### Flags";
    let all = set(flags::SUPPORTED.iter().map(|(n, _, _)| *n));
    let ni = set(FLAGS_NOT_IMPLEMENTED.iter().copied());
    assert!(ni.is_subset(&all));
    assert_eq!(row(heading, "supported"), &all - &ni);
    assert_eq!(row(heading, "accepted, validated, not implemented yet"), ni);
    assert_eq!(
        row(
            heading,
            "removed from the kubelet: accepted with one warning line"
        ),
        set(flags::REMOVED.iter().map(|(n, _, _)| *n))
    );
}
