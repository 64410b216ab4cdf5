//! Limits in policy files and flags: parsed with their defaults, refused with their place.

use capnet_policy::{Limit, Policy};

fn load(text: &str) -> Result<Policy, String> {
    Policy::builder()
        .toml("policy.toml", text)
        .map(|b| b.build())
        .map_err(|e| e.to_string())
}

#[test]
fn an_instance_gets_every_default_the_file_leaves_out() {
    let policy = load("[limits]\nsockets = 100\nstream-buffer = 4096\n").unwrap();
    let limits = policy.limits();
    assert_eq!(limits.get(Limit::Sockets), Some(100));
    assert_eq!(limits.get(Limit::StreamBuffer), Some(4096));
    for limit in [
        Limit::Connections,
        Limit::Datagrams,
        Limit::Lookups,
        Limit::CallsInFlight,
    ] {
        assert_eq!(limits.get(limit), limit.default_value(), "{limit}");
    }
    assert_eq!(
        limits.get(Limit::BytesPerSecond),
        None,
        "no rate unless one is set"
    );
    assert_eq!(
        Policy::deny_all().limits().iter().count(),
        Limit::ALL.len() - 1
    );
}

#[test]
fn a_library_has_only_the_limits_its_table_sets() {
    let policy = load(
        "[library.weather.limits]\nconnections = 2\n\
         [library.metrics.allow]\nudp-send = [\"127.0.0.1:9\"]\n",
    )
    .unwrap();
    let weather = policy
        .library("weather")
        .expect("a limits table names the library");
    assert_eq!(
        weather.limits().iter().collect::<Vec<_>>(),
        vec![(Limit::Connections, 2)]
    );
    assert_eq!(
        policy.library("metrics").unwrap().limits().iter().count(),
        0
    );
}

#[test]
fn bad_limits_name_their_line_and_column() {
    assert_eq!(
        load("[limits]\nsockets = 0\n").unwrap_err(),
        "policy.toml:2:11: limit sockets = 0 is out of range (write 1 to 4294967295; to forbid a use, write a deny rule)"
    );
    assert_eq!(
        load("# c\n[limits]\nfiles = 3\n").unwrap_err(),
        "policy.toml:3:1: unknown limit \"files\" (valid: sockets, connections, stream-buffer, datagrams, lookups, calls-in-flight, bytes-per-second)"
    );
    assert!(
        load("[library.weather.limits]\ndatagrams = 5000\n")
            .unwrap_err()
            .starts_with(
                "policy.toml:2:13: limit datagrams = 5000 is out of range (write 1 to 1024;"
            )
    );
    assert_eq!(
        load("[limits]\nsockets = \"many\"\n").unwrap_err(),
        "policy.toml:2:11: limit sockets = \"many\" is not a whole number (write one without units, as in sockets = 8192)",
        "a value that is not a number is refused at its place"
    );
}

#[test]
fn calls_in_flight_is_counted_from_one_and_refused_at_zero_or_in_units() {
    let policy =
        load("[limits]\ncalls-in-flight = 16\n[library.weather.limits]\ncalls-in-flight = 2\n")
            .unwrap();
    assert_eq!(policy.limits().get(Limit::CallsInFlight), Some(16));
    assert_eq!(
        policy
            .library("weather")
            .unwrap()
            .limits()
            .get(Limit::CallsInFlight),
        Some(2)
    );
    assert_eq!(
        load("[limits]\ncalls-in-flight = 0\n").unwrap_err(),
        "policy.toml:2:19: limit calls-in-flight = 0 is out of range (write 1 to 4294967295; to forbid a use, write a deny rule)"
    );
    assert_eq!(
        load("[limits]\ncalls-in-flight = \"lots\"\n").unwrap_err(),
        "policy.toml:2:19: limit calls-in-flight = \"lots\" is not a whole number (write one without units, as in calls-in-flight = 256)"
    );
}

