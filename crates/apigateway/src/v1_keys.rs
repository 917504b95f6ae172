//! API keys and usage plans of REST APIs: stored, and enforced on methods with
//! `apiKeyRequired` (see `data`). Throttles and quotas are stored, not enforced.

use hyper::Method;
use nimbus_api::{ApiRequest, ApiResponse, AwsError};
use serde_json::{json, Value};

use crate::store::{new_id, Change};
use crate::{
    bad_request, conflict, copy_fields, empty, epoch_seconds, not_found, ok, parse_body, patch, unknown,
    with_status, ApiGateway,
};

impl ApiGateway {
    pub(crate) fn route_keys(&self, request: &ApiRequest, s: &[&str]) -> Result<ApiResponse, AwsError> {
        let body = &request.body;
        let include = |name| request.query(name).as_deref() == Some("true");
        use Method as M;
        match (&request.method, s) {
            (&M::POST, ["apikeys"]) => with_status(self.create_api_key(&parse_body(body)?)?, 201),
            (&M::GET, ["apikeys"]) => {
                let values = include("includeValues");
                let items: Vec<Value> =
                    self.docs.list("", "apikey").into_iter().map(|k| key_view(k, values)).collect();
                ok(json!({ "item": items }))
            }
            (&M::GET, ["apikeys", id]) => ok(key_view(self.api_key(id)?, include("includeValue"))),
            (&M::PATCH, ["apikeys", id]) => {
                let mut key = self.api_key(id)?;
                patch::apply(&mut key, &parse_body(body)?)?;
                key["lastUpdatedDate"] = json!(epoch_seconds());
                self.docs.write(vec![Change::Put("apikey", String::new(), id.to_string(), key.clone())])?;
                ok(key_view(key, false))
            }
            (&M::DELETE, ["apikeys", id]) => {
                self.api_key(id)?;
                let mut changes = vec![Change::Delete("apikey", String::new(), id.to_string())];
                for plan in self.docs.list("", "usageplan") {
                    let plan_id = plan["id"].as_str().unwrap_or_default().to_owned();
                    changes.push(Change::Delete("usageplankey", plan_id, id.to_string()));
                }
                self.docs.write(changes)?;
                empty(202)
            }
            (&M::POST, ["usageplans"]) => with_status(self.create_usage_plan(&parse_body(body)?)?, 201),
            (&M::GET, ["usageplans"]) => {
                let key = request.query("keyId");
                let plans = self.docs.list("", "usageplan").into_iter().filter(|p| {
                    key.as_deref().is_none_or(|k| {
                        self.docs.get(p["id"].as_str().unwrap_or_default(), "usageplankey", k).is_some()
                    })
                });
                ok(json!({ "item": plans.collect::<Vec<_>>() }))
            }
            (&M::GET, ["usageplans", id]) => ok(self.usage_plan(id)?),
            (&M::PATCH, ["usageplans", id]) => {
                let mut plan = self.usage_plan(id)?;
                let input = parse_body(body)?;
                // `add /apiStages` with value `api:stage`.
                for op in input["patchOperations"].as_array().cloned().unwrap_or_default() {
                    if op["path"] == "/apiStages" {
                        let value = op["value"].as_str().unwrap_or_default();
                        let (api, stage) = value.split_once(':').unwrap_or((value, ""));
                        let entry = json!({ "apiId": api, "stage": stage });
                        let stages = plan["apiStages"].as_array_mut();
                        match (op["op"].as_str(), stages) {
                            (Some("add"), Some(stages)) => stages.push(entry),
                            (Some("remove"), Some(stages)) => stages.retain(|s| *s != entry),
                            _ => {}
                        }
                    } else {
                        patch::apply(&mut plan, &json!({ "patchOperations": [op] }))?;
                    }
                }
                self.docs.write(vec![Change::Put(
                    "usageplan",
                    String::new(),
                    id.to_string(),
                    plan.clone(),
                )])?;
                ok(plan)
            }
            (&M::DELETE, ["usageplans", id]) => {
                self.usage_plan(id)?;
                self.docs.write(vec![
                    Change::Delete("usageplan", String::new(), id.to_string()),
                    Change::DeleteApi(id.to_string()),
                ])?;
                empty(202)
            }
            (&M::POST, ["usageplans", plan, "keys"]) => {
                self.usage_plan(plan)?;
                let input = parse_body(body)?;
                let key_id = input["keyId"].as_str().unwrap_or_default();
                let key =
                    self.api_key(key_id).map_err(|_| bad_request("Invalid API Key identifier specified"))?;
                if self.docs.get(plan, "usageplankey", key_id).is_some() {
                    return Err(conflict(format!("Usage Plan {plan} cannot be added because API Key {key_id} cannot reference multiple Usage Plans with the same API Stage")));
                }
                let doc =
                    json!({ "id": key_id, "type": "API_KEY", "value": key["value"], "name": key["name"] });
                self.docs.write(vec![Change::Put(
                    "usageplankey",
                    plan.to_string(),
                    key_id.to_owned(),
                    doc.clone(),
                )])?;
                with_status(doc, 201)
            }
            (&M::GET, ["usageplans", plan, "keys"]) => {
                self.usage_plan(plan)?;
                ok(json!({ "item": self.docs.list(plan, "usageplankey") }))
            }
            (&M::GET, ["usageplans", plan, "keys", key]) => {
                self.usage_plan(plan)?;
                let doc = self.docs.get(plan, "usageplankey", key);
                doc.map_or_else(|| Err(not_found("Invalid API Key identifier specified")), ok)
            }
            (&M::DELETE, ["usageplans", plan, "keys", key]) => {
                self.usage_plan(plan)?;
                self.docs
                    .get(plan, "usageplankey", key)
                    .ok_or_else(|| not_found("Invalid API Key identifier specified"))?;
                self.docs.write(vec![Change::Delete("usageplankey", plan.to_string(), key.to_string())])?;
                empty(202)
            }
            _ => Err(unknown(&request.method, request.uri.path())),
        }
    }

