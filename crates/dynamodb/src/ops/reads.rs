//! Query and Scan, on a table or one of its indexes: key conditions become range scans over the
//! ordered key bytes, pages stop at `Limit` items evaluated or 1 MB read, as on AWS.

use nimbus_store::{Tx, Value as Sql};
use serde_json::{json, Value};

use crate::error::{validation, DdbError, Result};
use crate::expr::{eval, project, Cmp, Cond, Ctx, Elem, Operand, Path};
use crate::input::{check_limit, Input};
use crate::ops::items::{consumed, projection_of};
use crate::ops::table_for_items;
use crate::table::{Index, KeyAttr, Table};
use crate::value::{item_json, parse_item, stored_item, Av, Item};
use crate::DynamoDb;

const PAGE_BYTES: usize = 1024 * 1024;
const CHUNK: usize = 256;

/// A range condition on the sort key, as bytes.
enum Range {
    Cmp(Cmp, Vec<u8>),
    Between(Vec<u8>, Vec<u8>),
    Prefix(Vec<u8>),
}

struct Plan<'t> {
    table: &'t Table,
    index: Option<&'t Index>,
    pk: Option<Vec<u8>>,
    range: Option<Range>,
    forward: bool,
    /// The row to start after: (sk[, tpk, tsk]) for queries, (seg, pk, sk[, tpk, tsk]) for scans.
    start: Option<Vec<Sql>>,
    segment: Option<(i64, i64)>,
}

fn conjuncts(cond: Cond, out: &mut Vec<Cond>) {
    match cond {
        Cond::And(a, b) => {
            conjuncts(*a, out);
            conjuncts(*b, out);
        }
        other => out.push(other),
    }
}

fn path_name(path: &Path) -> Option<&str> {
    match path.as_slice() {
        [Elem::Name(n)] => Some(n),
        _ => None,
    }
}

/// The hash key value and the range condition of a key condition.
fn key_condition(
    cond: Cond,
    hash: &KeyAttr,
    range: Option<&KeyAttr>,
    table: &Table,
) -> Result<(Vec<u8>, Option<Range>)> {
    let unsupported = || validation("Query key condition not supported");
    let mut parts = Vec::new();
    conjuncts(cond, &mut parts);
    let mut pk = None;
    let mut sk = None;
    for part in parts {
        let named = |op: &Operand| match op {
            Operand::Path(p) => path_name(p).map(str::to_owned),
            _ => None,
        };
        match part {
            Cond::Cmp(left, cmp, right) => {
                let (attr_op, value_op, cmp) = match (&left, &right) {
                    (Operand::Path(_), Operand::Value(_)) => (&left, &right, cmp),
                    (Operand::Value(_), Operand::Path(_)) => (&right, &left, flip(cmp)),
                    _ => return Err(unsupported()),
                };
                let name = named(attr_op).ok_or_else(unsupported)?;
                let Operand::Value(value) = value_op else { return Err(unsupported()) };
                if name == hash.name {
                    if cmp != Cmp::Eq {
                        return Err(unsupported());
                    }
                    check_type(hash, value)?;
                    pk = Some(value.key_bytes());
                } else if range.is_some_and(|r| r.name == name) {
                    if cmp == Cmp::Ne {
                        return Err(unsupported());
                    }
                    check_type(range.unwrap_or(hash), value)?;
                    if sk.is_some() {
                        return Err(unsupported());
                    }
                    sk = Some(Range::Cmp(cmp, value.key_bytes()));
                } else {
                    return Err(validation(format!(
                        "Query condition missed key schema element: {}",
                        range.map_or(&hash.name, |r| &r.name)
                    )));
                }
            }
            Cond::Between(x, low, high) => {
                let name = named(&x).ok_or_else(unsupported)?;
                let (Operand::Value(l), Operand::Value(h)) = (&low, &high) else { return Err(unsupported()) };
                let Some(r) = range.filter(|r| r.name == name) else { return Err(unsupported()) };
                check_type(r, l)?;
                check_type(r, h)?;
                sk = Some(Range::Between(l.key_bytes(), h.key_bytes()));
            }
            Cond::BeginsWith(x, prefix) => {
                let name = named(&x).ok_or_else(unsupported)?;
                let Operand::Value(p) = &prefix else { return Err(unsupported()) };
                let Some(r) = range.filter(|r| r.name == name) else { return Err(unsupported()) };
                if r.kind == "N" {
                    return Err(validation("Invalid KeyConditionExpression: Incorrect operand type for operator or function; operator or function: begins_with, operand type: N"));
                }
                check_type(r, p)?;
                sk = Some(Range::Prefix(p.key_bytes()));
            }
            _ => return Err(unsupported()),
        }
    }
    let _ = table;
    let pk =
        pk.ok_or_else(|| validation(format!("Query condition missed key schema element: {}", hash.name)))?;
    Ok((pk, sk))
}

