//! `--json`, through the real binary: every command takes it (also those that change
//! things: create, mount, clone, activate, delete, restore) and prints one document of
//! schema 1: an object with `schema`, named keys, sizes in bytes as numbers, times as
//! `{rfc3339, unix, unix_us}`, option values typed with their source.

use std::fs;

use serde_json::Value;

mod common;
use common::*;

/// `tandem ARGS --json`, parsed; checks the schema version.
fn doc(p: &Pool, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let out = p.ok(&a);
    let v: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: not JSON:\n{out}"));
    assert_eq!(v["schema"], 1, "{args:?}: {v}");
    v
}

/// A time object: RFC 3339 UTC and unix seconds that agree.
fn is_time(t: &Value) -> bool {
    let (Some(s), Some(unix), Some(us)) = (
        t["rfc3339"].as_str(),
        t["unix"].as_i64(),
        t["unix_us"].as_i64(),
    ) else {
        return false;
    };
    s.len() == 20
        && s.ends_with('Z')
        && s.as_bytes()[10] == b'T'
        && us.div_euclid(1_000_000) == unix
}

#[test]
fn every_command_prints_one_schema_1_document_with_named_keys() {
    let mut p = Pool::new();
    let (m, mc) = (p.mnt(), p.mnt());

    let v = doc(&p, &["volume", "create", "v", "--block-size", "4096"]);
    assert_eq!(v["name"], "v");
    assert_eq!(v["block_size"], 4096);
    assert!(
        v["logical_bytes"].is_u64() && v["physical_bytes"].is_u64(),
        "{v}"
    );
    assert!(is_time(&v["created"]), "{v}");
    doc(&p, &["volume", "create", "w"]);

    let l = doc(&p, &["volume", "list"]);
    let names: Vec<&str> = l["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["v", "w"], "{l}");

    let mt = doc(&p, &["mount", "v", m.to_str().unwrap()]);
    assert_eq!(mt["volume"], "v");
    assert!(mt["mountpoint"].is_string(), "{mt}");
    assert!(mt["options"].is_array() && mt["snapshot"].is_null(), "{mt}");
    fs::write(m.join("f"), vec![1u8; 100_000]).unwrap();

    // Options typed, with their source.
    let s = doc(&p, &["volume", "set", "v", "auto-delete", "on"]);
    assert_eq!(
        (&s["key"], &s["value"]),
        (&"auto-delete".into(), &true.into())
    );
    let i = doc(&p, &["volume", "info", "v"]);
    assert_eq!(i["options"]["auto-delete"]["value"], true, "{i}");
    assert_eq!(i["options"]["auto-delete"]["source"], "volume", "{i}");
    assert_eq!(i["options"]["snap-max-hard-limit"]["value"], 256, "{i}");
    assert_eq!(i["options"]["snap-max-hard-limit"]["source"], "default");
    assert_eq!(i["options"]["barrier-timeout"]["value"], 10.0, "{i}");
    assert!(i["mountpoints"].is_array(), "{i}");

    let c = doc(&p, &["snapshot", "create", "s1", "v"]);
    let snap = &c["snapshot"];
    assert_eq!(snap["name"], "s1");
    assert_eq!(snap["members"][0]["volume"], "v", "{c}");
    assert!(snap["members"][0]["generation"].is_u64(), "{c}");
    assert!(is_time(&snap["created"]), "{c}");
    assert!(
        c["warnings"].is_array() && c["auto_deleted"].is_array(),
        "{c}"
    );
    fs::write(m.join("g"), b"new").unwrap();
    doc(&p, &["snapshot", "create", "s2", "v"]);

    let l = doc(&p, &["snapshot", "list"]);
    assert_eq!(l["snapshots"].as_array().unwrap().len(), 2, "{l}");
    assert!(is_time(&l["snapshots"][1]["created"]), "{l}");
    let st = doc(&p, &["snapshot", "status"]);
    assert_eq!(st["snapshots"][0]["state"], "created", "{st}");
    let si = doc(&p, &["snapshot", "info", "s1"]);
    assert!(
        si["exclusive_bytes"].is_u64() && si["pause_us"].is_u64(),
        "{si}"
    );

    let d = doc(&p, &["snapshot", "diff", "s1", "s2"]);
    assert_eq!(d["volumes"][0]["volume"], "v", "{d}");
    assert_eq!(
        d["volumes"][0]["changes"],
        serde_json::json!([{"change": "added", "path": "/g"}]),
        "{d}"
    );

    let h = doc(&p, &["snapshot", "hold", "s1", "keep"]);
    assert_eq!(h["holds"][0]["tag"], "keep", "{h}");
    assert!(is_time(&h["holds"][0]["since"]), "{h}");
    doc(&p, &["snapshot", "release", "s1", "keep"]);

    let a = doc(&p, &["snapshot", "activate", "s1"]);
    assert_eq!(a["snapshot"], "s1");
    assert_eq!(a["mounts"][0]["snapshot"], "s1", "{a}");
    let info = doc(&p, &["snapshot", "info", "s1"]);
    assert_eq!(info["mountpoints"][0]["volume"], "v", "{info}");
    assert!(info["mountpoints"][0]["mountpoint"].is_string(), "{info}");
    let a = doc(&p, &["snapshot", "deactivate", "s1"]);
    assert_eq!(a["snapshot"], "s1");

    let cl = doc(&p, &["snapshot", "clone", "c", "s1"]);
    assert_eq!(cl["volumes"], serde_json::json!(["c"]), "{cl}");
    assert!(cl["group"].is_null(), "{cl}");
    doc(&p, &["mount", "c", mc.to_str().unwrap()]);
    let um = doc(&p, &["umount", "c"]);
    assert_eq!(um["volume"], "c");

    let df = doc(&p, &["df"]);
    let vol = df["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v")
        .cloned()
        .unwrap();
    for k in [
        "logical_bytes",
        "physical_bytes",
        "unique_bytes",
        "shared_bytes",
        "origin_bytes",
    ] {
        assert!(vol[k].is_u64(), "{k}: {df}");
    }
    assert!(df["snapshots"][0]["exclusive_bytes"].is_u64(), "{df}");
    assert!(df["pool"]["physical_bytes"].is_u64(), "{df}");

    let status = doc(&p, &["status"]);
    assert!(
        status["pid"].is_u64() && status["mounts"].is_array(),
        "{status}"
    );

    doc(&p, &["umount", "v"]);
    let r = doc(&p, &["snapshot", "restore", "s1"]);
    assert_eq!(r["snapshot"], "s1");
    assert!(r["undo"].is_string() && r["rows_changed"].is_u64(), "{r}");

    let cfg = doc(
        &p,
        &["snapshot", "config", "v", "--snap-max-hard-limit", "50"],
    );
    assert_eq!(cfg["system"]["snap-max-hard-limit"], 256, "{cfg}");
    let own = &cfg["volumes"][0]["options"]["snap-max-hard-limit"];
    assert_eq!(
        (&own["value"], &own["source"]),
        (&50.into(), &"volume".into())
    );

    let g = doc(&p, &["group", "create", "g", "w"]);
    assert_eq!(g["volumes"], serde_json::json!(["w"]), "{g}");
    assert!(is_time(&g["created"]), "{g}");
    assert_eq!(doc(&p, &["group", "list"])["groups"][0]["name"], "g");
    let sc = doc(
        &p,
        &["schedule", "add", "hourly", "--group", "g", "--every", "1h"],
    );
    assert_eq!(sc["every_ms"], 3_600_000);
    assert!(is_time(&sc["next_run"]) && sc["last_run"].is_null(), "{sc}");
    assert_eq!(
        doc(&p, &["schedule", "list"])["schedules"][0]["name"],
        "hourly"
    );
    assert_eq!(
        doc(&p, &["schedule", "disable", "hourly"])["enabled"],
        false
    );
    doc(&p, &["schedule", "remove", "hourly"]);
    let gd = doc(&p, &["group", "delete", "g"]);
    assert_eq!(gd["deleted"]["group"], "g", "{gd}");

    let vd = doc(&p, &["volume", "delete", "c"]);
    assert_eq!(vd["deleted"]["volume"], "c");
    let del = doc(&p, &["snapshot", "delete", "--volume", "v"]);
    assert_eq!(
        del["deleted"]["snapshots"].as_array().unwrap().len(),
        3,
        "{del}"
    );
    let rn = doc(&p, &["volume", "rename", "w", "x"]);
    assert_eq!(
        (&rn["renamed"]["volume"], &rn["renamed"]["to"]),
        (&"w".into(), &"x".into())
    );

    let pv = doc(&p, &["pool", "verify"]);
    assert!(pv["chunks"].is_u64() && pv["damaged"].is_array(), "{pv}");
    let sd = doc(&p, &["shutdown"]);
    assert_eq!(sd["stopped"], true, "{sd}");
    let pc = doc(&p, &["pool", "check"]);
    assert_eq!(pc["opens"], true, "{pc}");
}