    fn create_api_key(&self, input: &Value) -> Result<Value, AwsError> {
        let value = match input["value"].as_str() {
            Some(value) if value.len() < 20 => {
                return Err(bad_request("API Key value should be at least 20 characters"));
            }
            Some(value) => value.to_owned(),
            None => new_id(40),
        };
        if self.docs.list("", "apikey").iter().any(|k| k["value"] == value) {
            return Err(conflict("API Key already exists"));
        }
        let id = new_id(10);
        let mut doc = json!({
            "id": id,
            "value": value,
            "name": input["name"].as_str().unwrap_or(&id),
            "enabled": input["enabled"].as_bool().unwrap_or(false),
            "createdDate": epoch_seconds(),
            "lastUpdatedDate": epoch_seconds(),
            "stageKeys": [],
        });
        copy_fields(&mut doc, input, &["description", "customerId", "tags"]);
        self.docs.write(vec![Change::Put("apikey", String::new(), id, doc.clone())])?;
        Ok(doc)
    }

    fn api_key(&self, id: &str) -> Result<Value, AwsError> {
        self.docs.get("", "apikey", id).ok_or_else(|| not_found("Invalid API Key identifier specified"))
    }

    fn create_usage_plan(&self, input: &Value) -> Result<Value, AwsError> {
        let name = input["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad_request("Invalid usage plan name specified"))?;
        for stage in input["apiStages"].as_array().into_iter().flatten() {
            let api = stage["apiId"].as_str().unwrap_or_default();
            let name = stage["stage"].as_str().unwrap_or_default();
            if self.docs.get(api, "stage", name).is_none() {
                return Err(bad_request("Invalid stage identifier specified"));
            }
        }
        let id = new_id(6);
        let mut doc = json!({ "id": id, "name": name, "apiStages": [] });
        copy_fields(&mut doc, input, &["description", "apiStages", "throttle", "quota", "tags"]);
        self.docs.write(vec![Change::Put("usageplan", String::new(), id, doc.clone())])?;
        Ok(doc)
    }

    fn usage_plan(&self, id: &str) -> Result<Value, AwsError> {
        self.docs.get("", "usageplan", id).ok_or_else(|| not_found("Invalid Usage Plan ID specified"))
    }

    /// Whether `value` is an enabled API key in a usage plan of `api`'s stage `stage`
    /// (from memory: the data plane asks this on every keyed request).
    pub(crate) fn key_allows(&self, value: &str, api: &str, stage: &str) -> Option<String> {
        let key =
            self.docs.list("", "apikey").into_iter().find(|k| k["value"] == value && k["enabled"] == true)?;
        let id = key["id"].as_str()?.to_owned();
        let allowed = self.docs.list("", "usageplan").iter().any(|plan| {
            let covers = plan["apiStages"]
                .as_array()
                .is_some_and(|stages| stages.iter().any(|s| s["apiId"] == api && s["stage"] == stage));
            covers && self.docs.get(plan["id"].as_str().unwrap_or_default(), "usageplankey", &id).is_some()
        });
        allowed.then_some(id)
    }
}

fn key_view(mut key: Value, with_value: bool) -> Value {
    if !with_value {
        if let Some(object) = key.as_object_mut() {
            object.remove("value");
        }
    }
    key
}
