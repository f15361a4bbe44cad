//! `lull lint --format sarif|github` through the CLI.
//!
//! The SARIF 2.1.0 schema is published under OASIS terms rather than an
//! open-source licence, so it is not vendored here. Instead the log is
//! checked against the structure the standard requires: for every object
//! lull writes, its required properties, that it has no property the
//! standard does not define (the schema forbids additional properties on
//! these objects), the types and enumerations of values, and the
//! cross-references (`ruleIndex`, `artifactLocation.index`).

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

fn lull(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("lull").unwrap();
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("LULL_ENV");
    cmd
}

/// A directory of migrations with findings of several severities, a parse
/// error, and a path that needs escaping.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("migrations");
    std::fs::create_dir(&m).unwrap();
    std::fs::write(
        m.join("20240101000000_index orders.sql"),
        "-- Index the orders page.\nCREATE INDEX orders_user_idx ON orders (user_id);\n\
         ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id);\n",
    )
    .unwrap();
    std::fs::write(
        m.join("20240102000000_broken.sql"),
        "SELECT 1;\nCREATE TABEL x ();\n",
    )
    .unwrap();
    std::fs::write(
        m.join("20240103000000_rename.sql"),
        "ALTER TABLE users RENAME COLUMN name TO full_name;\nUPDATE users SET full_name = 'x';\n",
    )
    .unwrap();
    dir
}

/// Properties SARIF 2.1.0 defines, per object kind (§3 of the standard).
fn allowed(kind: &str) -> &'static [&'static str] {
    match kind {
        "sarifLog" => &[
            "$schema",
            "version",
            "runs",
            "inlineExternalProperties",
            "properties",
        ],
        "run" => &[
            "tool",
            "invocations",
            "conversion",
            "language",
            "versionControlProvenance",
            "originalUriBaseIds",
            "artifacts",
            "logicalLocations",
            "graphs",
            "results",
            "automationDetails",
            "runAggregates",
            "baselineGuid",
            "redactionTokens",
            "defaultEncoding",
            "defaultSourceLanguage",
            "newlineSequences",
            "columnKind",
            "externalPropertyFileReferences",
            "threadFlowLocations",
            "taxonomies",
            "addresses",
            "translations",
            "policies",
            "webRequests",
            "webResponses",
            "specialLocations",
            "properties",
        ],
        "tool" => &["driver", "extensions", "properties"],
        "toolComponent" => &[
            "guid",
            "name",
            "organization",
            "product",
            "productSuite",
            "shortDescription",
            "fullDescription",
            "fullName",
            "version",
            "semanticVersion",
            "dottedQuadFileVersion",
            "releaseDateUtc",
            "downloadUri",
            "informationUri",
            "globalMessageStrings",
            "notifications",
            "rules",
            "taxa",
            "locations",
            "language",
            "contents",
            "isComprehensive",
            "localizedDataSemanticVersion",
            "minimumRequiredLocalizedDataSemanticVersion",
            "associatedComponent",
            "translationMetadata",
            "supportedTaxonomies",
            "properties",
        ],
        "reportingDescriptor" => &[
            "id",
            "deprecatedIds",
            "guid",
            "deprecatedGuids",
            "name",
            "deprecatedNames",
            "shortDescription",
            "fullDescription",
            "messageStrings",
            "defaultConfiguration",
            "helpUri",
            "help",
            "relationships",
            "properties",
        ],
        "multiformatMessageString" => &["text", "markdown", "properties"],
        "reportingConfiguration" => &["enabled", "level", "rank", "parameters", "properties"],
        "invocation" => &[
            "commandLine",
            "arguments",
            "responseFiles",
            "startTimeUtc",
            "endTimeUtc",
            "exitCode",
            "ruleConfigurationOverrides",
            "notificationConfigurationOverrides",
            "toolExecutionNotifications",
            "toolConfigurationNotifications",
            "exitCodeDescription",
            "exitSignalName",
            "exitSignalNumber",
            "processStartFailureMessage",
            "executionSuccessful",
            "machine",
            "account",
            "processId",
            "executableLocation",
            "workingDirectory",
            "environmentVariables",
            "stdin",
            "stdout",
            "stderr",
            "stdoutStderr",
            "properties",
        ],
        "artifact" => &[
            "description",
            "location",
            "parentIndex",
            "offset",
            "length",
            "roles",
            "mimeType",
            "contents",
            "encoding",
            "sourceLanguage",
            "hashes",
            "lastModifiedTimeUtc",
            "properties",
        ],
        "artifactLocation" => &["uri", "uriBaseId", "index", "description", "properties"],
        "result" => &[
            "guid",
            "correlationGuid",
            "ruleId",
            "ruleIndex",
            "rule",
            "kind",
            "level",
            "message",
            "analysisTarget",
            "locations",
            "webRequest",
            "webResponse",
            "fingerprints",
            "partialFingerprints",
            "codeFlows",
            "graphs",
            "graphTraversals",
            "stacks",
            "relatedLocations",
            "suppressions",
            "baselineState",
            "rank",
            "attachments",
            "hostedViewerUri",
            "workItemUris",
            "provenance",
            "fixes",
            "taxa",
            "properties",
        ],
        "message" => &["text", "markdown", "id", "arguments", "properties"],
        "location" => &[
            "id",
            "physicalLocation",
            "logicalLocations",
            "message",
            "annotations",
            "relationships",
            "properties",
        ],
        "physicalLocation" => &[
            "address",
            "artifactLocation",
            "region",
            "contextRegion",
            "properties",
        ],
        "region" => &[
            "startLine",
            "startColumn",
            "endLine",
            "endColumn",
            "charOffset",
            "charLength",
            "byteOffset",
            "byteLength",
            "snippet",
            "message",
            "sourceLanguage",
            "properties",
        ],
        other => panic!("no property list for {other}"),
    }
}

