//! Intrinsic functions (`States.Format('{}', $.x)` …) in `.$` fields: parsed, then evaluated
//! against the state's input and the context object. Failures are `States.IntrinsicFailure`.

use base64::Engine as _;
use serde_json::{json, Value};

use super::path;

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Literal(Value),
    Path(String),
    Context(String),
    Call(String, Vec<Arg>),
}

/// What evaluation failed with (the cause of a `States.IntrinsicFailure`, or a path error).
pub type Failure = String;

/// Whether `text` looks like an intrinsic call (`States.` …`(`).
pub fn is_call(text: &str) -> bool {
    text.starts_with("States.") && text.contains('(')
}

/// Parses a call without evaluating it (definition validation).
pub fn check(text: &str) -> Result<(), Failure> {
    let (arg, rest) = parse_arg(text.trim())?;
    if !rest.trim().is_empty() || !matches!(arg, Arg::Call(..)) {
        return Err(format!("The value '{text}' is not a valid intrinsic function call"));
    }
    check_names(&arg)
}

fn check_names(arg: &Arg) -> Result<(), Failure> {
    if let Arg::Call(name, args) = arg {
        if !FUNCTIONS.contains(&name.as_str()) {
            return Err(format!("The intrinsic function '{name}' is not supported"));
        }
        args.iter().try_for_each(check_names)?;
    }
    Ok(())
}

const FUNCTIONS: &[&str] = &[
    "States.Format",
    "States.StringToJson",
    "States.JsonToString",
    "States.Array",
    "States.ArrayPartition",
    "States.ArrayContains",
    "States.ArrayRange",
    "States.ArrayGetItem",
    "States.ArrayLength",
    "States.ArrayUnique",
    "States.Base64Encode",
    "States.Base64Decode",
    "States.Hash",
    "States.JsonMerge",
    "States.MathRandom",
    "States.MathAdd",
    "States.StringSplit",
    "States.UUID",
];

/// Evaluates `text` against `input` and `context`.
pub fn evaluate(text: &str, input: &Value, context: &Value) -> Result<Value, Failure> {
    let (arg, rest) = parse_arg(text.trim())?;
    if !rest.trim().is_empty() {
        return Err(format!("Unexpected text after the intrinsic function call: {rest}"));
    }
    eval(&arg, input, context)
}

fn parse_arg(text: &str) -> Result<(Arg, &str), Failure> {
    let text = text.trim_start();
    if let Some(rest) = text.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    // Braces stay escaped for States.Format.
                    Some((_, c @ ('{' | '}'))) => {
                        out.push('\\');
                        out.push(c);
                    }
                    Some((_, c)) => out.push(c),
                    None => {}
                },
                '\'' => return Ok((Arg::Literal(Value::String(out)), &rest[i + 1..])),
                c => out.push(c),
            }
        }
        return Err("Unterminated string literal in intrinsic function".into());
    }
    let end = token_end(text);
    let token = &text[..end];
    if token.starts_with("States.") && text[end..].starts_with('(') {
        let mut rest = &text[end + 1..];
        let mut args = Vec::new();
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix(')') {
                return Ok((Arg::Call(token.to_owned(), args), after));
            }
            let (arg, after) = parse_arg(rest)?;
            args.push(arg);
            rest = after.trim_start();
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if !rest.starts_with(')') {
                return Err(format!("Malformed arguments to {token}"));
            }
        }
    }
    let arg = if let Some(context) = token.strip_prefix("$$") {
        Arg::Context(format!("${context}"))
    } else if token.starts_with('$') {
        Arg::Path(token.to_owned())
    } else {
        match serde_json::from_str::<Value>(token) {
            Ok(value @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => Arg::Literal(value),
            _ => return Err(format!("Invalid argument '{token}' to an intrinsic function")),
        }
    };
    Ok((arg, &text[end..]))
}

