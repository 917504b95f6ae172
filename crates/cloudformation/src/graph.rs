//! The dependency graph of a template's resources: edges from `Ref`, `Fn::GetAtt`, `Fn::Sub`
//! and `DependsOn`; unresolved names and cycles refused with CloudFormation's messages.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::intrinsics::PSEUDO;

/// Every name a fragment refers to (resources or parameters), in first-seen order.
pub fn references(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) if map.len() == 1 => {
            let (key, arg) = map.iter().next().expect("one entry");
            match (key.as_str(), arg) {
                ("Ref", Value::String(name)) => {
                    out.insert(name.clone());
                }
                ("Fn::GetAtt", Value::Array(items)) => {
                    if let Some(Value::String(name)) = items.first() {
                        out.insert(name.clone());
                    }
                    items.iter().skip(1).for_each(|i| references(i, out));
                }
                ("Fn::GetAtt", Value::String(text)) => {
                    out.insert(text.split('.').next().unwrap_or_default().to_owned());
                }
                ("Fn::Sub", Value::String(text)) => sub_names(text, &BTreeSet::new(), out),
                ("Fn::Sub", Value::Array(items)) => {
                    let vars: BTreeSet<String> = items
                        .get(1)
                        .and_then(Value::as_object)
                        .map(|m| m.keys().cloned().collect())
                        .unwrap_or_default();
                    if let Some(Value::String(text)) = items.first() {
                        sub_names(text, &vars, out);
                    }
                    items.iter().skip(1).for_each(|i| references(i, out));
                }
                _ => references(arg, out),
            }
        }
        Value::Object(map) => map.values().for_each(|v| references(v, out)),
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

fn sub_names(text: &str, vars: &BTreeSet<String>, out: &mut BTreeSet<String>) {
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if !name.starts_with('!') && !vars.contains(name) {
            let name = if name.starts_with("AWS::") { name } else { name.split('.').next().unwrap_or(name) };
            out.insert(name.to_owned());
        }
        rest = &after[end + 1..];
    }
}

fn depends_on(resource: &Value) -> Vec<String> {
    match resource.get("DependsOn") {
        Some(Value::String(name)) => vec![name.clone()],
        Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

/// Each resource's dependencies on other resources, after checking every name resolves.
pub fn dependencies(template: &Value) -> Result<BTreeMap<String, BTreeSet<String>>, String> {
    let empty = serde_json::Map::new();
    let resources = template.get("Resources").and_then(Value::as_object).unwrap_or(&empty);
    let params: BTreeSet<&str> = template
        .get("Parameters")
        .and_then(Value::as_object)
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let known = |name: &str| resources.contains_key(name) || params.contains(name) || PSEUDO.contains(&name);
    let mut graph = BTreeMap::new();
    let mut unresolved = BTreeSet::new();
    for (id, resource) in resources {
        let mut names = BTreeSet::new();
        for section in ["Properties", "Metadata", "UpdatePolicy", "CreationPolicy"] {
            if section == "Metadata" {
                continue; // Metadata may hold anything; CloudFormation resolves no Refs there.
            }
            if let Some(value) = resource.get(section) {
                references(value, &mut names);
            }
        }
        let mut edges: BTreeSet<String> = BTreeSet::new();
        for name in names {
            if !known(&name) {
                unresolved.insert(name);
            } else if resources.contains_key(&name) {
                edges.insert(name);
            }
        }
        for name in depends_on(resource) {
            if !resources.contains_key(&name) {
                return Err(format!(
                    "Template format error: Unresolved resource dependencies [{name}] in the Resources block of the template"
                ));
            }
            edges.insert(name);
        }
        graph.insert(id.clone(), edges);
    }
    if !unresolved.is_empty() {
        let names: Vec<String> = unresolved.into_iter().collect();
        return Err(format!(
            "Template format error: Unresolved resource dependencies [{}] in the Resources block of the template",
            names.join(", ")
        ));
    }
    if let Some(Value::Object(outputs)) = template.get("Outputs") {
        let mut names = BTreeSet::new();
        outputs.values().for_each(|o| references(o, &mut names));
        let missing: Vec<String> = names.into_iter().filter(|n| !known(n)).collect();
        if !missing.is_empty() {
            return Err(format!(
                "Template format error: Unresolved resource dependencies [{}] in the Outputs block of the template",
                missing.join(", ")
            ));
        }
    }
    order(&graph)?;
    Ok(graph)
}

/// The resources in an order where each comes after its dependencies; a cycle is refused.
pub fn order(graph: &BTreeMap<String, BTreeSet<String>>) -> Result<Vec<String>, String> {
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    while out.len() < graph.len() {
        let ready: Vec<&String> = graph
            .iter()
            .filter(|(id, deps)| {
                !done.contains(id.as_str()) && deps.iter().all(|d| done.contains(d.as_str()))
            })
            .map(|(id, _)| id)
            .collect();
        if ready.is_empty() {
            let stuck: Vec<&str> = graph.keys().map(String::as_str).filter(|id| !done.contains(id)).collect();
            return Err(format!("Circular dependency between resources: [{}]", stuck.join(", ")));
        }
        for id in ready {
            done.insert(id);
            out.push(id.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn edges_order_and_errors() {
        let template = json!({"Parameters": {"P": {"Type": "String"}}, "Resources": {
            "A": {"Type": "T", "Properties": {"X": {"Fn::Sub": "${B.Arn}-${P}-${AWS::Region}"}}},
            "B": {"Type": "T", "Properties": {"Y": {"Ref": "C"}}},
            "C": {"Type": "T"},
            "D": {"Type": "T", "DependsOn": "A", "Properties": {"Z": {"Fn::GetAtt": ["C", "Arn"]}}},
        }});
        let graph = dependencies(&template).unwrap();
        assert_eq!(graph["A"], BTreeSet::from(["B".to_owned()]));
        assert_eq!(graph["D"], BTreeSet::from(["A".to_owned(), "C".to_owned()]));
        assert_eq!(order(&graph).unwrap(), ["C", "B", "A", "D"]);
        let bad = json!({"Resources": {"A": {"Type": "T", "Properties": {"X": {"Ref": "Missing"}}}}});
        assert_eq!(
            dependencies(&bad).unwrap_err(),
            "Template format error: Unresolved resource dependencies [Missing] in the Resources block of the template"
        );
        let cycle = json!({"Resources": {"A": {"Type": "T", "DependsOn": "B"}, "B": {"Type": "T", "Properties": {"X": {"Ref": "A"}}}}});
        assert_eq!(dependencies(&cycle).unwrap_err(), "Circular dependency between resources: [A, B]");
    }
}