#[test]
fn a_rate_is_unset_unless_a_table_or_flag_sets_it() {
    let policy = load(
        "[limits]\nbytes-per-second = 1000000\n\
         [library.weather.limits]\nbytes-per-second = 4096\n\
         [library.metrics.limits]\nsockets = 2\n",
    )
    .unwrap();
    assert_eq!(policy.limits().get(Limit::BytesPerSecond), Some(1_000_000));
    let rate = |name| {
        policy
            .library(name)
            .unwrap()
            .limits()
            .get(Limit::BytesPerSecond)
    };
    assert_eq!((rate("weather"), rate("metrics")), (Some(4096), None));
    let flagged = Policy::builder()
        .limit_flag("--limit", false, "bytes-per-second=5000")
        .unwrap()
        .limit_flag("--library-limit", true, "weather.bytes-per-second=100")
        .unwrap()
        .build();
    assert_eq!(flagged.limits().get(Limit::BytesPerSecond), Some(5000));
    assert_eq!(
        flagged
            .library("weather")
            .unwrap()
            .limits()
            .get(Limit::BytesPerSecond),
        Some(100)
    );
}

#[test]
fn a_rate_that_is_zero_too_large_or_has_units_is_refused_saying_what_to_write() {
    assert_eq!(
        load("[limits]\nbytes-per-second = 0\n").unwrap_err(),
        "policy.toml:2:20: limit bytes-per-second = 0 is out of range (write 1 to 1000000000000; to forbid a use, write a deny rule)"
    );
    assert!(
        load("[limits]\nbytes-per-second = 1000000000001\n")
            .unwrap_err()
            .contains("is out of range (write 1 to 1000000000000;")
    );
    assert_eq!(
        load("[library.weather.limits]\nbytes-per-second = \"10MB\"\n").unwrap_err(),
        "policy.toml:2:20: limit bytes-per-second = \"10MB\" is not a whole number (write one without units, as in bytes-per-second = 1000000)"
    );
    assert_eq!(
        load("[limits]\nbytes-per-second = 1.5e6\n").unwrap_err(),
        "policy.toml:2:20: limit bytes-per-second = 1500000 is not a whole number (write one without units, as in bytes-per-second = 1000000)"
    );
    let flag = Policy::builder()
        .limit_flag("--limit", false, "bytes-per-second=10MB")
        .unwrap_err()
        .to_string();
    assert_eq!(
        flag,
        "--limit: limit bytes-per-second = 10MB is not a whole number (write one without units, as in bytes-per-second = 1000000)"
    );
}

#[test]
fn limit_flags_set_the_instance_and_a_library_and_the_last_one_wins() {
    let policy = Policy::builder()
        .limit_flag("--limit", false, "lookups=4")
        .unwrap()
        .limit_flag("--limit", false, " lookups = 8 ")
        .unwrap()
        .limit_flag("--library-limit", true, "weather.sockets=3")
        .unwrap()
        .build();
    assert_eq!(policy.limits().get(Limit::Lookups), Some(8));
    let weather = policy.library("weather").unwrap().limits();
    assert_eq!(weather.get(Limit::Sockets), Some(3));
}

#[test]
fn bad_limit_flags_say_what_to_write() {
    let err = |library, spec| {
        Policy::builder()
            .limit_flag("--limit", library, spec)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(false, "sockets"),
        "--limit: \"sockets\" is not KEY=VALUE (write sockets=256)"
    );
    assert_eq!(
        err(true, "sockets=3"),
        "--limit: \"sockets=3\" is not NAME.KEY=VALUE (write weather.connections=4)"
    );
    assert_eq!(
        err(true, "Weather.sockets=3"),
        "--limit: library name \"Weather\" is not a kebab-case label (write lowercase words joined by '-', as in weather or metrics-client)"
    );
    assert!(err(false, "sockets=-1").contains("limit sockets = -1 is out of range"));
    assert!(err(false, "socket=1").contains("unknown limit \"socket\""));
}