/// Where a bare token (path, number, name) ends: at a top-level ',' or ')' (brackets in paths
/// may hold commas inside quotes).
fn token_end(text: &str) -> usize {
    let mut depth = 0;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '\'' if depth > 0 => quoted = !quoted,
            '[' if !quoted => depth += 1,
            ']' if !quoted => depth -= 1,
            ',' | ')' | '(' if depth == 0 => return i,
            c if c.is_whitespace() && depth == 0 => return i,
            _ => {}
        }
    }
    text.len()
}

fn eval(arg: &Arg, input: &Value, context: &Value) -> Result<Value, Failure> {
    match arg {
        Arg::Literal(value) => Ok(value.clone()),
        Arg::Path(p) => path::resolve(input, context, p).map_err(|e| e.message()),
        Arg::Context(p) => path::select(context, p).map_err(|e| e.message()),
        Arg::Call(name, args) => {
            let values = args.iter().map(|a| eval(a, input, context)).collect::<Result<Vec<_>, _>>()?;
            call(name, values)
        }
    }
}

fn want_args(name: &str, args: &[Value], min: usize, max: usize) -> Result<(), Failure> {
    if args.len() < min || args.len() > max {
        let expected = if min == max { min.to_string() } else { format!("{min} to {max}") };
        return Err(format!("The intrinsic function {name} takes {expected} arguments, not {}", args.len()));
    }
    Ok(())
}

fn string<'a>(name: &str, value: &'a Value) -> Result<&'a str, Failure> {
    value.as_str().ok_or_else(|| format!("The intrinsic function {name} expects a string, not {value}"))
}

fn array<'a>(name: &str, value: &'a Value) -> Result<&'a Vec<Value>, Failure> {
    value.as_array().ok_or_else(|| format!("The intrinsic function {name} expects an array, not {value}"))
}

