//! A Logs Insights subset: `fields`, `filter` (comparisons, `like`, `and`/`or`/`not`), `parse`
//! (glob or regex with named groups), `stats` (`count`, `sum`, `avg`, `min`, `max`, `count_distinct`
//! … `by` fields and `bin(…)`), `sort`, `limit`, `display`. Events carry `@timestamp`, `@message`,
//! `@logStream`, `@log`, `@ingestionTime` and the fields of JSON messages (nested as `a.b`).

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::Value;

/// One event's fields.
pub type Record = BTreeMap<String, Value>;

#[derive(Debug)]
enum Expr {
    Field(String),
    Literal(Value),
    Regex(Regex),
    Compare(Box<Expr>, String, Box<Expr>),
    Like(Box<Expr>, Box<Expr>, bool),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Call(String, Vec<Expr>),
}

#[derive(Debug)]
enum Command {
    Fields(Vec<(Expr, String)>),
    Display(Vec<String>),
    Filter(Expr),
    Parse(String, ParseWith),
    Stats(Vec<(String, Option<Expr>, String)>, Vec<(Expr, String)>),
    Sort(Vec<(String, bool)>),
    Limit(usize),
}

#[derive(Debug)]
enum ParseWith {
    Glob(Vec<String>, Vec<String>),
    Regex(Regex),
}

pub struct Query {
    commands: Vec<Command>,
}

// ---------------------------------------------------------------------------------------------
// Lexing and parsing

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Num(f64),
    Re(String),
    Sym(String),
}

fn lex(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' || c == '`' {
            let mut s = String::new();
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                s.push(chars[i]);
                i += 1;
            }
            i += 1;
            tokens.push(if c == '`' { Token::Word(s) } else { Token::Str(s) });
        } else if c == '/' {
            // Regexes (`/…/`): the only use of a slash outside strings.
            let mut s = String::new();
            i += 1;
            while i < chars.len() && chars[i] != '/' {
                if chars[i] == '\\' && i + 1 < chars.len() && chars[i + 1] == '/' {
                    i += 1;
                }
                s.push(chars[i]);
                i += 1;
            }
            i += 1;
            tokens.push(Token::Re(s));
        } else if c.is_ascii_digit()
            || (c == '-'
                && chars.get(i + 1).is_some_and(char::is_ascii_digit)
                && !matches!(tokens.last(), Some(Token::Num(_)) | Some(Token::Word(_))))
        {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let number: String = chars[start..i].iter().collect();
            // A duration such as `5m` in bin(5m) stays a word.
            if i < chars.len() && chars[i].is_ascii_alphabetic() {
                while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                tokens.push(Token::Word(chars[start..i].iter().collect()));
            } else {
                tokens.push(Token::Num(number.parse().map_err(|_| format!("bad number {number}"))?));
            }
        } else if c.is_alphanumeric() || c == '@' || c == '_' || c == '$' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || "@_.$-".contains(chars[i])) {
                if chars[i] == '-' && !chars.get(i + 1).is_some_and(|n| n.is_alphanumeric()) {
                    break;
                }
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if ["!=", "<=", ">=", "=~", "=="].contains(&two.as_str()) {
                tokens.push(Token::Sym(two));
                i += 2;
            } else {
                tokens.push(Token::Sym(c.to_string()));
                i += 1;
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }
    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word)) {
            self.at += 1;
            return true;
        }
        false
    }
    fn symbol(&mut self, symbol: &str) -> bool {
        if matches!(self.peek(), Some(Token::Sym(s)) if s == symbol) {
            self.at += 1;
            return true;
        }
        false
    }
    fn done(&self) -> bool {
        self.at >= self.tokens.len()
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.not()?;
        while self.keyword("and") {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }
    fn not(&mut self) -> Result<Expr, String> {
        if self.keyword("not") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.comparison()
    }
    fn comparison(&mut self) -> Result<Expr, String> {
        let left = self.primary()?;
        if self.keyword("like") || self.symbol("=~") {
            return Ok(Expr::Like(Box::new(left), Box::new(self.primary()?), false));
        }
        if self.keyword("not") {
            if !self.keyword("like") {
                return Err("expected like after not".into());
            }
            return Ok(Expr::Like(Box::new(left), Box::new(self.primary()?), true));
        }
        for op in ["=", "==", "!=", "<", ">", "<=", ">="] {
            if self.symbol(op) {
                let op = if op == "==" { "=" } else { op };
                return Ok(Expr::Compare(Box::new(left), op.to_owned(), Box::new(self.primary()?)));
            }
        }
        Ok(left)
    }
    fn primary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Token::Str(s)) => Ok(Expr::Literal(Value::String(s))),
            Some(Token::Num(n)) => Ok(Expr::Literal(serde_json::json!(n))),
            Some(Token::Re(r)) => Regex::new(&r).map(Expr::Regex).map_err(|e| e.to_string()),
            Some(Token::Sym(s)) if s == "(" => {
                let inner = self.or()?;
                self.symbol(")");
                Ok(inner)
            }
            Some(Token::Word(w)) => {
                if self.symbol("(") {
                    let mut args = Vec::new();
                    if !self.symbol(")") {
                        loop {
                            if self.symbol("*") {
                                args.push(Expr::Literal(Value::String("*".into())));
                            } else {
                                args.push(self.or()?);
                            }
                            if self.symbol(")") {
                                break;
                            }
                            if !self.symbol(",") {
                                return Err(format!("expected , or ) in {w}(…)"));
                            }
                        }
                    }
                    return Ok(Expr::Call(w.to_ascii_lowercase(), args));
                }
                Ok(Expr::Field(w))
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }

    /// `expr [as alias]`, comma separated, up to the end of the command.
    fn aliased_list(&mut self) -> Result<Vec<(Expr, String)>, String> {
        let mut items = Vec::new();
        loop {
            let start = self.at;
            let expr = self.or()?;
            let name = if self.keyword("as") {
                match self.next() {
                    Some(Token::Word(w)) => w,
                    other => return Err(format!("expected a name after as, not {other:?}")),
                }
            } else {
                describe(&self.tokens[start..self.at])
            };
            items.push((expr, name));
            if !self.symbol(",") {
                return Ok(items);
            }
        }
    }
}

