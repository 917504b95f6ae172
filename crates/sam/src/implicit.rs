//! The implicit-API plugin both API kinds share: the implicit API (`ServerlessRestApi`,
//! `ServerlessHttpApi`) for events that name no API, each event's path and method written into
//! its API's managed body, and — as the translator does — the implicit API and its paths made
//! conditional when every function behind them is, and given their deletion policies.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::error::ResourceError;
use crate::swagger;

/// What differs between the REST and HTTP implicit APIs.
pub(crate) struct ImplicitKind {
    pub id: &'static str,
    pub condition_name: &'static str,
    pub event_type: &'static str,
    pub api_property: &'static str,
    pub api_type: &'static str,
    pub resource: Value,
}

/// Per API: per path, per method, the condition of the function behind it (None: unconditional).
type ApiConditions = BTreeMap<String, BTreeMap<String, BTreeMap<String, Option<String>>>>;

/// Adds the implicit API, points events that name no API at it, and writes each event's path
/// and method into its API's managed body; the implicit API goes away again if no event uses it.
/// Returns the conditions the template gains.
pub(crate) fn add_implicit(
    sam: &mut Map<String, Value>,
    globals: Option<&Value>,
    mut shadows: Option<&mut crate::py27::Shadows>,
    source: &crate::SourceOrder,
    errors: &mut Vec<String>,
    kind: &ImplicitKind,
) -> Map<String, Value> {
    let existing = sam.get(kind.id).cloned();
    sam.insert(kind.id.to_string(), kind.resource.clone());
    let order = source.keys(&["Resources"], sam);
    let owners: Vec<String> = order
        .iter()
        .map(|id| (id, &sam[id]))
        .filter(|(_, r)| {
            matches!(
                r.get("Type").and_then(Value::as_str),
                Some("AWS::Serverless::Function" | "AWS::Serverless::StateMachine")
            )
        })
        .map(|(id, _)| id.clone())
        .collect();
    let mut conditions = ApiConditions::new();
    let mut deletion: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    let mut replace: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for owner in owners {
        let Some(events) =
            sam[&owner].get("Properties").and_then(|p| p.get("Events")).and_then(Value::as_object).cloned()
        else {
            continue;
        };
        let attr = |k: &str| sam[&owner].get(k).and_then(Value::as_str).map(str::to_string);
        let (condition, deletion_policy, replace_policy) =
            (attr("Condition"), attr("DeletionPolicy"), attr("UpdateReplacePolicy"));
        let mut changed = events.clone();
        // The plugin first copies the events of its type into a Python 2.7 dict, in the events'
        // order, and walks that dict's order.
        let of_kind: Vec<String> = source
            .keys(&["Resources", &owner, "Properties", "Events"], &events)
            .into_iter()
            .filter(|k| events[k].get("Type").and_then(Value::as_str) == Some(kind.event_type))
            .collect();
        for (event_id, event) in crate::py27::dict_order(&of_kind).iter().map(|k| (k, &events[k])) {
            propagate_tags_to_implicit(sam, globals, kind, &owner, event);
            match process_event(sam, kind, event_id, event, shadows.as_deref_mut()) {
                Ok(Some((new, api, path, method))) => {
                    if let Some(settings) = new.pointer("/Properties/RouteSettings") {
                        let route = match method.as_str() {
                            swagger::ANY_METHOD => path.clone(),
                            m => format!("{} {path}", m.to_uppercase()),
                        };
                        if let Err(e) =
                            merge_route_settings(sam, &api, event_id, &route, settings, condition.as_deref())
                        {
                            errors.push(e);
                        }
                    }
                    changed.insert(event_id.clone(), new);
                    conditions
                        .entry(api.clone())
                        .or_default()
                        .entry(path)
                        .or_default()
                        .insert(method, condition.clone());
                    deletion.entry(api.clone()).or_default().push(deletion_policy.clone());
                    replace.entry(api).or_default().push(replace_policy.clone());
                }
                Ok(None) => {}
                Err(message) => errors.push(ResourceError::new(&owner, message).message()),
            }
        }
        if let Some(props) =
            sam.get_mut(&owner).and_then(|r| r.get_mut("Properties")).and_then(Value::as_object_mut)
        {
            props.insert("Events".into(), Value::Object(changed));
        }
    }
    let mut new_conditions = Map::new();
    implicit_attributes(sam, kind, &conditions, &deletion, &replace, &mut new_conditions);
    path_conditions(sam, kind, &conditions, shadows, &mut new_conditions);
    let empty = sam
        .get(kind.id)
        .and_then(|r| r.pointer("/Properties/DefinitionBody/paths"))
        .and_then(Value::as_object)
        .is_some_and(|p| p.is_empty());
    if empty {
        match existing {
            Some(e) => {
                sam.insert(kind.id.to_string(), e);
            }
            None => {
                sam.remove(kind.id);
            }
        }
    }
    new_conditions
}