fn object<'a>(v: &'a Value, kind: &str, required: &[&str]) -> &'a serde_json::Map<String, Value> {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("{kind} is not an object: {v}"));
    for key in obj.keys() {
        assert!(
            allowed(kind).contains(&key.as_str()),
            "{kind} has a property SARIF does not define: {key}"
        );
    }
    for key in required {
        assert!(obj.contains_key(*key), "{kind} lacks required {key}: {v}");
    }
    obj
}

fn message_string(v: &Value, kind: &str) {
    let obj = object(v, kind, &["text"]);
    assert!(obj["text"].is_string());
}

fn property_bag(v: &Value) {
    let obj = v.as_object().expect("properties is an object");
    if let Some(tags) = obj.get("tags") {
        let tags = tags.as_array().expect("tags is an array");
        let mut seen = std::collections::BTreeSet::new();
        for t in tags {
            assert!(t.is_string(), "tag is not a string");
            assert!(seen.insert(t.as_str().unwrap()), "duplicate tag {t}");
        }
    }
}

fn level(v: &Value) {
    let l = v.as_str().expect("level is a string");
    assert!(
        ["none", "note", "warning", "error"].contains(&l),
        "bad level {l}"
    );
}

fn positive(v: &Value, what: &str, min: i64) -> i64 {
    let n = v
        .as_i64()
        .unwrap_or_else(|| panic!("{what} is not an integer: {v}"));
    assert!(n >= min, "{what} = {n} < {min}");
    n
}

/// RFC 3986 URI reference: only unreserved, reserved and `%XX`.
fn uri(v: &Value) {
    let s = v.as_str().expect("uri is a string");
    assert!(!s.is_empty());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            assert!(
                i + 2 < bytes.len()
                    && bytes[i + 1].is_ascii_hexdigit()
                    && bytes[i + 2].is_ascii_hexdigit(),
                "bad escape in {s}"
            );
            i += 3;
            continue;
        }
        assert!(
            b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&b),
            "{s} is not a URI reference (byte {b:#x})"
        );
        i += 1;
    }
    let first_segment = s.split('/').next().unwrap_or("");
    if !s.contains("://") {
        assert!(
            !first_segment.contains(':'),
            "{s}: a relative reference's first segment cannot hold ':'"
        );
    }
}