fn describe(tokens: &[Token]) -> String {
    tokens
        .iter()
        .map(|t| match t {
            Token::Word(w) => w.clone(),
            Token::Str(s) => format!("\"{s}\""),
            Token::Num(n) => n.to_string(),
            Token::Re(r) => format!("/{r}/"),
            Token::Sym(s) => s.clone(),
        })
        .collect::<Vec<_>>()
        .join("")
}

impl Query {
    pub fn parse(text: &str) -> Result<Query, String> {
        let mut commands = Vec::new();
        for part in split_pipes(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let mut parser = Parser { tokens: lex(part)?, at: 0 };
            let Some(Token::Word(command)) = parser.next() else { return Err(format!("unexpected: {part}")) };
            let command = match command.to_ascii_lowercase().as_str() {
                "fields" => Command::Fields(parser.aliased_list()?),
                "display" => Command::Display(parser.aliased_list()?.into_iter().map(|(_, n)| n).collect()),
                "filter" => Command::Filter(parser.or()?),
                "limit" => match parser.next() {
                    Some(Token::Num(n)) if n >= 1.0 => Command::Limit(n as usize),
                    _ => return Err("limit takes a positive number".into()),
                },
                "sort" => {
                    let mut keys = Vec::new();
                    loop {
                        let Some(Token::Word(field)) = parser.next() else {
                            return Err("sort takes field names".into());
                        };
                        let descending = if parser.keyword("desc") {
                            true
                        } else {
                            parser.keyword("asc");
                            false
                        };
                        keys.push((field, descending));
                        if !parser.symbol(",") {
                            break;
                        }
                    }
                    Command::Sort(keys)
                }
                "parse" => {
                    let field = match parser.peek() {
                        Some(Token::Word(w)) => {
                            let w = w.clone();
                            parser.at += 1;
                            w
                        }
                        _ => "@message".to_owned(),
                    };
                    match parser.next() {
                        Some(Token::Str(glob)) => {
                            if !parser.keyword("as") {
                                return Err("parse with a pattern needs `as` names".into());
                            }
                            let names = parser.aliased_list()?.into_iter().map(|(_, n)| n).collect();
                            let pieces = glob.split('*').map(str::to_owned).collect();
                            Command::Parse(field, ParseWith::Glob(pieces, names))
                        }
                        Some(Token::Re(re)) => Command::Parse(
                            field,
                            ParseWith::Regex(Regex::new(&re).map_err(|e| e.to_string())?),
                        ),
                        other => return Err(format!("parse takes a \"pattern\" or /regex/, not {other:?}")),
                    }
                }
                "stats" => {
                    let mut aggregates = Vec::new();
                    for (expr, name) in parser.aliased_list()? {
                        match expr {
                            Expr::Call(function, mut args) => {
                                let arg = if args.is_empty() { None } else { Some(args.remove(0)) };
                                aggregates.push((function, arg, name));
                            }
                            _ => return Err(format!("stats takes aggregate functions, not {name}")),
                        }
                    }
                    let by = if parser.keyword("by") { parser.aliased_list()? } else { Vec::new() };
                    Command::Stats(aggregates, by)
                }
                other => return Err(format!("nimbus does not run the Logs Insights command {other}")),
            };
            if !parser.done() {
                return Err(format!("unexpected text in: {part}"));
            }
            commands.push(command);
        }
        Ok(Query { commands })
    }