/// The implicit API is conditional when every method on it is, and retained when any function
/// behind it is.
fn implicit_attributes(
    sam: &mut Map<String, Value>,
    kind: &ImplicitKind,
    conditions: &ApiConditions,
    deletion: &BTreeMap<String, Vec<Option<String>>>,
    replace: &BTreeMap<String, Vec<Option<String>>>,
    new_conditions: &mut Map<String, Value>,
) {
    let Some(api) = sam.get_mut(kind.id).and_then(Value::as_object_mut) else { return };
    if let Some(paths) = conditions.get(kind.id) {
        let all: Vec<&Option<String>> = paths.values().flat_map(|m| m.values()).collect();
        if !all.is_empty() && all.iter().all(|c| c.is_some()) {
            let mut unique: Vec<String> = all.iter().filter_map(|c| (*c).clone()).collect();
            unique.sort();
            unique.dedup();
            if unique.len() == 1 {
                api.insert("Condition".into(), json!(unique[0]));
            } else {
                api.insert("Condition".into(), json!(kind.condition_name));
                for (name, c) in crate::deployment::combined_condition(&unique, kind.condition_name) {
                    new_conditions.insert(name, c);
                }
            }
        }
    }
    let pick = |list: Option<&Vec<Option<String>>>, ranked: &[&str]| {
        let list = list?;
        ranked.iter().find(|r| list.iter().any(|p| p.as_deref() == Some(**r))).map(|r| r.to_string())
    };
    if let Some(p) = pick(deletion.get(kind.id), &["Retain", "Delete"]) {
        api.insert("DeletionPolicy".into(), json!(p));
    }
    if let Some(p) = pick(replace.get(kind.id), &["Retain", "Snapshot", "Delete"]) {
        api.insert("UpdateReplacePolicy".into(), json!(p));
    }
}

/// A path whose methods are all conditional becomes conditional itself.
fn path_conditions(
    sam: &mut Map<String, Value>,
    kind: &ImplicitKind,
    conditions: &ApiConditions,
    mut shadows: Option<&mut crate::py27::Shadows>,
    new_conditions: &mut Map<String, Value>,
) {
    let apis: Vec<String> = sam
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind.api_type))
        .filter(|(_, r)| r.pointer("/Properties/__MANAGE_SWAGGER").is_some_and(crate::function::truthy))
        .map(|(id, _)| id.clone())
        .collect();
    for api_id in apis {
        let Some(paths) = sam
            .get_mut(&api_id)
            .and_then(|r| r.pointer_mut("/Properties/DefinitionBody/paths"))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let mut wrapped = vec![];
        for (path, item) in paths.iter_mut() {
            let Some(methods) = conditions.get(&api_id).and_then(|c| c.get(path)) else { continue };
            if methods.is_empty() || methods.values().any(Option::is_none) {
                continue;
            }
            let mut unique: Vec<String> = methods.values().flatten().cloned().collect();
            unique.sort();
            unique.dedup();
            let name = if unique.len() == 1 {
                unique[0].clone()
            } else {
                let logical = path.replace('/', "SLASH").replace('{', "OB").replace('}', "CB");
                let name = format!("{api_id}{logical}PathCondition");
                for (n, c) in crate::deployment::combined_condition(&unique, &name) {
                    new_conditions.insert(n, c);
                }
                name
            };
            *item = json!({"Fn::If": [name, item.clone(), {"Ref": "AWS::NoValue"}]});
            wrapped.push((path.clone(), item.clone()));
        }
        // The plugin's pass over every managed API is one more editor step.
        if let Some(shadow) = shadows.as_deref_mut().and_then(|s| s.get_mut(&api_id)) {
            shadow.round(|s| {
                for (path, item) in &wrapped {
                    s.set(&["paths"], path, item);
                }
            });
        }
    }
}

/// An event of the implicit API on a resource with `PropagateTags` gives the API its tags.
fn propagate_tags_to_implicit(
    sam: &mut Map<String, Value>,
    globals: Option<&Value>,
    kind: &ImplicitKind,
    owner: &str,
    event: &Value,
) {
    if event.get("Properties").and_then(|p| p.get(kind.api_property)).is_some() {
        return;
    }
    let section = match sam[owner].get("Type").and_then(Value::as_str) {
        Some("AWS::Serverless::StateMachine") => "StateMachine",
        _ => "Function",
    };
    let global = globals.and_then(|g| g.get(section));
    let own = |k: &str| {
        sam[owner].get("Properties").and_then(|p| p.get(k)).filter(|v| crate::function::truthy(v)).cloned()
    };
    let pick = |k: &str| {
        own(k).or_else(|| global.and_then(|g| g.get(k)).filter(|v| crate::function::truthy(v)).cloned())
    };
    let (Some(_), Some(Value::Object(tags))) = (pick("PropagateTags"), pick("Tags")) else { return };
    let Some(props) =
        sam.get_mut(kind.id).and_then(|r| r.get_mut("Properties")).and_then(Value::as_object_mut)
    else {
        return;
    };
    let existing = props.entry("Tags").or_insert_with(|| json!({}));
    if let Some(existing) = existing.as_object_mut() {
        existing.extend(tags);
    }
    props.insert("PropagateTags".into(), json!(true));
}