fn integer(name: &str, value: &Value) -> Result<i64, Failure> {
    value
        .as_i64()
        .or_else(|| value.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
        .ok_or_else(|| format!("The intrinsic function {name} expects an integer, not {value}"))
}

fn call(name: &str, args: Vec<Value>) -> Result<Value, Failure> {
    let n = name;
    match name {
        "States.Format" => {
            want_args(n, &args, 1, usize::MAX)?;
            let template = string(n, &args[0])?;
            let mut out = String::new();
            let mut values = args[1..].iter();
            let mut chars = template.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.extend(chars.next()),
                    '{' if chars.peek() == Some(&'}') => {
                        chars.next();
                        let value = values.next().ok_or(
                            "Number of arguments in States.Format do not match the number of {} placeholders",
                        )?;
                        match value {
                            Value::String(s) => out.push_str(s),
                            Value::Object(_) | Value::Array(_) => {
                                return Err(
                                    "States.Format only formats strings, numbers, booleans and null".into()
                                )
                            }
                            other => out.push_str(&other.to_string()),
                        }
                    }
                    c => out.push(c),
                }
            }
            if values.next().is_some() {
                return Err(
                    "Number of arguments in States.Format do not match the number of {} placeholders".into(),
                );
            }
            Ok(Value::String(out))
        }
        "States.StringToJson" => {
            want_args(n, &args, 1, 1)?;
            serde_json::from_str(string(n, &args[0])?).map_err(|e| format!("States.StringToJson: {e}"))
        }
        "States.JsonToString" => {
            want_args(n, &args, 1, 1)?;
            Ok(Value::String(args[0].to_string()))
        }
        "States.Array" => Ok(Value::Array(args)),
        "States.ArrayPartition" => {
            want_args(n, &args, 2, 2)?;
            let size = integer(n, &args[1])?;
            if size <= 0 {
                return Err("States.ArrayPartition's chunk size must be a positive integer".into());
            }
            let chunks = array(n, &args[0])?.chunks(size as usize).map(|c| Value::Array(c.to_vec()));
            Ok(Value::Array(chunks.collect()))
        }
        "States.ArrayContains" => {
            want_args(n, &args, 2, 2)?;
            Ok(Value::Bool(array(n, &args[0])?.contains(&args[1])))
        }
        "States.ArrayRange" => {
            want_args(n, &args, 3, 3)?;
            let (start, end, step) = (integer(n, &args[0])?, integer(n, &args[1])?, integer(n, &args[2])?);
            if step == 0 {
                return Err("States.ArrayRange's step must not be 0".into());
            }
            let mut items = Vec::new();
            let mut i = start;
            while (step > 0 && i <= end) || (step < 0 && i >= end) {
                if items.len() >= 1000 {
                    return Err("States.ArrayRange makes at most 1000 items".into());
                }
                items.push(json!(i));
                i += step;
            }
            Ok(Value::Array(items))
        }
        "States.ArrayGetItem" => {
            want_args(n, &args, 2, 2)?;
            let items = array(n, &args[0])?;
            let index = integer(n, &args[1])?;
            usize::try_from(index)
                .ok()
                .and_then(|i| items.get(i).cloned())
                .ok_or_else(|| format!("States.ArrayGetItem: index {index} is out of bounds"))
        }
        "States.ArrayLength" => {
            want_args(n, &args, 1, 1)?;
            Ok(json!(array(n, &args[0])?.len()))
        }
        "States.ArrayUnique" => {
            want_args(n, &args, 1, 1)?;
            let mut unique: Vec<Value> = Vec::new();
            for item in array(n, &args[0])? {
                if !unique.contains(item) {
                    unique.push(item.clone());
                }
            }
            Ok(Value::Array(unique))
        }
        "States.Base64Encode" => {
            want_args(n, &args, 1, 1)?;
            Ok(Value::String(base64::engine::general_purpose::STANDARD.encode(string(n, &args[0])?)))
        }
        "States.Base64Decode" => {
            want_args(n, &args, 1, 1)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(string(n, &args[0])?)
                .map_err(|e| format!("States.Base64Decode: {e}"))?;
            String::from_utf8(bytes).map(Value::String).map_err(|e| format!("States.Base64Decode: {e}"))
        }
        "States.Hash" => {
            want_args(n, &args, 2, 2)?;
            let data = match &args[0] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            hash(data.as_bytes(), string(n, &args[1])?).map(Value::String)
        }
        "States.JsonMerge" => {
            want_args(n, &args, 3, 3)?;
            if args[2] != Value::Bool(false) {
                return Err(
                    "States.JsonMerge supports only a shallow merge: its third argument must be false".into(),
                );
            }
            let (Value::Object(mut left), Value::Object(right)) = (args[0].clone(), args[1].clone()) else {
                return Err("States.JsonMerge merges two JSON objects".into());
            };
            left.extend(right);
            Ok(Value::Object(left))
        }
        "States.MathRandom" => {
            want_args(n, &args, 2, 3)?;
            let (start, end) = (integer(n, &args[0])?, integer(n, &args[1])?);
            if start >= end {
                return Err("States.MathRandom's start must be less than its end".into());
            }
            let mut rng = match args.get(2) {
                Some(seed) => fastrand::Rng::with_seed(integer(n, seed)? as u64),
                None => fastrand::Rng::new(),
            };
            Ok(json!(rng.i64(start..end)))
        }
        "States.MathAdd" => {
            want_args(n, &args, 2, 2)?;
            let sum = integer(n, &args[0])?.checked_add(integer(n, &args[1])?);
            sum.map(|s| json!(s)).ok_or_else(|| "States.MathAdd overflowed".into())
        }
        "States.StringSplit" => {
            want_args(n, &args, 2, 2)?;
            let (text, delimiters) = (string(n, &args[0])?, string(n, &args[1])?);
            let parts = text.split(|c| delimiters.contains(c)).filter(|p| !p.is_empty());
            Ok(Value::Array(parts.map(|p| Value::String(p.to_owned())).collect()))
        }
        "States.UUID" => {
            want_args(n, &args, 0, 0)?;
            Ok(Value::String(uuid::Uuid::new_v4().to_string()))
        }
        other => Err(format!("The intrinsic function '{other}' is not supported")),
    }
}