    /// Runs the query over `records` (in time order, newest first as Insights returns by default).
    pub fn run(&self, mut records: Vec<Record>, default_limit: usize) -> (Vec<Vec<(String, Value)>>, usize) {
        let mut shown: Option<Vec<String>> = None;
        let mut limit = default_limit;
        let mut aggregated = false;
        for command in &self.commands {
            match command {
                Command::Fields(items) => {
                    for record in &mut records {
                        for (expr, name) in items {
                            if !matches!(expr, Expr::Field(f) if f == name) {
                                let value = eval(expr, record);
                                record.insert(name.clone(), value);
                            }
                        }
                    }
                    let names: Vec<String> = items.iter().map(|(_, n)| n.clone()).collect();
                    shown = Some(match shown {
                        Some(mut existing) if !aggregated => {
                            existing.extend(names);
                            existing
                        }
                        _ => names,
                    });
                }
                Command::Display(names) => shown = Some(names.clone()),
                Command::Filter(expr) => records.retain(|r| truthy(&eval(expr, r))),
                Command::Parse(field, with) => {
                    for record in &mut records {
                        let text = text_of(record.get(field).unwrap_or(&Value::Null));
                        for (name, value) in parse_fields(with, &text) {
                            record.insert(name, Value::String(value));
                        }
                    }
                }
                Command::Stats(aggregates, by) => {
                    records = stats(records, aggregates, by);
                    let mut names: Vec<String> = by.iter().map(|(_, n)| n.clone()).collect();
                    names.extend(aggregates.iter().map(|(_, _, n)| n.clone()));
                    shown = Some(names);
                    aggregated = true;
                }
                Command::Sort(keys) => {
                    records.sort_by(|a, b| {
                        for (field, descending) in keys {
                            let ordering = compare(
                                a.get(field).unwrap_or(&Value::Null),
                                b.get(field).unwrap_or(&Value::Null),
                            );
                            let ordering = if *descending { ordering.reverse() } else { ordering };
                            if ordering.is_ne() {
                                return ordering;
                            }
                        }
                        std::cmp::Ordering::Equal
                    });
                }
                Command::Limit(n) => limit = *n,
            }
        }
        let matched = records.len();
        let rows = records
            .into_iter()
            .take(limit)
            .map(|record| {
                let names: Vec<String> = match &shown {
                    Some(names) => names.clone(),
                    None => vec!["@timestamp".into(), "@message".into()],
                };
                let mut row: Vec<(String, Value)> = names
                    .iter()
                    .filter_map(|n| record.get(n).filter(|v| !v.is_null()).map(|v| (n.clone(), v.clone())))
                    .collect();
                if !aggregated {
                    if let Some(ptr) = record.get("@ptr") {
                        row.push(("@ptr".into(), ptr.clone()));
                    }
                }
                row
            })
            .collect();
        (rows, matched)
    }
}

