//! State machines: create (validated as AWS validates), update, describe, list, delete;
//! versions, aliases and tags.

use nimbus_api::AwsError;
use nimbus_store::params;
use serde_json::{json, Value};

use super::{db_error, invalid_arn, no_machine, page, resolve_machine, Answer, Input};
use crate::asl::validate;
use crate::exec::{seconds, Engine};
use crate::store;

fn invalid_definition(message: String) -> AwsError {
    AwsError::new(400, "InvalidDefinition", message)
}

pub fn check_name(name: &str) -> Result<(), AwsError> {
    let bad = name.is_empty()
        || name.chars().count() > 80
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c));
    if bad {
        return Err(AwsError::new(400, "InvalidName", format!("Invalid Name: '{name}'")));
    }
    Ok(())
}

fn logging(input: &Input<'_>) -> Result<Value, AwsError> {
    let config = match input.value("loggingConfiguration") {
        Value::Null => json!({"level": "OFF", "includeExecutionData": false}),
        other => other.clone(),
    };
    let level = config["level"].as_str().unwrap_or("OFF");
    if level != "OFF" && config["destinations"].as_array().is_none_or(Vec::is_empty) {
        return Err(AwsError::new(
            400,
            "InvalidLoggingConfiguration",
            "Invalid Logging Configuration: Must specify exactly one Log Destination.",
        ));
    }
    Ok(config)
}

pub fn create(engine: &Engine, region: &str, input: &Input<'_>) -> Answer {
    let name = input.required("name")?;
    check_name(name)?;
    let definition = input.required("definition")?;
    validate::definition(definition).map_err(invalid_definition)?;
    let kind = input.str("type").unwrap_or("STANDARD");
    if kind != "STANDARD" && kind != "EXPRESS" {
        return Err(AwsError::validation(format!("1 validation error detected: Value '{kind}' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [STANDARD, EXPRESS]")));
    }
    let arn = format!("arn:aws:states:{region}:{}:stateMachine:{name}", engine.identity.account);
    let now = engine.now();
    let tags: serde_json::Map<String, Value> = input
        .value("tags")
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| Some((t["key"].as_str()?.to_owned(), t["value"].clone())))
        .collect();
    let doc = json!({
        "stateMachineArn": arn,
        "name": name,
        "status": "ACTIVE",
        "definition": definition,
        "roleArn": input.str("roleArn").unwrap_or_default(),
        "type": kind,
        "creationDate": now,
        "loggingConfiguration": logging(input)?,
        "tracingConfiguration": input.0.get("tracingConfiguration").cloned().unwrap_or(json!({"enabled": false})),
        "description": input.str("versionDescription").unwrap_or_default(),
        "revisionId": uuid::Uuid::new_v4().to_string(),
        "tags": tags,
        "versions": 0,
    });
    if let Some(existing) = store::machine(&engine.db, &arn).map_err(db_error)? {
        let same = existing["definition"] == doc["definition"]
            && existing["roleArn"] == doc["roleArn"]
            && existing["type"] == doc["type"];
        if same {
            return Ok(
                json!({"stateMachineArn": arn, "creationDate": seconds(existing["creationDate"].as_i64().unwrap_or(now))}),
            );
        }
        return Err(AwsError::new(
            400,
            "StateMachineAlreadyExists",
            format!("State Machine Already Exists: '{arn}'"),
        ));
    }
    engine
        .db
        .execute(
            "INSERT INTO machines (arn, name, doc) VALUES (?1, ?2, ?3)",
            &params![arn.as_str(), name, doc.to_string()],
        )
        .map_err(db_error)?;
    let mut out = json!({"stateMachineArn": arn, "creationDate": seconds(now)});
    if input.value("publish").as_bool() == Some(true) {
        out["stateMachineVersionArn"] =
            publish_doc(engine, &arn, input.str("versionDescription"))?["stateMachineVersionArn"].clone();
    }
    Ok(out)
}

fn machine(engine: &Engine, arn: &str) -> Result<Value, AwsError> {
    if arn.split(':').nth(5) != Some("stateMachine") {
        return Err(invalid_arn(arn));
    }
    store::machine(&engine.db, arn).map_err(db_error)?.ok_or_else(|| no_machine(arn))
}

