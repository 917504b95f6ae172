//! The order the translator walks resources and events in. For a template with a REST API (or an
//! HTTP API with a default authorizer) the translator first turns `Resources` and each function's
//! `Events` into Python 2.7 dicts, so it walks them in Python 2.7's hash order — which moves as
//! the implicit APIs are added (and removed) and as the plugins update the events. Otherwise it
//! walks them in the template's order. Both matter: paths are written into API bodies, and
//! function names concatenated for deployment ids, in that order.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::py27::{table_order, Op};
use crate::SourceOrder;

pub(crate) struct PluginOrder {
    py27: bool,
    resources: Vec<Op>,
    events: BTreeMap<String, Vec<Op>>,
    /// The order to use now.
    pub order: SourceOrder,
}

fn is_owner(resource: &Value) -> bool {
    matches!(
        resource.get("Type").and_then(Value::as_str),
        Some("AWS::Serverless::Function" | "AWS::Serverless::StateMachine")
    )
}

fn events_of(resource: &Value) -> Option<&Map<String, Value>> {
    resource.get("Properties").and_then(|p| p.get("Events")).and_then(Value::as_object)
}

/// The translator's `_template_has_api_resource` and
/// `_template_has_httpapi_resource_with_default_authorizer`.
fn converts(root: &Map<String, Value>, resources: &Map<String, Value>) -> bool {
    let ty = |r: &Value| r.get("Type").and_then(Value::as_str).unwrap_or("").to_string();
    let api_event = resources.values().filter(|r| is_owner(r)).any(|r| {
        events_of(r).is_some_and(|e| e.values().any(|e| e.get("Type").and_then(Value::as_str) == Some("Api")))
    });
    if resources.values().any(|r| ty(r) == "AWS::Serverless::Api") || api_event {
        return true;
    }
    let global_default = root
        .get("Globals")
        .and_then(|g| g.get("HttpApi"))
        .and_then(|h| h.get("Auth"))
        .and_then(|a| a.get("DefaultAuthorizer"))
        .is_some_and(crate::function::truthy);
    let explicit = resources.values().any(|r| {
        ty(r) == "AWS::Serverless::HttpApi"
            && (global_default
                || r.pointer("/Properties/Auth/DefaultAuthorizer").is_some_and(crate::function::truthy))
    });
    let implicit = global_default
        && resources.values().any(|r| {
            ty(r) == "AWS::Serverless::Function"
                && events_of(r).is_some_and(|e| {
                    e.values().any(|e| e.get("Type").and_then(Value::as_str) == Some("HttpApi"))
                })
        });
    explicit || implicit
}

impl PluginOrder {
    pub(crate) fn new(
        root: &Map<String, Value>,
        resources: &Map<String, Value>,
        source: &SourceOrder,
    ) -> PluginOrder {
        let keys = source.keys(&["Resources"], resources);
        let mut this = PluginOrder {
            py27: converts(root, resources),
            resources: keys.iter().map(|k| Op::Add(k.clone())).collect(),
            events: BTreeMap::new(),
            order: source.clone(),
        };
        for (id, resource) in resources.iter().filter(|(_, r)| is_owner(r)) {
            if let Some(events) = events_of(resource) {
                let keys = source.keys(&["Resources", id, "Properties", "Events"], events);
                this.events.insert(id.clone(), keys.into_iter().map(Op::Add).collect());
            }
        }
        this.refresh();
        this
    }

    fn refresh(&mut self) {
        let order = |ops: &[Op]| -> Vec<String> {
            if self.py27 {
                return table_order(ops);
            }
            let mut keys: Vec<String> = vec![];
            for op in ops {
                match op {
                    Op::Add(k) if !keys.contains(k) => keys.push(k.clone()),
                    Op::Remove(k) => keys.retain(|x| x != k),
                    _ => {}
                }
            }
            keys
        };
        self.order.insert(vec!["Resources".into()], order(&self.resources));
        for (id, ops) in &self.events {
            self.order.insert(
                vec!["Resources".into(), id.clone(), "Properties".into(), "Events".into()],
                order(ops),
            );
        }
    }

    /// An implicit API is added to the resources before its plugin runs.
    pub(crate) fn add_implicit(&mut self, id: &str, existed: bool) {
        if !existed {
            self.resources.push(Op::Add(id.to_string()));
        }
        self.refresh();
    }

    /// After a plugin: the implicit API gone again if unused, and each function's events updated
    /// with its events of the plugin's type (which can grow the dict's table).
    pub(crate) fn after_plugin(
        &mut self,
        id: &str,
        existed: bool,
        resources: &Map<String, Value>,
        event_type: &str,
    ) {
        if !existed && !resources.contains_key(id) {
            self.resources.push(Op::Remove(id.to_string()));
        }
        for (owner, ops) in self.events.iter_mut() {
            let Some(events) = resources.get(owner).and_then(events_of) else { continue };
            let count =
                events.values().filter(|e| e.get("Type").and_then(Value::as_str) == Some(event_type)).count();
            if count > 0 {
                ops.push(Op::Merge(count));
            }
        }
        self.refresh();
    }
}
