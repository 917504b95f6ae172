//! The last pass over the output: references to logical ids the transform changed
//! (`!Ref MyLayer` → `!Ref MyLayer1a2b3c4d5e`, also in `DependsOn` and `Fn::Sub`), and references
//! to SAM-only properties (`!Ref Fn.Alias`, `!GetAtt Fn.Alias.Arn`, `${MyApi.Stage}`).

use std::collections::BTreeMap;

use serde_json::Value;

type Refs = BTreeMap<(String, String), String>;

pub(crate) fn resolve(template: &mut Value, changed: &BTreeMap<String, String>, refs: &Refs) {
    depends_on(template, changed);
    walk(template, &|v| id_refs(v, changed));
    walk(template, &|v| property_refs(v, refs));
}

fn depends_on(value: &mut Value, changed: &BTreeMap<String, String>) {
    match value {
        Value::Object(map) => {
            if let Some(dep) = map.get_mut("DependsOn") {
                match dep {
                    Value::String(s) => {
                        if let Some(new) = changed.get(s.as_str()) {
                            *s = new.clone();
                        }
                    }
                    Value::Array(items) => {
                        for item in items {
                            if let Some(new) = item.as_str().and_then(|s| changed.get(s)) {
                                *item = Value::String(new.clone());
                            }
                        }
                    }
                    _ => {}
                }
            }
            for v in map.values_mut() {
                depends_on(v, changed);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| depends_on(v, changed)),
        _ => {}
    }
}

/// Applies `f` to every value, parents first.
fn walk(value: &mut Value, f: &dyn Fn(&mut Value)) {
    f(value);
    match value {
        Value::Object(map) => map.values_mut().for_each(|v| walk(v, f)),
        Value::Array(items) => items.iter_mut().for_each(|v| walk(v, f)),
        _ => {}
    }
}

fn single<'a>(value: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    let map = value.as_object_mut().filter(|m| m.len() == 1)?;
    map.get_mut(key)
}

fn id_refs(value: &mut Value, changed: &BTreeMap<String, String>) {
    if changed.is_empty() {
        return;
    }
    if let Some(Value::String(id)) = single(value, "Ref") {
        if !id.contains('.') {
            if let Some(new) = changed.get(id.as_str()) {
                *id = new.clone();
            }
        }
        return;
    }
    if let Some(Value::Array(items)) = single(value, "Fn::GetAtt") {
        if let Some(joined) = getatt_joined(items) {
            let mut parts = joined.split('.');
            let first = parts.next().unwrap_or_default();
            if let Some(new) = changed.get(first) {
                let mut list = vec![Value::String(new.clone())];
                list.extend(parts.map(|p| Value::String(p.to_string())));
                *items = list;
            }
        }
        return;
    }
    if let Some(sub) = single(value, "Fn::Sub") {
        sub_text(sub, &|name, full| {
            let first = name.split('.').next().unwrap_or_default();
            changed.get(first).map(|new| full.replace(first, new))
        });
    }
}

fn property_refs(value: &mut Value, refs: &Refs) {
    if refs.is_empty() {
        return;
    }
    let lookup = |id: &str, prop: &str| refs.get(&(id.to_string(), prop.to_string())).cloned();
    if let Some(Value::String(r)) = single(value, "Ref") {
        if let Some((id, prop)) = r.split_once('.') {
            if let Some(new) = lookup(id, prop) {
                *r = new;
            }
        }
        return;
    }
    if let Some(Value::Array(items)) = single(value, "Fn::GetAtt") {
        if let Some(joined) = getatt_joined(items) {
            let parts: Vec<&str> = joined.split('.').collect();
            if parts.len() >= 2 {
                if let Some(new) = lookup(parts[0], parts[1]) {
                    let mut list = vec![Value::String(new)];
                    list.extend(parts[2..].iter().map(|p| Value::String(p.to_string())));
                    *items = list;
                }
            }
        }
        return;
    }
    if let Some(sub) = single(value, "Fn::Sub") {
        sub_text(sub, &|name, full| {
            let parts: Vec<&str> = name.split('.').collect();
            if parts.len() < 2 {
                return None;
            }
            lookup(parts[0], parts[1])
                .map(|new| full.replacen(&format!("{}.{}", parts[0], parts[1]), &new, 1))
        });
    }
}

fn getatt_joined(items: &[Value]) -> Option<String> {
    if items.len() < 2 || !items.iter().all(Value::is_string) {
        return None;
    }
    Some(items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("."))
}

/// Rewrites each `${name}` of a `Fn::Sub` string with `f(name, "${name}")` when it answers.
fn sub_text(sub: &mut Value, f: &dyn Fn(&str, &str) -> Option<String>) {
    let text = match sub {
        Value::String(s) => s,
        Value::Array(items) => match items.first_mut() {
            Some(Value::String(s)) => s,
            _ => return,
        },
        _ => return,
    };
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let name = &after[..end];
        let full = &rest[start..start + end + 3];
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
        match valid.then(|| f(name, full)).flatten() {
            Some(new) => out.push_str(&new),
            None => out.push_str(full),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    *text = out;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changed_ids_and_sam_properties_are_rewritten() {
        let mut changed = BTreeMap::new();
        changed.insert("Layer".to_string(), "Layer0123456789".to_string());
        let mut refs = Refs::new();
        refs.insert(("Fn".into(), "Alias".into()), "FnAliaslive".into());
        let mut t = json!({
            "A": {"Ref": "Layer"}, "B": {"Ref": "Fn.Alias"},
            "C": {"Fn::GetAtt": ["Fn", "Alias.Arn"]}, "D": {"Fn::Sub": "${Fn.Alias}/${Layer.Arn}/${X}"},
            "E": {"DependsOn": ["Layer", "Other"]}
        });
        resolve(&mut t, &changed, &refs);
        assert_eq!(
            t,
            json!({
                "A": {"Ref": "Layer0123456789"}, "B": {"Ref": "FnAliaslive"},
                "C": {"Fn::GetAtt": ["FnAliaslive", "Arn"]},
                "D": {"Fn::Sub": "${FnAliaslive}/${Layer0123456789.Arn}/${X}"},
                "E": {"DependsOn": ["Layer0123456789", "Other"]}
            })
        );
    }
}
