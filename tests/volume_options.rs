//! `volume get` shows each option's value in force and its source (default, pool, volume)
//! as `zfs get` does; `volume inherit` (or `volume set VOL KEY default`) drops the volume's
//! own value; lowering the hard limit below a volume's snapshot count warns.

mod common;
use common::*;

/// `value<TAB>source` of one option, from `volume get -H`.
fn got(p: &Pool, vol: &str, key: &str) -> String {
    p.ok(&["volume", "get", vol, key, "-H", "-o", "value,source"])
        .trim_end()
        .to_string()
}

#[test]
fn options_show_their_source_and_inherit_drops_the_volume_value() {
    let p = Pool::new();
    p.ok(&["volume", "create", "v"]);
    assert_eq!(got(&p, "v", "auto-delete"), "off\tdefault");
    // Set system-wide: the pool's value, and its source.
    p.ok(&["snapshot", "config", "--auto-delete", "on"]);
    assert_eq!(got(&p, "v", "auto-delete"), "on\tpool");
    // Set on the volume: it wins.
    p.ok(&["volume", "set", "v", "auto-delete", "off"]);
    assert_eq!(got(&p, "v", "auto-delete"), "off\tvolume");
    let info = p.ok(&["volume", "info", "v"]);
    assert!(
        info.contains("auto-delete") && info.contains("off (volume)"),
        "{info}"
    );
    // `set ... default` drops it: back to the pool's value.
    let out = p.ok(&["volume", "set", "v", "auto-delete", "default"]);
    assert_eq!(out, "v: auto-delete = on (pool)\n");
    assert_eq!(got(&p, "v", "auto-delete"), "on\tpool");
    // `inherit` too, for an option the pool does not set.
    p.ok(&["volume", "set", "v", "uss", "on"]);
    assert_eq!(got(&p, "v", "uss"), "on\tvolume");
    p.ok(&["volume", "inherit", "v", "uss"]);
    assert_eq!(got(&p, "v", "uss"), "off\tdefault");
    let j = json(&p, &["volume", "get", "v", "--json"]);
    assert_eq!(j["options"]["auto-delete"]["value"], true, "{j}");
    assert_eq!(j["options"]["auto-delete"]["source"], "pool", "{j}");
    assert_eq!(j["options"]["uss"]["source"], "default", "{j}");
    // The lower hard limit is in force, whichever sets it.
    p.ok(&["snapshot", "config", "--snap-max-hard-limit", "5"]);
    p.ok(&["volume", "set", "v", "snap-max-hard-limit", "8"]);
    assert_eq!(got(&p, "v", "snap-max-hard-limit"), "5\tpool");
    p.ok(&["volume", "set", "v", "snap-max-hard-limit", "3"]);
    assert_eq!(got(&p, "v", "snap-max-hard-limit"), "3\tvolume");
    let e = p.fails(&["volume", "inherit", "v", "nope"], 1);
    assert!(
        e.contains("unknown option 'nope'") && e.contains("auto-delete"),
        "{e}"
    );
    let e = p.fails(&["volume", "get", "v", "nope"], 1);
    assert!(e.contains("unknown option 'nope'"), "{e}");
}

#[test]
fn lowering_the_hard_limit_below_the_snapshot_count_warns() {
    let p = Pool::new();
    p.ok(&["volume", "create", "v"]);
    for s in ["s1", "s2", "s3"] {
        p.ok(&["snapshot", "create", s, "v"]);
    }
    let o = p.run(&["volume", "set", "v", "snap-max-hard-limit", "5"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).is_empty());
    let o = p.run(&["volume", "set", "v", "snap-max-hard-limit", "2"]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning: volume 'v' has 3 snapshots, more than its hard limit 2")
            && err.contains("until 2 are deleted"),
        "{err}"
    );
    let o = p.run(&["snapshot", "config", "--snap-max-hard-limit", "1"]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("hard limit 1"), "{err}");
}

/// `volume set` answers with the value now in force and its source, as `volume get` would:
/// usually the volume's own, but a pool-wide hard limit lower than the one set still wins,
/// and the answer says so (text and JSON).
#[test]
fn set_reports_the_value_in_force_and_its_source() {
    let p = Pool::new();
    p.ok(&["volume", "create", "v"]);
    assert_eq!(
        p.ok(&["volume", "set", "v", "auto-delete", "on"]),
        "v: auto-delete = on (volume)\n"
    );
    p.ok(&["snapshot", "config", "--snap-max-hard-limit", "5"]);
    assert_eq!(
        p.ok(&["volume", "set", "v", "snap-max-hard-limit", "8"]),
        "v: snap-max-hard-limit = 5 (pool; the volume's own value 8 is not in force)\n"
    );
    assert_eq!(
        p.ok(&["volume", "set", "v", "snap-max-hard-limit", "3"]),
        "v: snap-max-hard-limit = 3 (volume)\n"
    );

    let j = json(
        &p,
        &["volume", "set", "v", "snap-max-hard-limit", "9", "--json"],
    );
    assert_eq!(j["volume"], "v", "{j}");
    assert_eq!(j["key"], "snap-max-hard-limit", "{j}");
    assert_eq!(j["value"], 5, "{j}");
    assert_eq!(j["source"], "pool", "{j}");
    assert_eq!(j["volume_value"], 9, "{j}");
    let j = json(&p, &["volume", "set", "v", "uss", "on", "--json"]);
    assert_eq!(
        (&j["value"], &j["source"], &j["volume_value"]),
        (&true.into(), &"volume".into(), &true.into()),
        "{j}"
    );
    // `set ... default` answers in `volume get`'s shape, with the source it falls back to.
    let j = json(&p, &["volume", "set", "v", "uss", "default", "--json"]);
    assert_eq!(j["options"]["uss"]["value"], false, "{j}");
    assert_eq!(j["options"]["uss"]["source"], "default", "{j}");
    let j = json(
        &p,
        &["volume", "inherit", "v", "snap-max-hard-limit", "--json"],
    );
    assert_eq!(j["options"]["snap-max-hard-limit"]["value"], 5, "{j}");
    assert_eq!(j["options"]["snap-max-hard-limit"]["source"], "pool", "{j}");
    // `volume info` carries the same.
    let j = json(&p, &["volume", "info", "v", "--json"]);
    assert_eq!(j["options"]["auto-delete"]["source"], "volume", "{j}");
    assert_eq!(j["options"]["snap-max-hard-limit"]["source"], "pool", "{j}");
}