/// Checks a SARIF 2.1.0 log; returns the results.
fn validate(log: &Value) -> Vec<Value> {
    let top = object(log, "sarifLog", &["version", "runs"]);
    assert_eq!(top["version"], "2.1.0");
    assert!(top["$schema"].as_str().unwrap().starts_with("https://"));
    let runs = top["runs"].as_array().expect("runs is an array");
    assert_eq!(runs.len(), 1);
    let run = object(&runs[0], "run", &["tool"]);
    if let Some(kind) = run.get("columnKind") {
        assert!(["utf16CodeUnits", "unicodeCodePoints"].contains(&kind.as_str().unwrap()));
    }
    let tool = object(&run["tool"], "tool", &["driver"]);
    let driver = object(&tool["driver"], "toolComponent", &["name"]);
    assert_eq!(driver["name"], "lull");
    assert!(driver["version"].is_string());
    let rules = driver["rules"].as_array().expect("rules is an array");
    let mut ids = Vec::new();
    for rule in rules {
        let r = object(rule, "reportingDescriptor", &["id"]);
        let id = r["id"].as_str().unwrap().to_string();
        assert!(!ids.contains(&id), "duplicate rule id {id}");
        ids.push(id);
        for key in ["shortDescription", "fullDescription", "help"] {
            message_string(&r[key], "multiformatMessageString");
        }
        let config = object(&r["defaultConfiguration"], "reportingConfiguration", &[]);
        level(&config["level"]);
        assert!(config["enabled"].is_boolean());
        property_bag(&r["properties"]);
    }
    assert!(ids.iter().any(|i| i == "create-index-not-concurrently"));
    for inv in run["invocations"].as_array().unwrap() {
        let inv = object(inv, "invocation", &["executionSuccessful"]);
        assert!(inv["executionSuccessful"].is_boolean());
    }
    let artifacts = run["artifacts"].as_array().unwrap();
    for a in artifacts {
        let a = object(a, "artifact", &[]);
        let loc = object(&a["location"], "artifactLocation", &[]);
        uri(&loc["uri"]);
    }
    let results = run["results"].as_array().expect("results is an array");
    for result in results {
        let r = object(result, "result", &["message"]);
        let msg = object(&r["message"], "message", &["text"]);
        assert!(!msg["text"].as_str().unwrap().is_empty());
        level(&r["level"]);
        let rule_id = r["ruleId"].as_str().unwrap();
        let index = positive(&r["ruleIndex"], "ruleIndex", 0) as usize;
        assert_eq!(ids[index], rule_id, "ruleIndex points at another rule");
        if let Some(p) = r.get("properties") {
            property_bag(p);
        }
        let locations = r["locations"].as_array().unwrap();
        assert_eq!(locations.len(), 1);
        let loc = object(&locations[0], "location", &[]);
        let phys = object(
            &loc["physicalLocation"],
            "physicalLocation",
            &["artifactLocation"],
        );
        let art = object(&phys["artifactLocation"], "artifactLocation", &["uri"]);
        uri(&art["uri"]);
        let ai = positive(&art["index"], "artifactLocation.index", 0) as usize;
        assert_eq!(
            artifacts[ai]["location"]["uri"], art["uri"],
            "artifact index points at another file"
        );
        let region = object(&phys["region"], "region", &["startLine"]);
        let start_line = positive(&region["startLine"], "startLine", 1);
        let start_col = positive(&region["startColumn"], "startColumn", 1);
        if let Some(end_line) = region.get("endLine") {
            let end_line = positive(end_line, "endLine", start_line);
            let end_col = positive(&region["endColumn"], "endColumn", 1);
            if end_line == start_line {
                assert!(end_col >= start_col, "region ends before it starts");
            }
        }
    }
    results.clone()
}