fn save(engine: &Engine, doc: &Value) -> Result<(), AwsError> {
    let arn = doc["stateMachineArn"].as_str().unwrap_or_default();
    engine
        .db
        .execute("UPDATE machines SET doc = ?2 WHERE arn = ?1", &params![arn, doc.to_string()])
        .map_err(db_error)?;
    Ok(())
}

pub fn update(engine: &Engine, input: &Input<'_>) -> Answer {
    let arn = input.required("stateMachineArn")?;
    let mut doc = machine(engine, arn)?;
    if let Some(definition) = input.str("definition") {
        validate::definition(definition).map_err(invalid_definition)?;
        doc["definition"] = json!(definition);
    }
    if let Some(role) = input.str("roleArn") {
        doc["roleArn"] = json!(role);
    }
    if !input.value("loggingConfiguration").is_null() {
        doc["loggingConfiguration"] = logging(input)?;
    }
    if let Some(tracing) = input.0.get("tracingConfiguration") {
        doc["tracingConfiguration"] = tracing.clone();
    }
    let now = engine.now();
    doc["updateDate"] = json!(now);
    doc["revisionId"] = json!(uuid::Uuid::new_v4().to_string());
    save(engine, &doc)?;
    let mut out = json!({"updateDate": seconds(now), "revisionId": doc["revisionId"]});
    if input.value("publish").as_bool() == Some(true) {
        out["stateMachineVersionArn"] =
            publish_doc(engine, arn, input.str("versionDescription"))?["stateMachineVersionArn"].clone();
    }
    Ok(out)
}

pub fn describe(engine: &Engine, input: &Input<'_>) -> Answer {
    let arn = input.required("stateMachineArn")?;
    let (doc, qualified) = resolve_machine(engine, arn)?;
    let mut out = json!({
        "stateMachineArn": qualified,
        "name": doc["name"],
        "status": doc["status"],
        "definition": doc["definition"],
        "roleArn": doc["roleArn"],
        "type": doc["type"],
        "creationDate": seconds(doc["versionDate"].as_i64().or(doc["creationDate"].as_i64()).unwrap_or(0)),
        "loggingConfiguration": doc["loggingConfiguration"],
        "tracingConfiguration": doc["tracingConfiguration"],
        "revisionId": doc["revisionId"],
    });
    if let Some(d) = doc["versionDescription"].as_str() {
        out["description"] = json!(d);
    }
    Ok(out)
}

pub fn list(engine: &Engine, region: &str, input: &Input<'_>) -> Answer {
    let prefix = format!("arn:aws:states:{region}:{}:stateMachine:", engine.identity.account);
    let docs = store::docs(&engine.db, "SELECT doc FROM machines ORDER BY name", &[]).map_err(db_error)?;
    let items = docs
        .into_iter()
        .filter(|d| d["stateMachineArn"].as_str().is_some_and(|a| a.starts_with(&prefix)))
        .map(|d| json!({"stateMachineArn": d["stateMachineArn"], "name": d["name"], "type": d["type"], "creationDate": seconds(d["creationDate"].as_i64().unwrap_or(0))}))
        .collect();
    page(items, input, "stateMachines", 100)
}

pub fn delete(engine: &Engine, input: &Input<'_>) -> Answer {
    let arn = input.required("stateMachineArn")?;
    if arn.split(':').nth(5) != Some("stateMachine") {
        return Err(invalid_arn(arn));
    }
    engine
        .db
        .write(|tx| {
            tx.execute("DELETE FROM machines WHERE arn = ?1", &params![arn])?;
            tx.execute("DELETE FROM versions WHERE machine = ?1", &params![arn])?;
            tx.execute("DELETE FROM aliases WHERE machine = ?1", &params![arn])
        })
        .map_err(db_error)?;
    Ok(json!({}))
}

pub fn validate(input: &Input<'_>) -> Value {
    match validate::definition(input.str("definition").unwrap_or_default()) {
        Ok(_) => json!({"result": "OK", "diagnostics": []}),
        Err(message) => {
            let inner =
                message.trim_start_matches("Invalid State Machine Definition: '").trim_end_matches('\'');
            let diagnostics: Vec<Value> = inner
                .split(", ")
                .map(|d| {
                    let (code, rest) = d.split_once(": ").unwrap_or(("SCHEMA_VALIDATION_FAILED", d));
                    let (message, location) = rest.rsplit_once(" at ").unwrap_or((rest, "/"));
                    json!({"severity": "ERROR", "code": code, "message": message, "location": location})
                })
                .collect();
            json!({"result": "FAIL", "diagnostics": diagnostics})
        }
    }
}

