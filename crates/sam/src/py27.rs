//! The text the translator hashes into a REST API deployment's logical id: Python 2.7's
//! `str()` of the Swagger body, as aws-sam-translator reproduces it (its `Py27Dict`): dict keys
//! in Python 2.7's hash-table order, template strings as `u'…'`, strings SAM wrote as `'…'`.
//!
//! Python 2.7 orders a dict by slot in an open-addressing table, which depends on the order keys
//! were inserted when they collide. nimbus sees templates as maps without their order, so keys of
//! the template's own objects are taken as inserted in sorted order and keys SAM writes in the
//! order SAM writes them; ids differ from AWS's only when colliding keys were written in another
//! order.

use serde_json::{Map, Value};

/// Python 2.7's string hash (64-bit).
fn string_hash(s: &str) -> u64 {
    let chars: Vec<u32> = s.chars().map(|c| c as u32).collect();
    if chars.is_empty() {
        return 0;
    }
    let mut x: u64 = (chars[0] as u64) << 7;
    for c in &chars {
        x = x.wrapping_mul(1_000_003) ^ (*c as u64);
    }
    x ^ chars.len() as u64
}

/// Path elements of list items (a path is `&str`s).
const INDEXES: &[&str] = &["[0]", "[1]", "[2]", "[3]", "[4]", "[5]", "[6]", "[7]", "[8]", "[9]"];

/// Every dict of a document SAM edits, as Python 2.7 tables, so their iteration order follows
/// the edits the translator makes: insertions, deletions, and the deep copies its editors make
/// (each copy re-inserts a dict's keys in iteration order, which can reorder colliding keys).
/// How a dict's keys were inserted, by its path in the document.
type KeyOrderFn<'a> = dyn Fn(&[String], &Map<String, Value>) -> Vec<String> + 'a;

/// Shadows of the REST APIs' bodies, by API logical id.
pub(crate) type Shadows = std::collections::BTreeMap<String, Shadow>;

#[derive(Clone, Debug, Default)]
pub(crate) struct Shadow {
    tables: std::collections::BTreeMap<Vec<String>, Table>,
}

impl Shadow {
    /// A document SAM wrote or read: every dict's keys inserted in SAM's order.
    pub(crate) fn new(doc: &Value) -> Shadow {
        let mut shadow = Shadow::default();
        shadow.register(&[], doc);
        shadow
    }

    /// A document from the template: keys inserted in source order.
    pub(crate) fn from_source(doc: &Value, base: &[&str], source: &crate::SourceOrder) -> Shadow {
        let mut shadow = Shadow::default();
        let base: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        shadow.register_with(&[], doc, &|path, map| {
            let full: Vec<&str> =
                base.iter().map(String::as_str).chain(path.iter().map(String::as_str)).collect();
            source.keys(&full, map)
        });
        shadow
    }

    fn register(&mut self, path: &[String], value: &Value) {
        self.register_with(path, value, &|_, map| insertion_order(map));
    }

    fn register_with(&mut self, path: &[String], value: &Value, order: &KeyOrderFn<'_>) {
        match value {
            Value::Object(map) => {
                let mut table = Table::new();
                for k in order(path, map) {
                    table.add(&k);
                }
                self.tables.insert(path.to_vec(), table);
                for (k, v) in map {
                    let mut p = path.to_vec();
                    p.push(k.clone());
                    self.register_with(&p, v, order);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    let mut p = path.to_vec();
                    p.push(format!("[{i}]"));
                    self.register_with(&p, v, order);
                }
            }
            _ => {}
        }
    }

    /// `dict[key] = value` on the dict at `path` (created empty if new); a key already there keeps
    /// its slot unless `value` replaces a dict.
    pub(crate) fn set(&mut self, path: &[&str], key: &str, value: &Value) {
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        self.tables.entry(path.clone()).or_insert_with(Table::new).add(key);
        let mut child = path;
        child.push(key.to_string());
        self.drop_under(&child);
        self.register(&child, value);
    }

    /// `dict.setdefault(key, {})`.
    pub(crate) fn set_default(&mut self, path: &[&str], key: &str) {
        let p: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        let exists = self.tables.get(&p).is_some_and(|t| t.contains(key));
        if !exists {
            self.set(path, key, &Value::Object(Map::new()));
        }
    }

