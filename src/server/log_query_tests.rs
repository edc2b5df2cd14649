//! The node log query against the kubelet's own tests (kubelet_server_journal_test.go of
//! v1.34.4) and the texts its field errors print.

use super::*;
use crate::server::routes::query_pairs;

fn parsed(q: &str) -> Result<Option<Query>, String> {
    parse(&query_pairs(q)).map_err(|e| aggregate(&e))
}

fn query(q: &str) -> Query {
    match parsed(q) {
        Ok(Some(q)) => q,
        other => panic!("{q}: {other:?}"),
    }
}

fn t(s: &str) -> Time {
    Time::parse(s).unwrap_or_else(|| panic!("{s}"))
}

#[test]
fn parse_as_new_node_log_query() {
    for q in ["", "unknown=true", "sinceTime=", "untilTime=", "boot="] {
        assert_eq!(parsed(q), Ok(None), "{q}");
    }
    for q in [
        "sinceTime=2019-12-04+02:00:00",
        "sinceTime=2019-12-04+02:00:00.000",
        "sinceTime=2019-12-04+02",
        "untilTime=2019-12-04+02:00",
        "tailLines=foo",
        "tailLines=+",
        "boot=foo",
        "query=+++",
    ] {
        assert!(parsed(q).is_err(), "{q}");
    }
    let valid = t("2019-12-04T02:00:00Z");
    assert_eq!(
        query("sinceTime=2019-12-04T02:00:00Z").options.since,
        Some(valid)
    );
    assert_eq!(
        query("untilTime=2019-12-04T02:00:00Z").options.until,
        Some(valid)
    );
    assert_eq!(query("tailLines=100").options.tail_lines, Some(100));
    assert_eq!(query("pattern=foo").options.pattern, "foo");
    assert_eq!(query("boot=0").options.boot, Some(0));
    assert_eq!(query("boot=-23").options.boot, Some(-23));
    let q = query("query=foo&query=/bar/baz.log&query=a%5Cb");
    assert_eq!(q.services, ["foo"]);
    assert_eq!(q.files, ["/bar/baz.log", "a\\b"]);
}

#[test]
fn parse_errors_print_as_the_kubelets() {
    for (q, want) in [
        (
            "query=",
            r#"query: Invalid value: [""]: query cannot be empty"#,
        ),
        (
            "query=%20&query=",
            r#"query: Invalid value: [" ",""]: query cannot be empty"#,
        ),
        (
            "sinceTime=yesterday",
            r#"sinceTime: Invalid value: "yesterday": invalid time format"#,
        ),
        (
            "tailLines=x",
            r#"tailLines: Invalid value: "x": strconv.Atoi: parsing "x": invalid syntax"#,
        ),
        (
            "boot=99999999999999999999",
            r#"boot: Invalid value: "99999999999999999999": strconv.Atoi: parsing "99999999999999999999": value out of range"#,
        ),
        (
            "sinceTime=x&untilTime=y",
            r#"[sinceTime: Invalid value: "x": invalid time format, untilTime: Invalid value: "y": invalid time format]"#,
        ),
    ] {
        assert_eq!(parsed(q), Err(want.to_string()), "{q}");
    }
}

#[test]
fn times_parse_and_print_as_go() {
    // Verdicts and renderings from Go's time.Parse(time.RFC3339, ...) and json.Marshal.
    for (s, json, journal) in [
        (
            "2026-01-02T03:04:05Z",
            "\"2026-01-02T03:04:05Z\"",
            "2026-1-2 03:4:5",
        ),
        (
            "2026-01-02T03:04:05.5+02:00",
            "\"2026-01-02T03:04:05.5+02:00\"",
            "2026-1-2 03:4:5",
        ),
        (
            "2026-01-02T03:04:05.123456789123Z",
            "\"2026-01-02T03:04:05.123456789Z\"",
            "2026-1-2 03:4:5",
        ),
        (
            "2024-02-29T23:59:59-07:30",
            "\"2024-02-29T23:59:59-07:30\"",
            "2024-2-29 23:59:59",
        ),
    ] {
        let time = t(s);
        assert_eq!(
            (time.json().as_str(), time.journal().as_str()),
            (json, journal),
            "{s}"
        );
    }
    assert_eq!(
        t("2026-01-02T03:04:05+02:00").secs,
        t("2026-01-02T01:04:05Z").secs
    );
    for bad in [
        "2026-01-02t03:04:05z",
        "2026-01-02T03:04:05",
        "2026-1-02T03:04:05Z",
        "2026-01-02 03:04:05Z",
        "2026-02-30T03:04:05Z",
        "2025-02-29T03:04:05Z",
        "2026-01-02T24:00:00Z",
        "2026-01-02T03:04:60Z",
        "2026-01-02T03:04:05+0200",
        "2026-01-02T03:04:05.Z",
        "２０２６-01-02T03:04:05Z",
    ] {
        assert_eq!(Time::parse(bad), None, "{bad}");
    }
}