fn check_type(attr: &KeyAttr, value: &Av) -> Result<()> {
    if value.type_name() != attr.kind {
        return Err(validation(
            "One or more parameter values were invalid: Condition parameter type does not match schema type",
        ));
    }
    Ok(())
}

fn flip(cmp: Cmp) -> Cmp {
    match cmp {
        Cmp::Lt => Cmp::Gt,
        Cmp::Le => Cmp::Ge,
        Cmp::Gt => Cmp::Lt,
        Cmp::Ge => Cmp::Le,
        other => other,
    }
}

/// The smallest byte string greater than every string starting with `prefix`.
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < 0xFF {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

/// One row read: the item, its stored size, and the row key (for LastEvaluatedKey).
struct Row {
    item: Item,
    size: usize,
    cursor: Vec<Sql>,
}

/// Scans run in hash-segment order (as AWS's run in hash order), so a segment of a parallel
/// scan is a range of the `(tid, seg, pk, sk)` index.
fn fetch(tx: &mut Tx<'_>, plan: &Plan<'_>, after: Option<&Vec<Sql>>, limit: usize) -> Result<Vec<Row>> {
    let mut sql;
    let mut args: Vec<Sql> = vec![Sql::Text(plan.table.id.clone())];
    let (sk_col, cursor_cols): (&str, Vec<&str>);
    match plan.index {
        None => {
            sql = String::from("SELECT i.item, i.size, i.seg, i.pk, i.sk FROM ddb_items i WHERE i.tid = ?1");
            sk_col = "i.sk";
            cursor_cols = if plan.pk.is_some() { vec!["i.sk"] } else { vec!["i.seg", "i.pk", "i.sk"] };
        }
        Some(index) => {
            sql = String::from(
                "SELECT i.item, i.size, x.seg, x.pk, x.sk, x.tpk, x.tsk FROM ddb_index_items x JOIN ddb_items i
                 ON i.tid = x.tid AND i.pk = x.tpk AND i.sk = x.tsk WHERE x.tid = ?1 AND x.idx = ?2",
            );
            args.push(Sql::Text(index.name.clone()));
            sk_col = "x.sk";
            cursor_cols = if plan.pk.is_some() {
                vec!["x.sk", "x.tpk", "x.tsk"]
            } else {
                vec!["x.seg", "x.pk", "x.sk", "x.tpk", "x.tsk"]
            };
        }
    }
    let prefix = if plan.index.is_some() { "x" } else { "i" };
    let mut push = |sql: &mut String, text: &str, value: Sql| {
        args.push(value);
        sql.push_str(&text.replace('$', &format!("?{}", args.len())));
    };
    if let Some(pk) = &plan.pk {
        push(&mut sql, &format!(" AND {prefix}.pk = $"), Sql::Blob(pk.clone()));
    }
    match &plan.range {
        Some(Range::Cmp(cmp, v)) => {
            let op = match cmp {
                Cmp::Eq => "=",
                Cmp::Lt => "<",
                Cmp::Le => "<=",
                Cmp::Gt => ">",
                Cmp::Ge => ">=",
                Cmp::Ne => "<>",
            };
            push(&mut sql, &format!(" AND {sk_col} {op} $"), Sql::Blob(v.clone()));
        }
        Some(Range::Between(l, h)) => {
            push(&mut sql, &format!(" AND {sk_col} >= $"), Sql::Blob(l.clone()));
            push(&mut sql, &format!(" AND {sk_col} <= $"), Sql::Blob(h.clone()));
        }
        Some(Range::Prefix(p)) => {
            push(&mut sql, &format!(" AND {sk_col} >= $"), Sql::Blob(p.clone()));
            if let Some(next) = successor(p) {
                push(&mut sql, &format!(" AND {sk_col} < $"), Sql::Blob(next));
            }
        }
        None => {}
    }
    if let Some((low, high)) = plan.segment {
        // After a cursor (which lies in the segment) the cursor is the seek; both would make
        // SQLite seek to the segment's start and skip every page read before.
        if after.is_none() {
            push(&mut sql, &format!(" AND {prefix}.seg >= $"), Sql::Int(low));
        }
        push(&mut sql, &format!(" AND {prefix}.seg < $"), Sql::Int(high));
    }
    let dir = if plan.forward { "ASC" } else { "DESC" };
    if let Some(after) = after {
        let cmp = if plan.forward { ">" } else { "<" };
        let mut holes = Vec::new();
        for value in after {
            args.push(value.clone());
            holes.push(format!("?{}", args.len()));
        }
        sql.push_str(&format!(" AND ({}) {cmp} ({})", cursor_cols.join(", "), holes.join(", ")));
    }
    let order: Vec<String> = cursor_cols.iter().map(|c| format!("{c} {dir}")).collect();
    sql.push_str(&format!(" ORDER BY {} LIMIT {limit}", order.join(", ")));
    let rows = tx.query(&sql, &args)?;
    rows.into_iter()
        .map(|row| {
            let item = stored_item(&row.get::<String>(0)?);
            let size = row.get::<i64>(1)? as usize;
            // seg, pk, sk[, tpk, tsk]: a query's cursor starts after its fixed partition key.
            let cursor = if plan.pk.is_some() { row.0[4..].to_vec() } else { row.0[2..].to_vec() };
            Ok(Row { item, size, cursor })
        })
        .collect()
}

pub(crate) struct Request {
    pub table_name: String,
    pub index_name: Option<String>,
    pub filter: Option<Cond>,
    pub projection: Option<Vec<Path>>,
    pub count_only: bool,
    /// `Select: ALL_ATTRIBUTES` on a local index whose projection is narrower: the table's items.
    pub all_attributes: bool,
    pub limit: Option<usize>,
    pub start: Option<Item>,
}

fn common(input: &Input, ctx: &mut Ctx, legacy_filter: &str) -> Result<Request> {
    let table_name = input.table_name()?;
    let index_name = input.str("IndexName")?.map(str::to_owned);
    let filter = match input.str("FilterExpression")? {
        Some(text) => Some(ctx.condition("FilterExpression", text)?),
        None => crate::ops::legacy::filter(input, legacy_filter)?,
    };
    let projection = projection_of(input, ctx)?;
    let select = input
        .choice("Select", &["ALL_ATTRIBUTES", "ALL_PROJECTED_ATTRIBUTES", "SPECIFIC_ATTRIBUTES", "COUNT"])?;
    if select == Some("SPECIFIC_ATTRIBUTES") && projection.is_none() {
        return Err(validation("One or more parameter values were invalid: Select type SPECIFIC_ATTRIBUTES requires either AttributesToGet or ProjectionExpression"));
    }
    if projection.is_some() && matches!(select, Some("ALL_ATTRIBUTES" | "COUNT" | "ALL_PROJECTED_ATTRIBUTES"))
    {
        return Err(validation(format!("One or more parameter values were invalid: Cannot specify the AttributesToGet when choosing to get {}", select.unwrap_or_default())));
    }
    let limit = check_limit(input.int("Limit")?)?;
    let start =
        input.get("ExclusiveStartKey").map(|v| parse_item(Some(v), "exclusiveStartKey")).transpose()?;
    Ok(Request {
        table_name,
        index_name,
        filter,
        projection,
        count_only: select == Some("COUNT"),
        all_attributes: select == Some("ALL_ATTRIBUTES"),
        limit,
        start,
    })
}

fn bad_start() -> DdbError {
    validation("The provided starting key is invalid: The provided key element does not match the schema")
}

/// The cursor an ExclusiveStartKey names.
fn start_cursor(table: &Table, index: Option<&Index>, start: &Item, by_pk: bool) -> Result<Vec<Sql>> {
    let table_key = table.key_of(&table.key_item(start)).map_err(|_| bad_start())?;
    let scan_prefix = |pk: &[u8]| vec![Sql::Int(crate::store::segment_of(pk)), Sql::Blob(pk.to_vec())];
    Ok(match index {
        None if by_pk => vec![Sql::Blob(table_key.sk)],
        None => {
            let mut out = scan_prefix(&table_key.pk);
            out.push(Sql::Blob(table_key.sk));
            out
        }
        Some(index) => {
            let key = table.index_key(index, start).ok_or_else(bad_start)?;
            let mut out = if by_pk { Vec::new() } else { scan_prefix(&key.pk) };
            out.extend([Sql::Blob(key.sk), Sql::Blob(table_key.pk), Sql::Blob(table_key.sk)]);
            out
        }
    })
}

fn last_key(table: &Table, index: Option<&Index>, item: &Item) -> Item {
    let mut key = table.key_item(item);
    if let Some(index) = index {
        for attr in std::iter::once(&index.hash).chain(index.range.as_ref()) {
            if let Some(v) = item.get(&attr.name) {
                key.insert(attr.name.clone(), v.clone());
            }
        }
    }
    key
}

impl DynamoDb {
    fn read_pages(
        &self,
        input: &Input,
        request: &Request,
        tx: &mut Tx<'_>,
        table: &Table,
        plan: Plan<'_>,
    ) -> Result<Value> {
        let index = plan.index;
        let mut items = Vec::new();
        let (mut scanned, mut bytes) = (0usize, 0usize);
        let mut cursor = plan.start.clone();
        let mut last: Option<Item> = None;
        'pages: loop {
            let want = request.limit.map_or(CHUNK, |l| (l - scanned).min(CHUNK));
            let rows = fetch(tx, &plan, cursor.as_ref(), want)?;
            let exhausted = rows.len() < want;
            for row in rows {
                scanned += 1;
                bytes += row.size;
                cursor = Some(row.cursor);
                let visible = match index {
                    Some(index) if !request.all_attributes => table.project_for(index, &row.item),
                    _ => row.item.clone(),
                };
                if request.filter.as_ref().is_none_or(|f| eval(f, &visible)) {
                    items.push(visible);
                }
                if request.limit.is_some_and(|l| scanned >= l) || bytes >= PAGE_BYTES {
                    last = Some(last_key(table, index, &row.item));
                    break 'pages;
                }
            }
            if exhausted {
                break;
            }
        }
        let mut out = json!({ "Count": items.len(), "ScannedCount": scanned });
        if !request.count_only {
            let shown: Vec<Value> = items
                .iter()
                .map(|item| match &request.projection {
                    Some(paths) => item_json(&project(item, paths)),
                    None => item_json(item),
                })
                .collect();
            out["Items"] = json!(shown);
        }
        if let Some(last) = last {
            out["LastEvaluatedKey"] = item_json(&last);
        }
        if let Some(c) = consumed(input, &request.table_name, (bytes as f64 / 4096.0).ceil().max(0.5)) {
            out["ConsumedCapacity"] = c;
        }
        Ok(out)
    }

    pub(crate) fn query(&self, input: &Input) -> Result<Value> {
        let mut ctx = Ctx::from_request(&input.0)?;
        let key_cond = match input.str("KeyConditionExpression")? {
            Some(text) => Some(ctx.condition("KeyConditionExpression", text)?),
            None => crate::ops::legacy::key_conditions(input)?,
        };
        let key_cond = key_cond.ok_or_else(|| validation("Either the KeyConditions or KeyConditionExpression parameter must be specified in the request."))?;
        let request = common(input, &mut ctx, "QueryFilter")?;
        ctx.check_unused()?;
        let forward = input.bool("ScanIndexForward")?.unwrap_or(true);
        self.db.read(|tx| {
            let table = table_for_items(tx, &request.table_name)?;
            let index = index_of(&table, &request, input)?;
            let (hash, range) = match index {
                Some(i) => (&i.hash, i.range.as_ref()),
                None => (&table.hash, table.range.as_ref()),
            };
            if let Some(filter) = &request.filter {
                filter_keys(filter, &table, index)?;
            }
            let (pk, range_cond) = key_condition(key_cond, hash, range, &table)?;
            let start = request.start.as_ref().map(|s| start_cursor(&table, index, s, true)).transpose()?;
            let plan =
                Plan { table: &table, index, pk: Some(pk), range: range_cond, forward, start, segment: None };
            self.read_pages(input, &request, tx, &table, plan)
        })
    }

    /// A read for PartiQL's SELECT: a query of one partition when `pk` is given, else a scan;
    /// `request.filter` holds the whole WHERE clause.
    pub(crate) fn select(&self, request: &Request, pk: Option<&Av>) -> Result<Value> {
        let input = Input(Default::default());
        self.db.read(|tx| {
            let table = table_for_items(tx, &request.table_name)?;
            let index = index_of(&table, request, &input)?;
            let hash = index.map_or(&table.hash, |i| &i.hash);
            let pk = pk.filter(|v| v.type_name() == hash.kind).map(Av::key_bytes);
            let by_pk = pk.is_some();
            let start = request.start.as_ref().map(|s| start_cursor(&table, index, s, by_pk)).transpose()?;
            let plan = Plan { table: &table, index, pk, range: None, forward: true, start, segment: None };
            self.read_pages(&input, request, tx, &table, plan)
        })
    }

    pub(crate) fn scan(&self, input: &Input) -> Result<Value> {
        let mut ctx = Ctx::from_request(&input.0)?;
        let request = common(input, &mut ctx, "ScanFilter")?;
        ctx.check_unused()?;
        let segment = match (input.int("Segment")?, input.int("TotalSegments")?) {
            (None, None) => None,
            (Some(s), Some(t)) => {
                if !(1..=1_000_000).contains(&t) {
                    return Err(crate::error::constraint(t, "totalSegments", "Member must have value less than or equal to 1000000"));
                }
                if s < 0 || s >= t {
                    return Err(validation(format!("The Segment parameter is zero-based and must be less than parameter TotalSegments: Segment: {s} is not less than TotalSegments: {t}")));
                }
                let size = crate::store::SEGMENTS / t;
                let high = if s == t - 1 { crate::store::SEGMENTS } else { (s + 1) * size };
                Some((s * size, high))
            }
            (Some(_), None) => return Err(validation("The TotalSegments parameter is required but was not present in the request when parameter Segment is present")),
            (None, Some(_)) => return Err(validation("The Segment parameter is required but was not present in the request when parameter TotalSegments is present")),
        };
        self.db.read(|tx| {
            let table = table_for_items(tx, &request.table_name)?;
            let index = index_of(&table, &request, input)?;
            let start = request.start.as_ref().map(|s| start_cursor(&table, index, s, false)).transpose()?;
            let plan = Plan { table: &table, index, pk: None, range: None, forward: true, start, segment };
            self.read_pages(input, &request, tx, &table, plan)
        })
    }
}