fn publish_doc(engine: &Engine, arn: &str, description: Option<&str>) -> Answer {
    let mut doc = machine(engine, arn)?;
    let number = doc["versions"].as_u64().unwrap_or(0) + 1;
    doc["versions"] = json!(number);
    let version_arn = format!("{arn}:{number}");
    let now = engine.now();
    let mut version = doc.clone();
    version["versionDate"] = json!(now);
    version["versionDescription"] = json!(description.unwrap_or_default());
    engine
        .db
        .write(|tx| {
            tx.execute("UPDATE machines SET doc = ?2 WHERE arn = ?1", &params![arn, doc.to_string()])?;
            tx.execute(
                "INSERT INTO versions (arn, machine, doc) VALUES (?1, ?2, ?3)",
                &params![version_arn.as_str(), arn, version.to_string()],
            )
        })
        .map_err(db_error)?;
    Ok(json!({"stateMachineVersionArn": version_arn, "creationDate": seconds(now)}))
}

pub fn publish(engine: &Engine, input: &Input<'_>) -> Answer {
    let arn = input.required("stateMachineArn")?;
    publish_doc(engine, arn, input.str("description"))
}

pub fn list_versions(engine: &Engine, input: &Input<'_>) -> Answer {
    let arn = input.required("stateMachineArn")?;
    machine(engine, arn)?;
    let docs = engine
        .db
        .query("SELECT arn, doc FROM versions WHERE machine = ?1", &params![arn])
        .map_err(db_error)?;
    let mut items: Vec<(u64, Value)> = docs.iter().filter_map(|row| {
        let arn: String = row.get(0).ok()?;
        let doc = store::parse(&row.get::<String>(1).ok()?).ok()?;
        let n = arn.rsplit(':').next()?.parse().ok()?;
        Some((n, json!({"stateMachineVersionArn": arn, "creationDate": seconds(doc["versionDate"].as_i64().unwrap_or(0))})))
    }).collect();
    items.sort_by_key(|item| std::cmp::Reverse(item.0));
    page(items.into_iter().map(|(_, v)| v).collect(), input, "stateMachineVersions", 100)
}

pub fn delete_version(engine: &Engine, input: &Input<'_>) -> Answer {
    let arn = input.required("stateMachineVersionArn")?;
    engine.db.execute("DELETE FROM versions WHERE arn = ?1", &params![arn]).map_err(db_error)?;
    Ok(json!({}))
}

pub fn alias(engine: &Engine, arn: &str) -> Answer {
    store::doc(&engine.db, "SELECT doc FROM aliases WHERE arn = ?1", &params![arn])
        .map_err(db_error)?
        .ok_or_else(|| AwsError::new(400, "ResourceNotFound", format!("Resource not found: '{arn}'")))
}

fn check_routes(engine: &Engine, routes: &Value) -> Result<(), AwsError> {
    let routes = routes
        .as_array()
        .filter(|r| !r.is_empty() && r.len() <= 2)
        .ok_or_else(|| AwsError::validation("routingConfiguration must hold one or two versions"))?;
    let total: u64 = routes.iter().map(|r| r["weight"].as_u64().unwrap_or(0)).sum();
    if total != 100 {
        return Err(AwsError::validation(
            "The sum of the weights in the routing configuration must be equal to 100",
        ));
    }
    for route in routes {
        resolve_machine(engine, route["stateMachineVersionArn"].as_str().unwrap_or_default())?;
    }
    Ok(())
}

