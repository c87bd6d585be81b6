//! Reading policy files: the commented example, and errors that name the file.

use std::path::Path;

use substrate_policy::network::{Entry, NameDecision, Verdict};
use substrate_policy::{Policy, PolicyError};

#[test]
fn the_example_policy_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/network.yaml");
    let policy = Policy::load(&path).unwrap_or_else(|error| panic!("{error}"));
    let network = &policy.network;
    assert_eq!(network.default, Verdict::Deny);
    assert_eq!(network.allow.len(), 10);
    assert_eq!(network.deny.len(), 2);
    assert_eq!(network.egress_bytes, Some(1 << 30));
    assert!(matches!(
        network.decide_name("files.pypi.org"),
        NameDecision::Allowed(entries) if entries.iter().map(|entry| entry.text()).eq(["*.pypi.org:443/tcp"])
    ));
    assert!(matches!(
        network.decide_name("x.ads.example.com"),
        NameDecision::Denied(entry) if entry.text() == "*.ads.example.com"
    ));
}

#[test]
fn an_invalid_file_is_named_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(
        &path,
        "version: 1\nnetwork:\n  default: deny\n  allow: [10.1.2.3/8]\n",
    )
    .unwrap();
    let error = Policy::load(&path).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            r#"{}:4:11: network.allow[0]: "10.1.2.3/8": host bits are set (did you mean 10.0.0.0/8?)"#,
            path.display()
        )
    );
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.yaml");
    let error = Policy::load(&path).unwrap_err();
    assert!(matches!(&error, PolicyError::Read { path: named, .. } if *named == path));
    assert_eq!(
        error.to_string(),
        format!("cannot read policy {}", path.display())
    );
}

#[test]
fn a_loaded_policy_equals_the_parsed_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    let text = "version: 1\nnetwork:\n  allow: [\"*:53/udp\"]\n";
    std::fs::write(&path, text).unwrap();
    let policy = Policy::load(&path).unwrap();
    assert_eq!(policy, Policy::parse(text).unwrap());
    assert_eq!(policy.network.allow, [Entry::parse("*:53/udp").unwrap()]);
}
