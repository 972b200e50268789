//! `snapshot config` applies every setting or none, and refuses barrier timeouts below 1 ms.

mod common;

use common::Pool;

/// The volume's own (not inherited) settings, from `snapshot config VOL --json`.
fn own(p: &Pool, vol: &str) -> Vec<(String, String)> {
    let out = p.ok(&["snapshot", "config", vol, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let opts = v["volumes"][0]["options"].as_object().unwrap();
    opts.iter()
        .filter(|(_, o)| o["source"] == "volume")
        .map(|(k, o)| match &o["value"] {
            serde_json::Value::String(s) => (k.clone(), s.clone()),
            other => (k.clone(), other.to_string()),
        })
        .collect()
}

#[test]
fn a_bad_value_leaves_every_setting_as_it_was() {
    let p = Pool::new();
    p.ok(&["volume", "create", "v"]);
    let before = own(&p, "v");
    let e = p.fails(
        &[
            "snapshot",
            "config",
            "v",
            "--snap-max-hard-limit",
            "5",
            "--barrier-timeout",
            "bogus",
        ],
        1,
    );
    assert!(e.contains("barrier-timeout"), "{e}");
    assert_eq!(own(&p, "v"), before, "nothing was applied");
    // The same for the system-wide settings.
    let sys = p.ok(&["snapshot", "config", "--json"]);
    p.fails(
        &[
            "snapshot",
            "config",
            "--snap-max-hard-limit",
            "7",
            "--auto-delete",
            "sometimes",
        ],
        1,
    );
    assert_eq!(p.ok(&["snapshot", "config", "--json"]), sys);
    // Good values are all applied.
    p.ok(&[
        "snapshot",
        "config",
        "v",
        "--snap-max-hard-limit",
        "5",
        "--barrier-timeout",
        "2s",
    ]);
    let now = own(&p, "v");
    assert!(
        now.contains(&("snap-max-hard-limit".into(), "5".into())),
        "{now:?}"
    );
    assert_eq!(now.len(), 2, "{now:?}");
}

#[test]
fn barrier_timeouts_under_a_millisecond_are_refused() {
    let p = Pool::new();
    p.ok(&["volume", "create", "v"]);
    for tiny in ["0.0000001ms", "0.5ms", "0", "0s"] {
        let e = p.fails(&["snapshot", "config", "v", "--barrier-timeout", tiny], 1);
        assert!(e.contains("from 1ms"), "{tiny}: {e}");
    }
    assert!(own(&p, "v").is_empty());
    p.ok(&["snapshot", "config", "v", "--barrier-timeout", "1ms"]);
}
