//! Tests of the configuration file: defaults, decoding with located problems, validation.

use super::*;
#[test]
fn defaults_are_valid_and_print_like_upstream() {
    let hard = default_eviction_hard();
    let printed: Vec<String> = hard.values().map(|t| t.0.to_string()).collect();
    assert_eq!(printed, ["100Mi", "10%", "5%", "15%", "5%"]);
    assert_eq!(
        Quantity::mebibytes(10),
        Quantity::parse("10Mi").unwrap_or_else(|e| panic!("{e}"))
    );
    assert!(validate(&KubeletConfiguration::default()).is_empty());
}

#[test]
fn field_list_matches_serialized_names() {
    let v = match serde_yaml::to_value(KubeletConfiguration::default()) {
        Ok(Value::Mapping(m)) => m,
        other => panic!("{other:?}"),
    };
    for k in v.keys() {
        let k = k.as_str().unwrap_or_default();
        assert!(FIELDS.contains(&k), "{k} serialized but not in FIELDS");
    }
}

#[test]
fn runtime_endpoint_forms() {
    assert_eq!(
        RuntimeEndpoint::parse("/run/containerd/containerd.sock").map(|e| e.path().to_string()),
        Ok("/run/containerd/containerd.sock".into())
    );
    assert!(RuntimeEndpoint::parse("tcp://1.2.3.4:1").is_err());
    assert!(RuntimeEndpoint::parse("unix://relative").is_err());
}

#[test]
fn cidrs() {
    assert!(Cidr::parse("172.30.0.0/16").is_ok());
    assert!(Cidr::parse("fd00::/64").is_ok());
    assert!(Cidr::parse("172.30.0.0/33").is_err());
    assert!(Cidr::parse("172.30.0.0").is_err());
}

#[test]
fn the_log_query_needs_its_gate_and_the_log_handler() {
    let mut c = KubeletConfiguration {
        enable_system_log_query: true,
        ..KubeletConfiguration::default()
    };
    assert_eq!(
        validate(&c),
        [(
            "enableSystemLogQuery",
            "NodeLogQuery feature gate is required for enableSystemLogHandler".to_string()
        )]
    );
    c.feature_gates.insert("NodeLogQuery".into(), true);
    assert!(validate(&c).is_empty());
    c.enable_system_log_handler = false;
    assert_eq!(
        validate(&c),
        [(
            "enableSystemLogQuery",
            "enableSystemLogHandler is required for enableSystemLogQuery".to_string()
        )]
    );
}
