//! Python 2.7's dict: its string hash, its open-addressing table (whose slot order is the
//! iteration order), and a shadow of a whole document's dicts that follows the edits and deep
//! copies the translator makes.

use serde_json::{Map, Value};

use super::insertion_order;

/// Python 2.7's string hash (64-bit).
pub(super) fn string_hash(s: &str) -> u64 {
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
pub(super) const INDEXES: &[&str] = &["[0]", "[1]", "[2]", "[3]", "[4]", "[5]", "[6]", "[7]", "[8]", "[9]"];

/// Every dict of a document SAM edits, as Python 2.7 tables, so their iteration order follows
/// the edits the translator makes: insertions, deletions, and the deep copies its editors make
/// (each copy re-inserts a dict's keys in iteration order, which can reorder colliding keys).
/// How a dict's keys were inserted, by its path in the document.
pub(crate) type KeyOrderFn<'a> = dyn Fn(&[String], &Map<String, Value>) -> Vec<String> + 'a;

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

    /// `set`, the new value's dicts written in the order `order` gives.
    pub(crate) fn set_ordered(&mut self, path: &[&str], key: &str, value: &Value, order: &KeyOrderFn<'_>) {
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        self.tables.entry(path.clone()).or_insert_with(Table::new).add(key);
        let mut child = path;
        child.push(key.to_string());
        self.drop_under(&child);
        self.register_with(&child, value, order);
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

    /// `doc[parent][key] = doc[from]; del doc[from]` for a root key `from`: its dicts keep
    /// their tables under the new place.
    pub(crate) fn move_under(&mut self, from: &str, parent: &str, key: &str) {
        self.tables.entry(vec![parent.to_string()]).or_insert_with(Table::new).add(key);
        let target = vec![parent.to_string(), key.to_string()];
        self.drop_under(&target);
        let moved: Vec<Vec<String>> =
            self.tables.keys().filter(|p| p.first().map(String::as_str) == Some(from)).cloned().collect();
        for old in moved {
            if let Some(table) = self.tables.remove(&old) {
                let mut new = target.clone();
                new.extend(old[1..].iter().cloned());
                self.tables.insert(new, table);
            }
        }
        if let Some(root) = self.tables.get_mut(&Vec::<String>::new()) {
            root.add(parent);
            root.remove(from);
        }
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

    pub(super) fn order(&self, path: &[&str], map: &Map<String, Value>) -> Vec<String> {
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

/// A change to a Python 2.7 dict's keys.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    Add(String),
    Remove(String),
    /// `dict.update(other)` with `n` keys, all already present: it may still grow the table.
    Merge(usize),
}

/// The iteration order of a dict after `ops`.
pub(crate) fn table_order(ops: &[Op]) -> Vec<String> {
    let mut table = Table::new();
    for op in ops {
        match op {
            Op::Add(k) => table.add(k),
            Op::Remove(k) => table.remove(k),
            Op::Merge(n) => table.merge(*n),
        }
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

    fn merge(&mut self, n: usize) {
        if n > 0 && (self.fill + n) * 3 >= ((self.mask + 1) * 2) as usize {
            self.resize((self.size + n) * 2);
        }
    }

    fn contains(&self, key: &str) -> bool {
        self.slots.values().any(|k| k.as_deref() == Some(key))
    }

    fn keys(&self) -> Vec<String> {
        self.slots.values().flatten().cloned().collect()
    }
}