    pub(crate) fn remove(&mut self, path: &[&str], key: &str) {
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        if let Some(t) = self.tables.get_mut(&path) {
            t.remove(key);
        }
        let mut child = path;
        child.push(key.to_string());
        self.drop_under(&child);
    }

    fn drop_under(&mut self, prefix: &[String]) {
        self.tables.retain(|p, _| !p.starts_with(prefix));
    }

    /// A deep copy of the document.
    pub(crate) fn copy(&mut self) {
        for table in self.tables.values_mut() {
            let mut fresh = Table::new();
            for k in table.keys() {
                fresh.add(&k);
            }
            *table = fresh;
        }
    }

    /// An editor's step: the document copied in, changed, copied out.
    pub(crate) fn round(&mut self, f: impl FnOnce(&mut Shadow)) {
        self.copy();
        f(self);
        self.copy();
    }

    fn order(&self, path: &[&str], map: &Map<String, Value>) -> Vec<String> {
        let p: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        let Some(table) = self.tables.get(&p) else { return dict_order(&insertion_order(map)) };
        let mut keys: Vec<String> = table.keys().into_iter().filter(|k| map.contains_key(k)).collect();
        for k in insertion_order(map) {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        keys
    }
}

/// Keys in the order a Python 2.7 dict iterates them after inserting `keys` in order.
pub(crate) fn dict_order(keys: &[String]) -> Vec<String> {
    let mut table = Table::new();
    for k in keys {
        table.add(k);
    }
    table.keys()
}

/// Python 2.7's dict table (`Objects/dictobject.c`): `None` marks a deleted slot.
#[derive(Clone, Debug)]
struct Table {
    slots: std::collections::BTreeMap<u64, Option<String>>,
    size: usize,
    fill: usize,
    mask: u64,
}

impl Table {
    fn new() -> Table {
        Table { slots: Default::default(), size: 0, fill: 0, mask: 7 }
    }

    fn index(&self, key: &str) -> u64 {
        let h = string_hash(key);
        let mut i = h & self.mask;
        let is = |slot: &Option<String>| slot.as_deref() == Some(key);
        match self.slots.get(&i) {
            None => return i,
            Some(slot) if is(slot) => return i,
            _ => {}
        }
        let mut free = self.slots.get(&i).is_some_and(Option::is_none).then_some(i);
        let mut walker = i;
        let mut perturb = h;
        loop {
            walker = (walker << 2).wrapping_add(walker).wrapping_add(perturb).wrapping_add(1);
            i = walker & self.mask;
            match self.slots.get(&i) {
                None => return free.unwrap_or(i),
                Some(slot) if is(slot) => return i,
                Some(None) if free.is_none() => free = Some(i),
                _ => {}
            }
            perturb >>= 5;
        }
    }

    fn add(&mut self, key: &str) {
        let start = self.size;
        let i = self.index(key);
        match self.slots.get(&i) {
            None => {
                self.slots.insert(i, Some(key.to_string()));
                self.size += 1;
                self.fill += 1;
            }
            Some(None) => {
                self.slots.insert(i, Some(key.to_string()));
                self.size += 1;
            }
            Some(Some(_)) => {}
        }
        if self.size > start && self.fill * 3 >= ((self.mask + 1) * 2) as usize {
            self.resize(self.size * if self.size > 50_000 { 2 } else { 4 });
        }
    }

    fn remove(&mut self, key: &str) {
        let i = self.index(key);
        if let Some(slot @ Some(_)) = self.slots.get_mut(&i) {
            *slot = None;
            self.size -= 1;
        }
    }

    fn resize(&mut self, request: usize) {
        let mut new_size: u64 = 8;
        while new_size <= request as u64 {
            new_size <<= 1;
        }
        let old = std::mem::take(&mut self.slots);
        self.mask = new_size - 1;
        self.size = 0;
        self.fill = 0;
        for key in old.into_values().flatten() {
            self.add(&key);
        }
    }

    fn contains(&self, key: &str) -> bool {
        self.slots.values().any(|k| k.as_deref() == Some(key))
    }

