//! The order of keys in the template's source. A template arrives as JSON maps, which forget
//! it, but the translator's output depends on it in places: resources and events are processed in
//! template order, and REST API deployment ids hash Python 2.7 dicts whose iteration order depends
//! on insertion order. A caller that parsed the template with an order-preserving parser can give
//! the order of every mapping here; without it, keys are taken in sorted order (the output is the
//! same except, at times, a REST API deployment's logical id).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Keys of each mapping of the template in source order, by path from the template's root
/// (`["Resources", "Fn", "Properties", "Events"]`).
#[derive(Clone, Debug, Default)]
pub struct SourceOrder {
    maps: BTreeMap<Vec<String>, Vec<String>>,
}

impl SourceOrder {
    pub fn new() -> SourceOrder {
        SourceOrder::default()
    }

    /// Records the keys of the mapping at `path`, in source order.
    pub fn insert(&mut self, path: Vec<String>, keys: Vec<String>) {
        self.maps.insert(path, keys);
    }

    /// Records every mapping of `value` (a JSON value whose maps keep source order, such as one
    /// read with serde_json's `preserve_order` or converted from an ordered YAML mapping).
    pub fn record(&mut self, path: &[String], value: &Value) {
        match value {
            Value::Object(map) => {
                self.maps.insert(path.to_vec(), map.keys().cloned().collect());
                for (k, v) in map {
                    let mut p = path.to_vec();
                    p.push(k.clone());
                    self.record(&p, v);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    let mut p = path.to_vec();
                    p.push(format!("[{i}]"));
                    self.record(&p, v);
                }
            }
            _ => {}
        }
    }

    /// The keys of `map` (found at `path`) in source order; keys the source did not list
    /// follow, sorted.
    pub(crate) fn keys(&self, path: &[&str], map: &Map<String, Value>) -> Vec<String> {
        let p: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        let mut keys: Vec<String> = self
            .maps
            .get(&p)
            .map(|known| known.iter().filter(|k| map.contains_key(*k)).cloned().collect())
            .unwrap_or_default();
        for k in map.keys() {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
        keys
    }
}
