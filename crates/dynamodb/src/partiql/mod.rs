//! `ExecuteStatement` and `BatchExecuteStatement`: PartiQL statements on one table each, run
//! through the same storage, conditions and updates as the item operations.

mod lex;
mod parse;

use base64::Engine;
use serde_json::{json, Value};

use crate::error::{condition_failed, missing, validation, DdbError, Result};
use crate::expr::{apply_update, eval, Cmp, Cond, Elem, Operand};
use crate::input::{check_limit, Input};
use crate::ops::items::{check_size, check_update_keys};
use crate::ops::reads::Request;
use crate::ops::table_for_items;
use crate::store::{lock_item, read_item, write_item, Actor};
use crate::table::Table;
use crate::value::{parse_item, Av, Item};
use crate::DynamoDb;
use nimbus_store::Tx;
use parse::{Parser, Statement};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// `name = value` terms of the WHERE clause's top-level AND.
fn equalities(cond: &Cond, out: &mut Vec<(String, Av)>) {
    match cond {
        Cond::And(a, b) => {
            equalities(a, out);
            equalities(b, out);
        }
        Cond::Cmp(Operand::Path(p), Cmp::Eq, Operand::Value(v))
        | Cond::Cmp(Operand::Value(v), Cmp::Eq, Operand::Path(p)) => {
            if let [Elem::Name(name)] = p.as_slice() {
                out.push((name.clone(), v.clone()));
            }
        }
        _ => {}
    }
}

fn key_from_where(table: &Table, cond: &Cond) -> Result<Item> {
    let mut terms = Vec::new();
    equalities(cond, &mut terms);
    let mut key = Item::new();
    for attr in table.key_attrs() {
        let value = terms.iter().find(|(n, _)| *n == attr.name).map(|(_, v)| v.clone()).ok_or_else(|| {
            validation("Where clause does not contain a mandatory equality on all key attributes")
        })?;
        key.insert(attr.name.clone(), value);
    }
    Ok(key)
}

fn parameters(input: &Input) -> Result<Vec<Av>> {
    input.array("Parameters")?.map_or(Ok(Vec::new()), |list| list.iter().map(Av::parse).collect())
}

/// An INSERT, UPDATE or DELETE inside the caller's transaction; true when it wrote a stream
/// record.
fn write_statement(tx: &mut Tx<'_>, statement: &Statement, region: &str) -> Result<bool> {
    match statement {
        Statement::Select { .. } => Ok(false),
        Statement::Insert { table, item } => {
            check_size(item)?;
            let t = table_for_items(tx, table)?;
            let key = t.item_key(item)?;
            lock_item(tx, &t, &key)?;
            if read_item(tx, &t, &key)?.is_some() {
                return Err(DdbError::new(
                    400,
                    "DuplicateItemException",
                    "Duplicate primary key exists in table",
                ));
            }
            write_item(tx, &t, &key, None, Some(item), Actor::User, region)
        }
        Statement::Update { table, update, filter } => {
            let t = table_for_items(tx, table)?;
            let key = key_from_where(&t, filter)?;
            let row_key = t.key_of(&key)?;
            check_update_keys(&t, update)?;
            lock_item(tx, &t, &row_key)?;
            let old = read_item(tx, &t, &row_key)?;
            let Some(old) = old.filter(|old| eval(filter, old)) else {
                return Err(condition_failed());
            };
            let new = apply_update(&old, update)?;
            check_size(&new)?;
            t.item_key(&new)?;
            write_item(tx, &t, &row_key, Some(&old), Some(&new), Actor::User, region)
        }
        Statement::Delete { table, filter } => {
            let t = table_for_items(tx, table)?;
            let key = key_from_where(&t, filter)?;
            let row_key = t.key_of(&key)?;
            lock_item(tx, &t, &row_key)?;
            let Some(old) = read_item(tx, &t, &row_key)? else { return Ok(false) };
            if !eval(filter, &old) {
                return Err(condition_failed());
            }
            write_item(tx, &t, &row_key, Some(&old), None, Actor::User, region)
        }
    }
}

fn table_of(statement: &Statement) -> &str {
    match statement {
        Statement::Select { table, .. }
        | Statement::Insert { table, .. }
        | Statement::Update { table, .. }
        | Statement::Delete { table, .. } => table,
    }
}