fn index_of<'t>(table: &'t Table, request: &Request, input: &Input) -> Result<Option<&'t Index>> {
    let Some(name) = &request.index_name else { return Ok(None) };
    let index = table
        .index(name)
        .ok_or_else(|| validation(format!("The table does not have the specified index: {name}")))?;
    if index.global && input.bool("ConsistentRead")? == Some(true) {
        return Err(validation("Consistent reads are not supported on global secondary indexes"));
    }
    if index.global && request.all_attributes && index.projection != "ALL" {
        return Err(validation(format!(
            "One or more parameter values were invalid: Select type ALL_ATTRIBUTES is not supported for global secondary index {name} because its projection type is not ALL"
        )));
    }
    Ok(Some(index))
}

/// A query's filter may not name the key attributes.
fn filter_keys(filter: &Cond, table: &Table, index: Option<&Index>) -> Result<()> {
    let keys: Vec<&str> = match index {
        Some(i) => std::iter::once(&i.hash).chain(i.range.as_ref()).map(|a| a.name.as_str()).collect(),
        None => table.key_attrs().map(|a| a.name.as_str()).collect(),
    };
    let mut named = Vec::new();
    crate::expr::paths_of(filter, &mut named);
    for path in named {
        if let Some(Elem::Name(name)) = path.first() {
            if keys.contains(&name.as_str()) {
                return Err(validation(format!("Filter Expression can only contain non-primary key attributes: Primary key attribute: {name}")));
            }
        }
    }
    Ok(())
}