#[test]
fn sarif_output_is_a_valid_sarif_2_1_0_log() {
    let dir = project();
    let out = lull(dir.path())
        .args(["lint", "--format", "sarif", "migrations"])
        .assert()
        .code(1);
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let log: Value = serde_json::from_str(&stdout).expect("SARIF output is JSON");
    let results = validate(&log);
    let rule_ids: Vec<&str> = results
        .iter()
        .map(|r| r["ruleId"].as_str().unwrap())
        .collect();
    for expected in [
        "create-index-not-concurrently",
        "constraint-not-valid",
        "parse-error",
        "rename-column",
    ] {
        assert!(
            rule_ids.contains(&expected),
            "{expected} missing: {rule_ids:?}"
        );
    }
    let index = results
        .iter()
        .find(|r| r["ruleId"] == "create-index-not-concurrently")
        .unwrap();
    let loc = &index["locations"][0]["physicalLocation"];
    assert_eq!(
        loc["artifactLocation"]["uri"],
        "migrations/20240101000000_index%20orders.sql"
    );
    assert_eq!(loc["region"]["startLine"], 2);
    assert_eq!(loc["region"]["startColumn"], 1);
    assert_eq!(loc["region"]["endLine"], 2);
    // Exclusive: just past the 48 characters of the statement.
    assert_eq!(loc["region"]["endColumn"], 49);
    assert!(index["message"]["text"]
        .as_str()
        .unwrap()
        .contains("Safe alternative"));
    let parse = results
        .iter()
        .find(|r| r["ruleId"] == "parse-error")
        .unwrap();
    assert_eq!(
        parse["locations"][0]["physicalLocation"]["region"]["startLine"],
        2
    );
    assert_eq!(
        parse["locations"][0]["physicalLocation"]["region"]["startColumn"],
        8
    );
}

#[test]
fn sarif_for_a_clean_input_has_no_results_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let out = lull(dir.path())
        .args(["lint", "--format", "sarif", "-"])
        .write_stdin("SELECT 1;\n")
        .assert()
        .success();
    let log: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert!(validate(&log).is_empty());
}

#[test]
fn github_output_annotates_every_finding() {
    let dir = project();
    let out = lull(dir.path())
        .args(["lint", "--format", "github", "migrations"])
        .assert()
        .code(1);
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let json = lull(dir.path())
        .args(["lint", "--format", "json", "migrations"])
        .assert()
        .code(1);
    let report: Value = serde_json::from_slice(&json.get_output().stdout).unwrap();
    let findings = report["findings"].as_array().unwrap();
    let annotations: Vec<&str> = stdout.lines().filter(|l| l.starts_with("::")).collect();
    assert_eq!(annotations.len(), findings.len(), "{stdout}");
    assert!(
        annotations.iter().any(|l| l
            .starts_with("::error file=migrations/20240101000000_index orders.sql,line=2,col=1,")
            && l.contains("title=lull create-index-not-concurrently::")),
        "{stdout}"
    );
    assert!(
        annotations
            .iter()
            .any(|l| l
                .starts_with("::error file=migrations/20240102000000_broken.sql,line=2,col=8,")),
        "{stdout}"
    );
    for line in &annotations {
        let (command, rest) = line[2..].split_once(' ').unwrap();
        assert!(["error", "warning", "notice"].contains(&command), "{line}");
        assert!(rest.contains("::"), "{line}");
    }
}

/// GitHub annotations for the project, pinned.
#[test]
fn github_output_snapshot() {
    let dir = project();
    let out = lull(dir.path())
        .args(["lint", "--format", "github", "migrations"])
        .assert()
        .code(1);
    insta::assert_snapshot!(String::from_utf8_lossy(&out.get_output().stdout));
}