impl DynamoDb {
    /// `ExecuteTransaction`: reads (SELECTs naming whole keys) or writes, all or nothing.
    pub(crate) fn execute_transaction(&self, input: &Input) -> Result<Value> {
        let entries = input.array("TransactStatements")?.ok_or_else(|| missing("transactStatements"))?;
        if entries.is_empty() || entries.len() > 100 {
            return Err(validation("1 validation error detected: Value at 'transactStatements' failed to satisfy constraint: Member must have length less than or equal to 100"));
        }
        let mut statements = Vec::new();
        for entry in entries {
            let entry = Input::from_value(entry);
            let params = parameters(&entry)?;
            statements.push(Parser::parse(entry.required_str("Statement")?, &params)?);
        }
        let reads = statements.iter().filter(|s| matches!(s, Statement::Select { .. })).count();
        if reads != 0 && reads != statements.len() {
            return Err(validation("Transaction can only contain read or write statements, not both"));
        }
        if reads > 0 {
            let mut responses = Vec::new();
            for statement in statements {
                let out = self.run_statement(statement, None, None)?;
                responses.push(match out["Items"].as_array().and_then(|items| items.first()) {
                    Some(item) => json!({ "Item": item }),
                    None => json!({}),
                });
            }
            return Ok(json!({ "Responses": responses }));
        }
        let region = self.region().to_owned();
        let streamed = self.db.write(|tx| {
            let mut streamed = false;
            for (i, statement) in statements.iter().enumerate() {
                match write_statement(tx, statement, &region) {
                    Ok(s) => streamed |= s,
                    Err(error) if matches!(error.code, "ConditionalCheckFailedException" | "DuplicateItemException") => {
                        let code = if error.code == "DuplicateItemException" { "DuplicateItem" } else { "ConditionalCheckFailed" };
                        let reasons: Vec<Value> = (0..statements.len())
                            .map(|j| match j == i {
                                true => json!({"Code": code, "Message": error.message}),
                                false => json!({"Code": "None"}),
                            })
                            .collect();
                        let codes: Vec<&str> = reasons.iter().map(|r| r["Code"].as_str().unwrap_or("None")).collect();
                        return Err(DdbError::new(
                            400,
                            "TransactionCanceledException",
                            format!("Transaction cancelled, please refer cancellation reasons for specific reasons [{}]", codes.join(", ")),
                        )
                        .with("CancellationReasons", Value::Array(reasons)));
                    }
                    Err(error) => return Err(error),
                }
            }
            Ok(streamed)
        })?;
        if streamed {
            self.streams_written();
        }
        Ok(json!({}))
    }

    pub(crate) fn execute_statement(&self, input: &Input) -> Result<Value> {
        let text = input.required_str("Statement")?;
        let params = parameters(input)?;
        let statement = Parser::parse(text, &params)?;
        let limit = check_limit(input.int("Limit")?)?;
        let start = input
            .str("NextToken")?
            .map(|token| {
                let bytes = B64.decode(token).map_err(|_| validation("Invalid NextToken"))?;
                let value: Value =
                    serde_json::from_slice(&bytes).map_err(|_| validation("Invalid NextToken"))?;
                parse_item(Some(&value), "nextToken")
            })
            .transpose()?;
        self.run_statement(statement, limit, start)
    }

    fn run_statement(
        &self,
        statement: Statement,
        limit: Option<usize>,
        start: Option<Item>,
    ) -> Result<Value> {
        let region = self.region().to_owned();
        let (streamed, out) = match statement {
            Statement::Select { table, index, projection, filter } => {
                let hash = self.db.read(|tx| {
                    let t = table_for_items(tx, &table)?;
                    let hash = match &index {
                        Some(name) => t.index(name).map(|i| i.hash.name.clone()),
                        None => Some(t.hash.name.clone()),
                    };
                    Ok::<_, DdbError>(hash)
                })?;
                let mut terms = Vec::new();
                if let Some(filter) = &filter {
                    equalities(filter, &mut terms);
                }
                let pk = hash.and_then(|h| terms.into_iter().find(|(n, _)| *n == h).map(|(_, v)| v));
                let request = Request {
                    table_name: table,
                    index_name: index,
                    filter,
                    projection,
                    count_only: false,
                    all_attributes: false,
                    limit,
                    start,
                };
                let page = self.select(&request, pk.as_ref())?;
                let mut out = json!({ "Items": page["Items"] });
                if let Some(last) = page.get("LastEvaluatedKey") {
                    out["NextToken"] = json!(B64.encode(last.to_string()));
                    out["LastEvaluatedKey"] = last.clone();
                }
                (false, out)
            }
            write => {
                let streamed = self.db.write(|tx| write_statement(tx, &write, &region))?;
                (streamed, json!({ "Items": [] }))
            }
        };
        if streamed {
            self.streams_written();
        }
        Ok(out)
    }

    pub(crate) fn batch_execute_statement(&self, input: &Input) -> Result<Value> {
        let statements = input.array("Statements")?.ok_or_else(|| missing("statements"))?;
        if statements.is_empty() || statements.len() > 25 {
            return Err(validation("1 validation error detected: Value at 'statements' failed to satisfy constraint: Member must have length less than or equal to 25"));
        }
        let mut responses = Vec::new();
        for entry in statements {
            let entry = Input::from_value(entry);
            let outcome = (|| {
                let text = entry.required_str("Statement")?;
                let params = parameters(&entry)?;
                let statement = Parser::parse(text, &params)?;
                let table = table_of(&statement).to_owned();
                if let Statement::Select { filter, .. } = &statement {
                    let hash_and_key = self.db.read(|tx| {
                        let t = table_for_items(tx, &table)?;
                        filter.as_ref().map(|f| key_from_where(&t, f)).transpose()
                    });
                    if !matches!(hash_and_key, Ok(Some(_))) {
                        return Err(validation(
                            "Batch read statements must specify an equality on all key attributes",
                        ));
                    }
                }
                let out = self.run_statement(statement, None, None)?;
                Ok::<_, DdbError>((table, out))
            })();
            responses.push(match outcome {
                Ok((table, out)) => {
                    let mut response = json!({ "TableName": table });
                    if let Some(item) = out["Items"].as_array().and_then(|items| items.first()) {
                        response["Item"] = item.clone();
                    }
                    response
                }
                Err(error) => {
                    let code = match error.code {
                        "ConditionalCheckFailedException" => "ConditionalCheckFailed",
                        "DuplicateItemException" => "DuplicateItem",
                        "ResourceNotFoundException" => "ResourceNotFound",
                        "ValidationException" => "ValidationError",
                        _ => "InternalServerError",
                    };
                    json!({ "Error": { "Code": code, "Message": error.message } })
                }
            });
        }
        Ok(json!({ "Responses": responses }))
    }
}