pub fn create_alias(engine: &Engine, input: &Input<'_>) -> Answer {
    let name = input.required("name")?;
    check_name(name)?;
    let routes = input.value("routingConfiguration");
    check_routes(engine, routes)?;
    let version = routes[0]["stateMachineVersionArn"].as_str().unwrap_or_default();
    let machine_arn = version.rsplit_once(':').map_or(version, |(m, _)| m);
    let arn = format!("{machine_arn}:{name}");
    let now = engine.now();
    let doc = json!({"stateMachineAliasArn": arn, "name": name, "description": input.str("description").unwrap_or_default(),
        "routingConfiguration": routes, "creationDate": now, "updateDate": now});
    let inserted = engine
        .db
        .execute(
            "INSERT INTO aliases (arn, machine, doc) VALUES (?1, ?2, ?3) ON CONFLICT (arn) DO NOTHING",
            &params![arn.as_str(), machine_arn, doc.to_string()],
        )
        .map_err(db_error)?;
    if inserted == 0 {
        return Err(AwsError::new(400, "ConflictException", format!("Alias already exists: '{arn}'")));
    }
    Ok(json!({"stateMachineAliasArn": arn, "creationDate": seconds(now)}))
}

pub fn update_alias(engine: &Engine, input: &Input<'_>) -> Answer {
    let arn = input.required("stateMachineAliasArn")?;
    let mut doc = alias(engine, arn)?;
    if !input.value("routingConfiguration").is_null() {
        check_routes(engine, input.value("routingConfiguration"))?;
        doc["routingConfiguration"] = input.value("routingConfiguration").clone();
    }
    if let Some(d) = input.str("description") {
        doc["description"] = json!(d);
    }
    let now = engine.now();
    doc["updateDate"] = json!(now);
    engine
        .db
        .execute("UPDATE aliases SET doc = ?2 WHERE arn = ?1", &params![arn, doc.to_string()])
        .map_err(db_error)?;
    Ok(json!({"updateDate": seconds(now)}))
}

pub fn describe_alias(engine: &Engine, input: &Input<'_>) -> Answer {
    let mut doc = alias(engine, input.required("stateMachineAliasArn")?)?;
    for key in ["creationDate", "updateDate"] {
        doc[key] = seconds(doc[key].as_i64().unwrap_or(0));
    }
    Ok(doc)
}

pub fn list_aliases(engine: &Engine, input: &Input<'_>) -> Answer {
    let arn = input.required("stateMachineArn")?;
    let docs =
        store::docs(&engine.db, "SELECT doc FROM aliases WHERE machine = ?1 ORDER BY arn", &params![arn])
            .map_err(db_error)?;
    let items = docs.into_iter().map(|d| json!({"stateMachineAliasArn": d["stateMachineAliasArn"], "creationDate": seconds(d["creationDate"].as_i64().unwrap_or(0))})).collect();
    page(items, input, "stateMachineAliases", 100)
}

pub fn delete_alias(engine: &Engine, input: &Input<'_>) -> Answer {
    let arn = input.required("stateMachineAliasArn")?;
    engine.db.execute("DELETE FROM aliases WHERE arn = ?1", &params![arn]).map_err(db_error)?;
    Ok(json!({}))
}

fn tagged(engine: &Engine, input: &Input<'_>) -> Result<Value, AwsError> {
    let arn = input.required("resourceArn")?;
    store::machine(&engine.db, arn)
        .map_err(db_error)?
        .ok_or_else(|| AwsError::new(400, "ResourceNotFound", format!("Resource not found: '{arn}'")))
}

pub fn tag(engine: &Engine, input: &Input<'_>) -> Answer {
    let mut doc = tagged(engine, input)?;
    for t in input.value("tags").as_array().into_iter().flatten() {
        if let Some(key) = t["key"].as_str() {
            doc["tags"][key] = t["value"].clone();
        }
    }
    save(engine, &doc)?;
    Ok(json!({}))
}

pub fn untag(engine: &Engine, input: &Input<'_>) -> Answer {
    let mut doc = tagged(engine, input)?;
    if let Some(tags) = doc["tags"].as_object_mut() {
        for key in input.value("tagKeys").as_array().into_iter().flatten().filter_map(Value::as_str) {
            tags.remove(key);
        }
    }
    save(engine, &doc)?;
    Ok(json!({}))
}

pub fn list_tags(engine: &Engine, input: &Input<'_>) -> Answer {
    let doc = tagged(engine, input)?;
    let tags: Vec<Value> =
        doc["tags"].as_object().into_iter().flatten().map(|(k, v)| json!({"key": k, "value": v})).collect();
    Ok(json!({"tags": tags}))
}
