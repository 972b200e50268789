//! A snapshot's life beyond create and delete, through the `tandem` binary: timestamped
//! names that never collide, and holds that no delete path gets past.

use std::collections::HashSet;

mod common;
use common::*;

fn json(p: &Pool, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&p.ok(args)).unwrap()
}

/// `daily_GMT-YYYY.MM.DD-HH.MM.SS.uuuuuu` without the microseconds (which it must have).
fn second_of(name: &str) -> &str {
    let (second, micros) = name.rsplit_once('.').unwrap();
    assert!(
        micros.len() == 6 && micros.bytes().all(|b| b.is_ascii_digit()),
        "no microseconds in {name}"
    );
    assert_eq!(
        second.len(),
        "daily_GMT-YYYY.MM.DD-HH.MM.SS".len(),
        "{name}"
    );
    second
}

#[test]
fn timestamped_creates_in_one_second_both_succeed() {
    let p = Pool::new();
    p.ok(&["volume", "create", "v"]);
    let mut names = Vec::new();
    // Create until two land in the same second (a create takes well under a second).
    for _ in 0..20 {
        let out = json(
            &p,
            &["snapshot", "create", "daily", "v", "--timestamp", "--json"],
        );
        let name = out["snapshot"]["name"].as_str().unwrap().to_string();
        assert!(name.starts_with("daily_GMT-"), "{name}");
        names.push(name);
        let n = names.len();
        if n >= 2 && second_of(&names[n - 1]) == second_of(&names[n - 2]) {
            break;
        }
    }
    let n = names.len();
    assert!(
        n >= 2 && second_of(&names[n - 1]) == second_of(&names[n - 2]),
        "no two creates in one second: {names:?}"
    );
    assert_eq!(names.iter().collect::<HashSet<_>>().len(), n, "{names:?}");
    let list = json(&p, &["snapshot", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), n);
}