#[test]
fn validate_as_the_kubelet() {
    let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = d.path().join("log");
    std::fs::create_dir_all(root.join("sub")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(root.join("a.log"), "x").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(d.path().join("secret"), "x").unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink("../secret", root.join("out")).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink("a.log", root.join("in")).unwrap_or_else(|e| panic!("{e}"));
    let check = |q: &str| aggregate(&query(q).validate(&root));
    for ok in [
        "query=kubelet",
        "query=kubelet&query=containerd&query=kube-proxy&query=k@1",
        "query=sub/../a.log",
        "query=./in",
        "query=sub/",
        "query=kubelet&tailLines=0&boot=0&pattern=err(or)?&sinceTime=2026-01-01T00:00:00Z",
        "query=kubelet&tailLines=100000",
    ] {
        assert_eq!(check(ok), "", "{ok}");
    }
    for (q, want) in [
        (
            "pattern=foo",
            "query: Required value: cannot be empty with options",
        ),
        (
            "query=a&query=b/c",
            r#"query: Invalid value: "[b/c], [a]": cannot specify a file and service"#,
        ),
        (
            "query=./a.log&query=./in",
            r#"query: Invalid value: ["./a.log","./in"]: cannot specify more than one file"#,
        ),
        (
            "query=./a.log&tailLines=1",
            r#"query: Invalid value: ["./a.log"]: cannot specify file with options"#,
        ),
        (
            "query=/a.log",
            r#"query: Invalid value: ["/a.log"]: statat /a.log: path escapes from parent"#,
        ),
        (
            "query=../x/y",
            r#"query: Invalid value: ["../x/y"]: statat ../x/y: path escapes from parent"#,
        ),
        (
            "query=./out",
            r#"query: Invalid value: ["./out"]: statat ./out: path escapes from parent"#,
        ),
        (
            "query=./nope",
            r#"query: Invalid value: ["./nope"]: statat ./nope: no such file or directory"#,
        ),
        (
            "query=a.log/x",
            r#"query: Invalid value: ["a.log/x"]: statat a.log/x: not a directory"#,
        ),
        (
            "query=<b>/&",
            r#"query: Invalid value: ["\u003cb\u003e/"]: statat <b>/: no such file or directory"#,
        ),
        (
            "query=kube+let",
            r#"query: Invalid value: "kube let": input contains unsupported characters"#,
        ),
        (
            "query=a&query=b&query=c&query=d&query=e",
            "query: Too many: 5: must have at most 4 items",
        ),
        (
            "query=k&sinceTime=2026-01-02T00:00:00Z&untilTime=2026-01-01T00:00:00%2B01:00",
            r#"untilTime: Invalid value: "2026-01-01T00:00:00+01:00": must be after `sinceTime`"#,
        ),
        (
            "query=k&boot=1",
            "boot: Invalid value: 1: must be less than 1",
        ),
        (
            "query=k&tailLines=100001",
            "tailLines: Invalid value: 100001: must be between 0 and 100000, inclusive",
        ),
        (
            "query=k&tailLines=-1",
            "tailLines: Invalid value: -1: must be between 0 and 100000, inclusive",
        ),
        (
            "query=k&pattern=(a",
            "pattern: Invalid value: \"(a\": error parsing regexp: missing closing ): `(a`",
        ),
        (
            "query=k%22&boot=2",
            r#"[query: Invalid value: "k\"": input contains unsupported characters, boot: Invalid value: 2: must be less than 1]"#,
        ),
    ] {
        assert_eq!(check(q), want, "{q}");
    }
    let long = format!("query={}", "a".repeat(257));
    assert!(check(&long).ends_with(": length must be less than 100"));
}

#[test]
fn journalctl_arguments_as_get_logging_cmd() {
    let base = ["--utc", "--no-pager", "--output=short-precise"];
    let q = Query::default();
    assert_eq!(q.journalctl_args(&[]), base);
    let services = ["p1".to_string(), String::new(), "p2".to_string()];
    let mut want: Vec<&str> = base.to_vec();
    want.extend(["--unit=p1", "--unit=p2"]);
    assert_eq!(q.journalctl_args(&services), want);
    let q = query(
        "query=kubelet&sinceTime=2026-01-02T03:04:05Z&untilTime=2026-01-02T13:14:15Z\
         &tailLines=5&pattern=err&boot=-1",
    );
    assert_eq!(
        q.journalctl_args(&q.services),
        [
            "--utc",
            "--no-pager",
            "--output=short-precise",
            "--since=2026-1-2 03:4:5",
            "--until=2026-1-2 13:14:15",
            "--pager-end",
            "--lines=5",
            "--unit=kubelet",
            "--grep=err",
            "--boot",
            "-1",
        ]
    );
}