    fn keys(&self) -> Vec<String> {
        self.slots.values().flatten().cloned().collect()
    }
}

/// The order SAM inserts the keys it writes; anything else sorted after them.
fn insertion_order(map: &Map<String, Value>) -> Vec<String> {
    const SAM_ORDER: &[&str] = &[
        "swagger",
        "openapi",
        "info",
        "version",
        "title",
        "paths",
        "summary",
        "consumes",
        "produces",
        "in",
        "name",
        "required",
        "x-amazon-apigateway-integration",
        "type",
        "httpMethod",
        "uri",
        "requestTemplates",
        "responseTransferMode",
        "credentials",
        "responses",
        "timeoutInMillis",
        "default",
        "statusCode",
        "responseParameters",
        "responseTemplates",
        "description",
        "headers",
        "method.response.header.Access-Control-Allow-Origin",
        "method.response.header.Access-Control-Allow-Headers",
        "method.response.header.Access-Control-Allow-Methods",
        "method.response.header.Access-Control-Max-Age",
        "method.response.header.Access-Control-Allow-Credentials",
        "Access-Control-Allow-Origin",
        "Access-Control-Allow-Headers",
        "Access-Control-Allow-Methods",
        "Access-Control-Max-Age",
        "Access-Control-Allow-Credentials",
        "Bucket",
        "Key",
        "Version",
    ];
    let mut keys: Vec<String> = map.keys().cloned().collect();
    keys.sort_by_key(|k| (SAM_ORDER.iter().position(|s| s == k).unwrap_or(usize::MAX), k.clone()));
    keys
}

#[derive(Clone, Copy)]
enum Origin<'a> {
    /// Everything came from the template (`u'…'`).
    Template,
    /// SAM's own document: its constants are plain, paths, methods and URIs come from the
    /// template, and so do CORS header values but the ones SAM wrote (listed).
    Sam(&'a [String]),
}

/// `str(swagger)` as the translator computes it; `managed` when SAM generated the body.
pub(crate) fn swagger_repr(
    body: &Value,
    managed: bool,
    sam_strings: &[String],
    shadow: Option<&Shadow>,
) -> String {
    let mut out = String::new();
    let origin = if managed { Origin::Sam(sam_strings) } else { Origin::Template };
    write(body, origin, shadow, &[], &mut out);
    out
}

/// `str(BodyS3Location)`: SAM's keys, the template's values.
pub(crate) fn body_s3_repr(s3: &Map<String, Value>) -> String {
    let mut out = String::from("{");
    let keys = dict_order(&insertion_order(s3));
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&quote(k, false));
        out.push_str(": ");
        write(&s3[k], Origin::Template, None, &[], &mut out);
    }
    out.push('}');
    out
}

fn unicode(origin: Origin<'_>, path: &[&str], is_key: bool, key: &str) -> bool {
    match origin {
        Origin::Template => true,
        Origin::Sam(sam_strings) => {
            let parent = path.last().copied().unwrap_or("");
            let grandparent = if path.len() >= 2 { path[path.len() - 2] } else { "" };
            if is_key {
                // path names, and method names under a path (ANY is SAM's constant)
                parent == "paths" || (grandparent == "paths" && key != "x-amazon-apigateway-any-method")
            } else {
                // the integration URI of a function (not of an alias), the OpenApiVersion the
                // template gave, binary media types
                (parent == "Fn::Sub" && grandparent == "uri" && key.contains(".Arn}"))
                    || (parent == "openapi" && path.len() == 1)
                    || (parent.starts_with('[') && grandparent == "x-amazon-apigateway-binary-media-types")
                    || (grandparent == "responseParameters" && !sam_strings.iter().any(|s| s == key))
                    || (parent.starts_with('[') && grandparent == "cacheKeyParameters")
                    || (parent == "name" && path.len() >= 3 && path[path.len() - 3] == "parameters")
                    || (parent == "in"
                        && key != "query"
                        && path.len() >= 3
                        && path[path.len() - 3] == "parameters")
            }
        }
    }
}

