//! A table's definition as kept in the database (one JSON document per table), its keys, and
//! how an item's keys become the ordered bytes that rows are stored and sorted by.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{invalid, key_mismatch, validation, Result};
use crate::value::{Av, Item};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyAttr {
    pub name: String,
    /// `S`, `N` or `B`.
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Index {
    pub name: String,
    pub global: bool,
    pub hash: KeyAttr,
    pub range: Option<KeyAttr>,
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection: String,
    pub non_key: Vec<String>,
    pub read_units: i64,
    pub write_units: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stream {
    pub arn: String,
    pub label: String,
    pub view_type: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Table {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub created: f64,
    pub hash: KeyAttr,
    pub range: Option<KeyAttr>,
    pub attributes: Vec<KeyAttr>,
    pub billing: String,
    pub read_units: i64,
    pub write_units: i64,
    pub indexes: Vec<Index>,
    /// The stream being written, when enabled.
    pub stream: Option<Stream>,
    /// The most recent stream, enabled or not (DescribeTable shows it).
    pub latest_stream: Option<Stream>,
    pub ttl_attribute: Option<String>,
    pub tags: Vec<(String, String)>,
    pub deletion_protection: bool,
    pub table_class: String,
    /// Point-in-time recovery as `UpdateContinuousBackups` set it (recorded, not acted on).
    #[serde(default)]
    pub point_in_time_recovery: bool,
}

/// An item's primary key as stored: the hash key's bytes and the range key's (empty without).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowKey {
    pub pk: Vec<u8>,
    pub sk: Vec<u8>,
}

impl Table {
    pub fn key_attrs(&self) -> impl Iterator<Item = &KeyAttr> {
        std::iter::once(&self.hash).chain(self.range.as_ref())
    }

    pub fn index(&self, name: &str) -> Option<&Index> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// The key of a full item (PutItem): every key attribute present with its type.
    pub fn item_key(&self, item: &Item) -> Result<RowKey> {
        for attr in self.key_attrs() {
            match item.get(&attr.name) {
                None => return Err(invalid(format!("Missing the key {} in the item", attr.name))),
                Some(value) => {
                    check_key_value(attr, value, None)?;
                    check_key_size(value, self.range.as_ref() == Some(attr))?;
                }
            }
        }
        for index in &self.indexes {
            for attr in std::iter::once(&index.hash).chain(index.range.as_ref()) {
                if let Some(value) = item.get(&attr.name) {
                    check_key_value(attr, value, Some(&index.name))?;
                }
            }
        }
        Ok(self.row_key(item))
    }

    /// The key given as `Key` (GetItem, DeleteItem, UpdateItem): exactly the key attributes.
    pub fn key_of(&self, key: &Item) -> Result<RowKey> {
        if key.len() != self.key_attrs().count() {
            return Err(key_mismatch());
        }
        for attr in self.key_attrs() {
            let value = key.get(&attr.name).ok_or_else(key_mismatch)?;
            if value.type_name() != attr.kind {
                return Err(key_mismatch());
            }
            check_key_value(attr, value, None)?;
            check_key_size(value, self.range.as_ref() == Some(attr))?;
        }
        Ok(self.row_key(key))
    }

    pub fn row_key(&self, item: &Item) -> RowKey {
        let bytes = |attr: &KeyAttr| item.get(&attr.name).map(Av::key_bytes).unwrap_or_default();
        RowKey { pk: bytes(&self.hash), sk: self.range.as_ref().map(bytes).unwrap_or_default() }
    }

    /// Just the key attributes of `item`.
    pub fn key_item(&self, item: &Item) -> Item {
        self.key_attrs().filter_map(|a| item.get(&a.name).map(|v| (a.name.clone(), v.clone()))).collect()
    }

    /// An index's key of `item`, None when the item lacks one of its key attributes (sparse).
    pub fn index_key(&self, index: &Index, item: &Item) -> Option<RowKey> {
        let pk = item.get(&index.hash.name)?.key_bytes();
        let sk = match &index.range {
            Some(range) => item.get(&range.name)?.key_bytes(),
            None => Vec::new(),
        };
        Some(RowKey { pk, sk })
    }

    /// What an index returns of an item: its projection.
    pub fn project_for(&self, index: &Index, item: &Item) -> Item {
        match index.projection.as_str() {
            "ALL" => item.clone(),
            _ => item
                .iter()
                .filter(|(name, _)| {
                    self.key_attrs().any(|a| &a.name == *name)
                        || index.hash.name == **name
                        || index.range.as_ref().is_some_and(|r| r.name == **name)
                        || index.non_key.contains(name)
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    pub fn describe(&self, item_count: i64, size: i64) -> Value {
        let key_schema = |hash: &KeyAttr, range: Option<&KeyAttr>| {
            let mut keys = vec![json!({"AttributeName": hash.name, "KeyType": "HASH"})];
            if let Some(range) = range {
                keys.push(json!({"AttributeName": range.name, "KeyType": "RANGE"}));
            }
            keys
        };
        let throughput = |read: i64, write: i64| json!({"NumberOfDecreasesToday": 0, "ReadCapacityUnits": read, "WriteCapacityUnits": write});
        let mut table = json!({
            "TableName": self.name,
            "TableId": self.id,
            "TableArn": self.arn,
            "TableStatus": "ACTIVE",
            "CreationDateTime": self.created,
            "AttributeDefinitions": self.attributes.iter()
                .map(|a| json!({"AttributeName": a.name, "AttributeType": a.kind})).collect::<Vec<_>>(),
            "KeySchema": key_schema(&self.hash, self.range.as_ref()),
            "ProvisionedThroughput": throughput(self.read_units, self.write_units),
            "ItemCount": item_count,
            "TableSizeBytes": size,
            "DeletionProtectionEnabled": self.deletion_protection,
        });
        if self.billing == "PAY_PER_REQUEST" {
            table["BillingModeSummary"] =
                json!({"BillingMode": "PAY_PER_REQUEST", "LastUpdateToPayPerRequestDateTime": self.created});
        }
        if self.table_class != "STANDARD" {
            table["TableClassSummary"] = json!({"TableClass": self.table_class});
        }
        let index_json = |index: &Index| {
            let mut projection = json!({"ProjectionType": index.projection});
            if !index.non_key.is_empty() {
                projection["NonKeyAttributes"] = json!(index.non_key);
            }
            let mut out = json!({
                "IndexName": index.name,
                "KeySchema": key_schema(&index.hash, index.range.as_ref()),
                "Projection": projection,
                "IndexSizeBytes": 0,
                "ItemCount": 0,
                "IndexArn": format!("{}/index/{}", self.arn, index.name),
            });
            if index.global {
                out["IndexStatus"] = json!("ACTIVE");
                out["ProvisionedThroughput"] = throughput(index.read_units, index.write_units);
            }
            out
        };
        let gsis: Vec<Value> = self.indexes.iter().filter(|i| i.global).map(index_json).collect();
        let lsis: Vec<Value> = self.indexes.iter().filter(|i| !i.global).map(index_json).collect();
        if !gsis.is_empty() {
            table["GlobalSecondaryIndexes"] = json!(gsis);
        }
        if !lsis.is_empty() {
            table["LocalSecondaryIndexes"] = json!(lsis);
        }
        if let Some(stream) = &self.latest_stream {
            table["LatestStreamArn"] = json!(stream.arn);
            table["LatestStreamLabel"] = json!(stream.label);
        }
        if let Some(stream) = &self.stream {
            table["StreamSpecification"] = json!({"StreamEnabled": true, "StreamViewType": stream.view_type});
        }
        table
    }
}

fn check_key_value(attr: &KeyAttr, value: &Av, index: Option<&str>) -> Result<()> {
    if value.type_name() != attr.kind {
        return Err(match index {
            None => invalid(format!(
                "Type mismatch for key {} expected: {} actual: {}",
                attr.name,
                attr.kind,
                value.type_name()
            )),
            Some(index) => invalid(format!(
                "Type mismatch for Index Key {} Expected: {} Actual: {} IndexName: {index}",
                attr.name,
                attr.kind,
                value.type_name()
            )),
        });
    }
    let empty = match value {
        Av::S(s) => s.is_empty(),
        Av::B(b) => b.is_empty(),
        _ => false,
    };
    if empty {
        return Err(match index {
            None => validation(format!(
                "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty {} value. Key: {}",
                if attr.kind == "S" { "string" } else { "binary" },
                attr.name
            )),
            Some(index) => validation(format!(
                "One or more parameter values are not valid. A value specified for a secondary index key is not supported. The AttributeValue for a key attribute cannot contain an empty string value. IndexName: {index}, IndexKey: {}",
                attr.name
            )),
        });
    }
    Ok(())
}

/// AWS's limits on key sizes: 2048 bytes for a partition key, 1024 for a sort key.
fn check_key_size(value: &Av, range: bool) -> Result<()> {
    if !range && value.size() > 2048 {
        return Err(invalid("Size of hashkey has exceeded the maximum size limit of2048 bytes"));
    }
    if range && value.size() > 1024 {
        return Err(invalid("Aggregated size of all range keys has exceeded the size limit of 1024 bytes"));
    }
    Ok(())
}
