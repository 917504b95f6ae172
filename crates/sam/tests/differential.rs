//! The differential test: every template of `tests/corpus` transformed by AWS's own translator
//! (`aws-sam-translator`, through `tests/oracle.py`) and by nimbus, compared modulo the ordering
//! CloudFormation ignores. Skips (saying why) when the translator cannot be imported.

use std::path::{Path, PathBuf};
use std::process::Command;

use nimbus_sam::{transform, Context};
use serde_json::{Map, Value};

fn python() -> Option<String> {
    if let Ok(p) = std::env::var("NIMBUS_SAM_PYTHON") {
        return Some(p);
    }
    for candidate in ["python3", "/work/main/target/e2e-venv/bin/python"] {
        let ok = Command::new(candidate)
            .args(["-c", "import samtranslator"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(candidate.to_string());
        }
    }
    None
}

fn corpus() -> Vec<PathBuf> {
    // SAM_CORPUS_DIR points the test at other templates (already packaged: S3 code URIs).
    let dir = match std::env::var("SAM_CORPUS_DIR") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus"),
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    if let Ok(only) = std::env::var("SAM_CORPUS") {
        files.retain(|f| f.to_string_lossy().contains(&only));
    }
    files
}

/// Arrays whose order CloudFormation ignores are sorted (everything but intrinsic functions'
/// arguments and `Layers`), so the comparison sees content only.
fn normalize(value: &Value, key: &str) -> Value {
    match value {
        // Arguments of intrinsic functions keep their order, all the way down.
        _ if key.starts_with("Fn::") => value.clone(),
        // Keys in sorted order, so that sorting arrays by their text compares content whatever
        // order the objects were written in.
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), normalize(&map[k], k))).collect::<Map<_, _>>())
        }
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(|v| normalize(v, "")).collect();
            if key != "Layers" {
                items.sort_by_key(|v| v.to_string());
            }
            Value::Array(items)
        }
        other => other.clone(),
    }
}

fn diff(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                match b.get(k) {
                    Some(w) => diff(&format!("{path}.{k}"), v, w, out),
                    None => out.push(format!("  missing {path}.{k} = {v}")),
                }
            }
            for (k, v) in b {
                if !a.contains_key(k) {
                    out.push(format!("  extra   {path}.{k} = {v}"));
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), x, y, out);
            }
        }
        _ if want != got => out.push(format!("  at {path}\n    want {want}\n    got  {got}")),
        _ => {}
    }
}

/// The translator's output for the whole corpus, from one Python process shared by the tests;
/// None (and why) when the translator cannot be imported.
fn oracle() -> Result<&'static Value, String> {
    static RESULTS: std::sync::OnceLock<Result<Value, String>> = std::sync::OnceLock::new();
    RESULTS
        .get_or_init(|| {
            let python =
                python().ok_or("aws-sam-translator cannot be imported (pip install aws-sam-translator)")?;
            let oracle = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle.py");
            let output =
                Command::new(&python).arg(&oracle).args(corpus()).output().map_err(|e| e.to_string())?;
            assert!(output.status.success(), "oracle failed: {}", String::from_utf8_lossy(&output.stderr));
            let results: Value = serde_json::from_slice(&output.stdout).expect("oracle JSON");
            match results.get("unavailable") {
                Some(reason) => Err(format!("aws-sam-translator unavailable: {reason}")),
                None => Ok(results),
            }
        })
        .as_ref()
        .map_err(Clone::clone)
}

#[test]
fn corpus_matches_aws_sam_translator() {
    let results = match oracle() {
        Ok(results) => results,
        Err(reason) => {
            println!("skipped: {reason}");
            return;
        }
    };
    let base = Context::new("us-east-1", "123456789012", "sam-test");
    let mut failures = Vec::new();
    let mut matched = 0;
    for (name, result) in results.as_object().expect("object") {
        let mut context = base.clone();
        for entry in result["order"].as_array().into_iter().flatten() {
            let path = entry[0]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            let keys = entry[1]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            context.source_order.insert(path, keys);
        }
        let ours = transform(&result["input"], &context);
        let mut lines = Vec::new();
        match (result.get("template"), result.get("error"), ours) {
            (Some(want), _, Ok(got)) => diff("", &normalize(want, ""), &normalize(&got, ""), &mut lines),
            (_, Some(want), Err(got)) => {
                if want.as_str() != Some(got.message.as_str()) {
                    lines.push(format!("  error\n    want {want}\n    got  {:?}", got.message));
                }
            }
            (Some(_), _, Err(got)) => lines.push(format!("  nimbus failed: {}", got.message)),
            (_, Some(want), Ok(_)) => {
                lines.push(format!("  nimbus succeeded; the translator failed: {want}"))
            }
            _ => lines.push("  oracle gave neither template nor error".into()),
        }
        if lines.is_empty() {
            matched += 1;
        } else {
            failures.push(format!("{name}:\n{}", lines.join("\n")));
        }
    }
    let total = results.as_object().map_or(0, |m| m.len());
    println!("{matched}/{total} corpus templates match aws-sam-translator exactly");
    // Without the source order (a caller whose parser forgets it), only REST API deployment ids
    // may differ; count how often.
    let unordered = results
        .as_object()
        .expect("object")
        .values()
        .filter(|r| {
            let mut lines = Vec::new();
            match (r.get("template"), transform(&r["input"], &base)) {
                (Some(want), Ok(got)) => diff("", &normalize(want, ""), &normalize(&got, ""), &mut lines),
                (None, Err(_)) => {}
                _ => lines.push(String::new()),
            }
            lines.is_empty()
        })
        .count();
    println!("{unordered}/{total} match without the template's key order");
    assert!(failures.is_empty(), "{} differ:\n{}", failures.len(), failures.join("\n"));
}