pub(crate) fn hash(data: &[u8], algorithm: &str) -> Result<String, Failure> {
    use sha2::Digest;
    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
    Ok(match algorithm {
        "MD5" => hex(&md5::Md5::digest(data)),
        "SHA-1" => hex(&sha1::Sha1::digest(data)),
        "SHA-256" => hex(&sha2::Sha256::digest(data)),
        "SHA-384" => hex(&sha2::Sha384::digest(data)),
        "SHA-512" => hex(&sha2::Sha512::digest(data)),
        other => {
            return Err(format!(
                "States.Hash: '{other}' is not one of the algorithms MD5, SHA-1, SHA-256, SHA-384, SHA-512"
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Result<Value, Failure> {
        let input = json!({"name": "World", "n": 3, "list": [1, 2, 2, 3], "o": {"a": 1}});
        evaluate(text, &input, &json!({"Execution": {"Name": "ex"}}))
    }

    #[test]
    fn evaluates_every_function() {
        assert_eq!(run("States.Format('Hello, {}! {}', $.name, $.n)").unwrap(), json!("Hello, World! 3"));
        assert_eq!(run("States.Format('\\{\\} {}', $$.Execution.Name)").unwrap(), json!("{} ex"));
        assert_eq!(run("States.StringToJson('{\"a\": [1]}')").unwrap(), json!({"a": [1]}));
        assert_eq!(run("States.JsonToString($.o)").unwrap(), json!("{\"a\":1}"));
        assert_eq!(run("States.Array(1, 'two', $.n, null)").unwrap(), json!([1, "two", 3, null]));
        assert_eq!(run("States.ArrayPartition($.list, 3)").unwrap(), json!([[1, 2, 2], [3]]));
        assert_eq!(run("States.ArrayContains($.list, 3)").unwrap(), json!(true));
        assert_eq!(run("States.ArrayRange(1, 9, 2)").unwrap(), json!([1, 3, 5, 7, 9]));
        assert_eq!(run("States.ArrayGetItem($.list, 3)").unwrap(), json!(3));
        assert_eq!(run("States.ArrayLength($.list)").unwrap(), json!(4));
        assert_eq!(run("States.ArrayUnique($.list)").unwrap(), json!([1, 2, 3]));
        assert_eq!(run("States.Base64Encode('Data to encode')").unwrap(), json!("RGF0YSB0byBlbmNvZGU="));
        assert_eq!(run("States.Base64Decode('RGF0YSB0byBlbmNvZGU=')").unwrap(), json!("Data to encode"));
        assert_eq!(
            run("States.Hash('input data', 'SHA-1')").unwrap(),
            json!("aaff4a450a104cd177d28d18d74485e8cae074b7")
        );
        assert_eq!(
            run("States.JsonMerge($.o, States.StringToJson('{\"b\":2}'), false)").unwrap(),
            json!({"a": 1, "b": 2})
        );
        let random = run("States.MathRandom(1, 10)").unwrap().as_i64().unwrap();
        assert!((1..10).contains(&random));
        assert_eq!(
            run("States.MathRandom(1, 1000, 7)").unwrap(),
            run("States.MathRandom(1, 1000, 7)").unwrap()
        );
        assert_eq!(run("States.MathAdd($.n, -1)").unwrap(), json!(2));
        assert_eq!(run("States.StringSplit('a,b;c', ',;')").unwrap(), json!(["a", "b", "c"]));
        assert_eq!(run("States.UUID()").unwrap().as_str().unwrap().len(), 36);
    }

    #[test]
    fn reports_failures() {
        assert!(run("States.ArrayGetItem($.list, 9)").is_err());
        assert!(run("States.Format('{} {}', 1)").is_err());
        assert!(run("States.Nope(1)").is_err());
        assert!(check("States.Nope(1)").is_err());
        assert!(check("States.Format('{}', $.a)").is_ok());
        assert!(run("States.Format('{}', $.missing)").unwrap_err().contains("No results"));
    }
}