/// One event: its properties as the plugin leaves them (API id filled in), or None when the
/// plugin skips it.
fn process_event(
    sam: &mut Map<String, Value>,
    kind: &ImplicitKind,
    event_id: &str,
    event: &Value,
    shadows: Option<&mut crate::py27::Shadows>,
) -> std::result::Result<Option<(Value, String, String, String)>, String> {
    let event_error = |m: &str| ResourceError::event(event_id, m).message();
    let mut props = match event.get("Properties") {
        Some(Value::Object(p)) => p.clone(),
        None | Some(Value::Null) if kind.event_type == "HttpApi" => Map::new(),
        None | Some(Value::Null) => return Ok(None),
        Some(_) => return Err(event_error("Properties should be a map.")),
    };
    if props.is_empty() && kind.event_type == "Api" {
        return Ok(None);
    }
    props.entry(kind.api_property).or_insert_with(|| json!({"Ref": kind.id}));
    if kind.event_type == "HttpApi" {
        let blank = |k: &str| props.get(k).is_none_or(|v| !crate::function::truthy(v));
        if blank("Path") && blank("Method") {
            props.insert("Path".into(), json!("$default"));
            props.insert("Method".into(), json!(swagger::ANY_METHOD));
        }
    }
    let api_value = props.get(kind.api_property).cloned().unwrap_or(Value::Null);
    let api_id = match &api_value {
        Value::Object(m) if m.contains_key("Ref") => m["Ref"].clone(),
        other => other.clone(),
    };
    for key in ["Path", "Method"] {
        if props.get(key).is_none_or(Value::is_null) {
            return Err(event_error(&format!("Property '{key}' is required.")));
        }
    }
    let Some(api_id) = api_id.as_str() else {
        return Err(event_error(&format!("Property '{}' should be a string.", kind.api_property)));
    };
    for key in ["Path", "Method"] {
        if !props[key].is_string() {
            return Err(event_error(&format!("Property '{key}' should be a string.")));
        }
    }
    let api_type = sam.get(api_id).and_then(|r| r.get("Type")).and_then(Value::as_str);
    let http_from_rest =
        api_type == Some("AWS::Serverless::HttpApi") && kind.api_type != "AWS::Serverless::HttpApi";
    if api_type.is_none() || http_from_rest {
        return Err(event_error(&format!(
            "{} must be a valid reference to an '{}' resource in same template.",
            kind.api_property, kind.api_type
        )));
    }
    let path = props["Path"].as_str().unwrap_or_default().to_string();
    let method = props["Method"].as_str().unwrap_or_default().to_string();
    if let Some(api_props) =
        sam.get_mut(api_id).and_then(|r| r.get_mut("Properties")).and_then(Value::as_object_mut)
    {
        let managed = api_props.get("__MANAGE_SWAGGER").and_then(Value::as_bool) == Some(true);
        if managed && swagger::is_valid(api_props.get("DefinitionBody")) {
            if let Some(body) = api_props.get_mut("DefinitionBody") {
                swagger::add_path(body, &path, &method).map_err(|e| e.message())?;
            }
            if let Some(shadow) = shadows.and_then(|s| s.get_mut(api_id)) {
                let method = swagger::normalize_method(&method);
                shadow.round(|s| {
                    s.set_default(&["paths"], &path);
                    s.set_default(&["paths", &path], &method);
                });
            }
        }
    }
    let mut new = event.clone();
    if let Some(obj) = new.as_object_mut() {
        obj.insert("Properties".into(), Value::Object(props));
    }
    Ok(Some((new, api_id.to_string(), path, method)))
}

/// An `HttpApi` event's `RouteSettings` join its API's, under the event's route (`GET /path`,
/// or the path alone for any method), conditional on the function's condition.
fn merge_route_settings(
    sam: &mut Map<String, Value>,
    api: &str,
    event_id: &str,
    route: &str,
    settings: &Value,
    condition: Option<&str>,
) -> std::result::Result<(), String> {
    let Some(props) = sam.get_mut(api).and_then(|r| r.get_mut("Properties")).and_then(Value::as_object_mut)
    else {
        return Ok(());
    };
    let all = props.entry("RouteSettings").or_insert_with(|| json!({}));
    let Some(all) = all.as_object_mut() else {
        return Err(ResourceError::new(api, "Property 'RouteSettings' should be a map.").message());
    };
    let settings = match condition {
        Some(c) => json!({"Fn::If": [c, settings, {"Ref": "AWS::NoValue"}]}),
        None => settings.clone(),
    };
    let Some(settings) = settings.as_object() else {
        return Err(ResourceError::event(event_id, "Property 'RouteSettings' should be a map.").message());
    };
    let entry = all.entry(route.to_string()).or_insert_with(|| json!({}));
    if let Some(entry) = entry.as_object_mut() {
        entry.extend(settings.clone());
    }
    Ok(())
}
