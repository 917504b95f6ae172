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
    x ^= chars.len() as u64;
    if x == u64::MAX {
        x = u64::MAX - 1;
    }
    x
}

/// Keys in the order a Python 2.7 dict iterates them after inserting `keys` in order.
pub(crate) fn dict_order(keys: &[String]) -> Vec<String> {
    let mut table = Table::new();
    for k in keys {
        table.add(k);
    }
    // The translator deep-copies documents (re-inserting keys in iteration order) before it
    // prints them.
    let once = table.keys();
    let mut again = Table::new();
    for k in &once {
        again.add(k);
    }
    again.keys()
}

struct Table {
    slots: std::collections::BTreeMap<u64, String>,
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
        if self.slots.get(&i).is_none_or(|k| k == key) {
            return i;
        }
        let mut walker = i;
        let mut perturb = h;
        loop {
            walker = (walker << 2).wrapping_add(walker).wrapping_add(perturb).wrapping_add(1);
            i = walker & self.mask;
            match self.slots.get(&i) {
                None => return i,
                Some(k) if k == key => return i,
                _ => {}
            }
            perturb >>= 5;
        }
    }

    fn add(&mut self, key: &str) {
        let start = self.size;
        let i = self.index(key);
        if let std::collections::btree_map::Entry::Vacant(e) = self.slots.entry(i) {
            e.insert(key.to_string());
            self.size += 1;
            self.fill += 1;
        }
        if self.size > start && self.fill * 3 >= ((self.mask + 1) * 2) as usize {
            self.resize(self.size * if self.size > 50_000 { 2 } else { 4 });
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
        for key in old.into_values() {
            self.add(&key);
        }
    }

    fn keys(&self) -> Vec<String> {
        self.slots.values().cloned().collect()
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
        "x-amazon-apigateway-integration",
        "type",
        "httpMethod",
        "uri",
        "responseTransferMode",
        "credentials",
        "responses",
        "timeoutInMillis",
        "Bucket",
        "Key",
        "Version",
    ];
    let mut keys: Vec<String> = map.keys().cloned().collect();
    keys.sort_by_key(|k| (SAM_ORDER.iter().position(|s| s == k).unwrap_or(usize::MAX), k.clone()));
    keys
}

#[derive(Clone, Copy)]
enum Origin {
    /// Everything came from the template (`u'…'`).
    Template,
    /// SAM's own document: its constants are plain, paths, methods and URIs come from the template.
    Sam,
}

/// `str(swagger)` as the translator computes it; `managed` when SAM generated the body.
pub(crate) fn swagger_repr(body: &Value, managed: bool) -> String {
    let mut out = String::new();
    let origin = if managed { Origin::Sam } else { Origin::Template };
    write(body, origin, &[], &mut out);
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
        write(&s3[k], Origin::Template, &[], &mut out);
    }
    out.push('}');
    out
}

fn unicode(origin: Origin, path: &[&str], is_key: bool, key: &str) -> bool {
    match origin {
        Origin::Template => true,
        Origin::Sam => {
            let parent = path.last().copied().unwrap_or("");
            let grandparent = if path.len() >= 2 { path[path.len() - 2] } else { "" };
            if is_key {
                // path names, and method names under a path (ANY is SAM's constant)
                parent == "paths" || (grandparent == "paths" && key != "x-amazon-apigateway-any-method")
            } else {
                parent == "Fn::Sub" && grandparent == "uri"
            }
        }
    }
}

fn write(value: &Value, origin: Origin, path: &[&str], out: &mut String) {
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
                p.push("[]");
                write(item, origin, &p, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, key) in dict_order(&insertion_order(map)).iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&quote(key, unicode(origin, path, true, key)));
                out.push_str(": ");
                let mut p = path.to_vec();
                p.push(key);
                write(&map[key], origin, &p, out);
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
            swagger_repr(&body, false),
            "{u'info': {u'title': u'body'}, u'paths': {u'/ping': {u'get': {u'x-amazon-apigateway-integration': {u'type': u'mock'}}}}, u'swagger': u'2.0'}"
        );
    }
}