/// The key order nimbus's YAML reader (`nimbus_template::key_order`, what CloudFormation hands
/// the transform) gives is the source's: the transform's output with it is the translator's.
#[test]
fn yaml_reader_key_order_matches_the_translator() {
    let results = match oracle() {
        Ok(results) => results,
        Err(reason) => {
            println!("skipped: {reason}");
            return;
        }
    };
    let mut failures = Vec::new();
    for file in corpus() {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let Some(result) = results.get(&name) else { continue };
        let Some(want) = result.get("template") else { continue };
        let text = std::fs::read_to_string(&file).expect("corpus file");
        let mut context = Context::new("us-east-1", "123456789012", "sam-test");
        for (path, keys) in nimbus_template::key_order(&text) {
            context.source_order.insert(path, keys);
        }
        let mut lines = Vec::new();
        match transform(&result["input"], &context) {
            Ok(got) => diff("", &normalize(want, ""), &normalize(&got, ""), &mut lines),
            Err(error) => lines.push(format!("  nimbus failed: {}", error.message)),
        }
        if !lines.is_empty() {
            failures.push(format!("{name}:\n{}", lines.join("\n")));
        }
    }
    assert!(failures.is_empty(), "{} differ:\n{}", failures.len(), failures.join("\n"));
}

/// Every property of every SAM resource of the corpus replaced, one at a time, by values of the
/// wrong shape: the transform answers (a template or an error), never panics.
#[test]
fn malformed_properties_never_panic() {
    let results = match oracle() {
        Ok(results) => results,
        Err(reason) => {
            println!("skipped: {reason}");
            return;
        }
    };
    let context = Context::new("us-east-1", "123456789012", "sam-test");
    // Wrong shapes: nothing, a number, an odd string, an object, a broken intrinsic.
    let junk = [
        Value::Null,
        serde_json::json!(7),
        serde_json::json!("ü/{ä}"),
        serde_json::json!({}),
        serde_json::json!({"Fn::If": ["C"]}),
    ];
    let mut tried = 0;
    for result in results.as_object().expect("object").values() {
        let input = &result["input"];
        let Some(resources) = input["Resources"].as_object() else { continue };
        for (id, resource) in resources {
            let Some(props) = resource.get("Properties").and_then(Value::as_object) else { continue };
            for key in props.keys() {
                for value in junk.iter().cycle().skip(tried).take(2) {
                    let mut changed = input.clone();
                    changed["Resources"][id]["Properties"][key] = value.clone();
                    tried += 1;
                    let outcome = std::panic::catch_unwind(|| transform(&changed, &context));
                    assert!(outcome.is_ok(), "panicked with {id}.{key} = {value}");
                }
                // Each event's properties.
                if key == "Events" {
                    for (event, body) in props[key].as_object().into_iter().flatten() {
                        for member in body
                            .get("Properties")
                            .and_then(Value::as_object)
                            .into_iter()
                            .flatten()
                            .map(|(k, _)| k)
                        {
                            for value in junk.iter().cycle().skip(tried).take(2) {
                                let mut changed = input.clone();
                                changed["Resources"][id]["Properties"]["Events"][event]["Properties"]
                                    [member] = value.clone();
                                tried += 1;
                                let outcome = std::panic::catch_unwind(|| transform(&changed, &context));
                                assert!(
                                    outcome.is_ok(),
                                    "panicked with {id}.Events.{event}.{member} = {value}"
                                );
                            }
                        }
                    }
                }
                // Nested: each member of a map property too.
                if let Some(inner) = props[key].as_object() {
                    for member in inner.keys() {
                        for value in junk.iter().cycle().skip(tried).take(2) {
                            let mut changed = input.clone();
                            changed["Resources"][id]["Properties"][key][member] = value.clone();
                            tried += 1;
                            let outcome = std::panic::catch_unwind(|| transform(&changed, &context));
                            assert!(outcome.is_ok(), "panicked with {id}.{key}.{member} = {value}");
                        }
                    }
                }
            }
        }
    }
    println!("{tried} malformed templates transformed without a panic");
}