/// The query split at `|` outside quotes and regexes.
fn split_pipes(text: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' || c == '`' || c == '/' => quote = Some(c),
            None if c == '|' => {
                parts.push(String::new());
                continue;
            }
            None => {}
        }
        if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    parts
}

fn parse_fields(with: &ParseWith, text: &str) -> Vec<(String, String)> {
    match with {
        ParseWith::Regex(re) => {
            let Some(captures) = re.captures(text) else { return Vec::new() };
            re.capture_names()
                .flatten()
                .filter_map(|name| Some((name.to_owned(), captures.name(name)?.as_str().to_owned())))
                .collect()
        }
        ParseWith::Glob(pieces, names) => {
            let mut values = Vec::new();
            let Some(mut rest) = text.find(pieces[0].as_str()).map(|at| &text[at + pieces[0].len()..]) else {
                return Vec::new();
            };
            for (i, piece) in pieces.iter().enumerate().skip(1) {
                let end = if piece.is_empty() && i == pieces.len() - 1 {
                    Some(rest.len())
                } else {
                    rest.find(piece.as_str())
                };
                let Some(end) = end else { return Vec::new() };
                values.push(rest[..end].to_owned());
                rest = &rest[end + piece.len()..];
            }
            names.iter().cloned().zip(values).collect()
        }
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn number_of(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0),
        _ => true,
    }
}

fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (number_of(a), number_of(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => text_of(a).cmp(&text_of(b)),
    }
}

fn eval(expr: &Expr, record: &Record) -> Value {
    match expr {
        Expr::Field(name) => record.get(name).cloned().unwrap_or(Value::Null),
        Expr::Literal(value) => value.clone(),
        Expr::Regex(re) => Value::String(re.as_str().to_owned()),
        Expr::And(a, b) => Value::Bool(truthy(&eval(a, record)) && truthy(&eval(b, record))),
        Expr::Or(a, b) => Value::Bool(truthy(&eval(a, record)) || truthy(&eval(b, record))),
        Expr::Not(a) => Value::Bool(!truthy(&eval(a, record))),
        Expr::Like(field, pattern, negated) => {
            let text = text_of(&eval(field, record));
            let found = match pattern.as_ref() {
                Expr::Regex(re) => re.is_match(&text),
                other => text.contains(&text_of(&eval(other, record))),
            };
            Value::Bool(found != *negated)
        }
        Expr::Compare(a, op, b) => {
            let (a, b) = (eval(a, record), eval(b, record));
            if a.is_null() {
                return Value::Bool(op == "!=");
            }
            let ordering = compare(&a, &b);
            Value::Bool(match op.as_str() {
                "=" => ordering.is_eq(),
                "!=" => ordering.is_ne(),
                "<" => ordering.is_lt(),
                ">" => ordering.is_gt(),
                "<=" => ordering.is_le(),
                _ => ordering.is_ge(),
            })
        }
        Expr::Call(function, args) => {
            let arg = |i: usize| args.get(i).map(|a| eval(a, record)).unwrap_or(Value::Null);
            match function.as_str() {
                "bin" => {
                    let period = args.first().map(|a| match a {
                        Expr::Field(w) => duration_ms(w),
                        other => number_of(&eval(other, record)).map(|n| n as i64 * 1000),
                    });
                    let (Some(Some(period)), Some(at)) =
                        (period, record.get("@timestamp_ms").and_then(Value::as_i64))
                    else {
                        return Value::Null;
                    };
                    Value::String(format_time(at - at.rem_euclid(period.max(1))))
                }
                "strlen" => serde_json::json!(text_of(&arg(0)).chars().count()),
                "toupper" => Value::String(text_of(&arg(0)).to_uppercase()),
                "tolower" => Value::String(text_of(&arg(0)).to_lowercase()),
                "ispresent" => Value::Bool(!arg(0).is_null()),
                "isempty" => Value::Bool(text_of(&arg(0)).is_empty()),
                "abs" => number_of(&arg(0)).map_or(Value::Null, |n| serde_json::json!(n.abs())),
                "concat" => Value::String(args.iter().map(|a| text_of(&eval(a, record))).collect()),
                _ => Value::Null,
            }
        }
    }
}

/// `5m`, `1h`, `30s`, `1d` in milliseconds.
fn duration_ms(text: &str) -> Option<i64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().ok()?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" | "sec" => 1000,
        "m" | "min" => 60_000,
        "h" | "hr" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return None,
    };
    Some(number * unit_ms)
}

/// `2024-05-01 12:00:00.000`, as Insights writes `@timestamp`.
pub fn format_time(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]"
    );
    at.format(&format).unwrap_or_default()
}

fn stats(
    records: Vec<Record>,
    aggregates: &[(String, Option<Expr>, String)],
    by: &[(Expr, String)],
) -> Vec<Record> {
    let mut groups: BTreeMap<Vec<String>, (Record, Vec<Vec<Value>>)> = BTreeMap::new();
    for record in &records {
        let keys: Vec<Value> = by.iter().map(|(e, _)| eval(e, record)).collect();
        let group_key: Vec<String> = keys.iter().map(text_of).collect();
        let entry = groups.entry(group_key).or_insert_with(|| {
            let mut head = Record::new();
            for ((_, name), key) in by.iter().zip(&keys) {
                head.insert(name.clone(), key.clone());
            }
            (head, vec![Vec::new(); aggregates.len()])
        });
        for (i, (_, arg, _)) in aggregates.iter().enumerate() {
            let value = match arg {
                None => Value::Bool(true),
                Some(Expr::Literal(Value::String(s))) if s == "*" => Value::Bool(true),
                Some(expr) => eval(expr, record),
            };
            if !value.is_null() {
                entry.1[i].push(value);
            }
        }
    }
    groups
        .into_values()
        .map(|(mut head, values)| {
            for ((function, _, name), values) in aggregates.iter().zip(values) {
                let numbers: Vec<f64> = values.iter().filter_map(number_of).collect();
                let result = match function.as_str() {
                    "count" => serde_json::json!(values.len()),
                    "count_distinct" => {
                        let distinct: std::collections::BTreeSet<String> =
                            values.iter().map(text_of).collect();
                        serde_json::json!(distinct.len())
                    }
                    "sum" => serde_json::json!(numbers.iter().sum::<f64>()),
                    "avg" if !numbers.is_empty() => {
                        serde_json::json!(numbers.iter().sum::<f64>() / numbers.len() as f64)
                    }
                    "min" => {
                        numbers.iter().copied().reduce(f64::min).map_or(Value::Null, |n| serde_json::json!(n))
                    }
                    "max" => {
                        numbers.iter().copied().reduce(f64::max).map_or(Value::Null, |n| serde_json::json!(n))
                    }
                    "earliest" => values.first().cloned().unwrap_or(Value::Null),
                    "latest" => values.last().cloned().unwrap_or(Value::Null),
                    _ => Value::Null,
                };
                head.insert(name.clone(), result);
            }
            head
        })
        .collect()
}

/// An event as Insights sees it.
pub fn record(timestamp: i64, ingestion: i64, message: &str, stream: &str, log: &str, ptr: String) -> Record {
    let mut record = Record::new();
    if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(message) {
        flatten("", &Value::Object(fields), &mut record);
    }
    record.insert("@timestamp".into(), Value::String(format_time(timestamp)));
    record.insert("@timestamp_ms".into(), serde_json::json!(timestamp));
    record.insert("@ingestionTime".into(), Value::String(format_time(ingestion)));
    record.insert("@message".into(), Value::String(message.to_owned()));
    record.insert("@logStream".into(), Value::String(stream.to_owned()));
    record.insert("@log".into(), Value::String(log.to_owned()));
    record.insert("@ptr".into(), Value::String(ptr));
    record
}

fn flatten(prefix: &str, value: &Value, into: &mut Record) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                flatten(&name, value, into);
            }
        }
        other => {
            into.insert(prefix.to_owned(), other.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> Vec<Record> {
        let events = [
            (60_000, r#"{"level":"ERROR","ms":120,"user":{"id":"a"}}"#),
            (61_000, r#"{"level":"INFO","ms":5,"user":{"id":"b"}}"#),
            (125_000, "GET /index.html 200 12ms"),
            (126_000, r#"{"level":"ERROR","ms":80,"user":{"id":"a"}}"#),
        ];
        events.iter().rev().map(|(t, m)| record(*t, *t, m, "s", "1:/g", String::new())).collect()
    }

    fn run(query: &str) -> Vec<Vec<(String, Value)>> {
        Query::parse(query).unwrap().run(records(), 1000).0
    }

    #[test]
    fn filter_fields_sort_limit() {
        let rows = run(
            "fields @timestamp, level, ms | filter level = 'ERROR' and ms > 100 | sort ms desc | limit 5",
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0][2], ("ms".to_owned(), serde_json::json!(120)));
        let rows = run(r"filter @message like /index\.html/ | fields @message");
        assert_eq!(rows.len(), 1);
    }

    #[test]
    fn stats_by_field_and_bin() {
        let rows =
            run("filter ispresent(level) | stats count(*) as n, avg(ms) as mean by level | sort level");
        assert_eq!(
            rows[0],
            vec![
                ("level".into(), "ERROR".into()),
                ("n".into(), serde_json::json!(2)),
                ("mean".into(), serde_json::json!(100.0))
            ]
        );
        let rows = run("filter ispresent(level) | stats count(*) as n by bin(1m)");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][0].1, Value::String("1970-01-01 00:01:00.000".into()));
    }

    #[test]
    fn parse_with_glob_and_regex() {
        let rows = run(
            r#"parse @message "GET * * *ms" as path, status, took | filter ispresent(path) | fields path, status, took"#,
        );
        assert_eq!(rows[0][0].1, "/index.html");
        assert_eq!(rows[0][2].1, "12");
        let rows = run(
            r"parse @message /(?<verb>GET|POST) (?<path>\S+)/ | filter ispresent(verb) | display verb, path",
        );
        assert_eq!(rows[0][..2], [("verb".into(), "GET".into()), ("path".into(), "/index.html".into())]);
        assert!(Query::parse("frobnicate x").is_err());
    }
}