fn write(value: &Value, origin: Origin<'_>, shadow: Option<&Shadow>, path: &[&str], out: &mut String) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                if f.fract() == 0.0 {
                    out.push_str(&format!("{f:.1}"));
                } else {
                    out.push_str(&format!("{f}"));
                }
            } else {
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => out.push_str(&quote(s, unicode(origin, path, false, s))),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let mut p = path.to_vec();
                p.push(INDEXES.get(i).copied().unwrap_or("[]"));
                write(item, origin, shadow, &p, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            let order = match shadow {
                Some(shadow) => shadow.order(path, map),
                None => dict_order(&insertion_order(map)),
            };
            for (i, key) in order.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                // SAM's CORS method is its own constant.
                let cors = key == "options" && map[key].get("summary") == Some(&Value::from("CORS support"));
                out.push_str(&quote(key, unicode(origin, path, true, key) && !cors));
                out.push_str(": ");
                let mut p = path.to_vec();
                p.push(key);
                write(&map[key], origin, shadow, &p, out);
            }
            out.push('}');
        }
    }
}

/// Python's `repr()` of a string (`u` prefixed for unicode strings).
fn quote(s: &str, unicode: bool) -> String {
    let body: String = if unicode {
        // repr(s.encode("unicode_escape").decode("ascii")) with "\\\\" → "\\"
        let escaped: String = s
            .chars()
            .map(|c| match c {
                '\\' => "\\\\".to_string(),
                '\n' => "\\n".to_string(),
                '\r' => "\\r".to_string(),
                '\t' => "\\t".to_string(),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => format!("\\x{:02x}", c as u32),
                c if (c as u32) > 0x7f && (c as u32) <= 0xff => format!("\\x{:02x}", c as u32),
                c if (c as u32) > 0xff && (c as u32) <= 0xffff => format!("\\u{:04x}", c as u32),
                c if (c as u32) > 0xffff => format!("\\U{:08x}", c as u32),
                c => c.to_string(),
            })
            .collect();
        python_repr(&escaped).replace("\\\\", "\\")
    } else {
        python_repr(s)
    };
    if unicode {
        format!("u{body}")
    } else {
        body
    }
}

/// Python 3's `repr()` of a str.
fn python_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::new();
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python27_orders_dicts_by_hash_slot() {
        let keys: Vec<String> = ["swagger", "info", "paths"].iter().map(|s| s.to_string()).collect();
        assert_eq!(dict_order(&keys), vec!["info", "paths", "swagger"]);
        let keys: Vec<String> = ["type", "httpMethod", "uri"].iter().map(|s| s.to_string()).collect();
        assert_eq!(dict_order(&keys), vec!["httpMethod", "type", "uri"]);
    }

    #[test]
    fn a_user_body_prints_as_unicode() {
        let body = json!({"swagger": "2.0", "info": {"title": "body"}, "paths": {"/ping": {"get": {"x-amazon-apigateway-integration": {"type": "mock"}}}}});
        assert_eq!(
            swagger_repr(&body, false, &[], None),
            "{u'info': {u'title': u'body'}, u'paths': {u'/ping': {u'get': {u'x-amazon-apigateway-integration': {u'type': u'mock'}}}}, u'swagger': u'2.0'}"
        );
    }
}
#[cfg(test)]
mod order_tests {
    use super::*;

    #[test]
    fn cors_method_keys_follow_python() {
        let keys: Vec<String> =
            ["summary", "consumes", "produces", "x-amazon-apigateway-integration", "responses"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        assert_eq!(
            dict_order(&keys),
            vec!["responses", "x-amazon-apigateway-integration", "produces", "consumes", "summary"]
        );
        let mut shadow = Shadow::new(
            &serde_json::json!({"m": {"summary": 1, "consumes": 1, "produces": 1, "x-amazon-apigateway-integration": 1, "responses": 1}}),
        );
        shadow.copy();
        let map = serde_json::json!({"summary": 1, "consumes": 1, "produces": 1, "x-amazon-apigateway-integration": 1, "responses": 1});
        assert_eq!(
            shadow.order(&["m"], map.as_object().unwrap()),
            vec!["x-amazon-apigateway-integration", "consumes", "summary", "responses", "produces"]
        );
    }
}
