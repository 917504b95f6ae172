//! The right-hand side of a comparison in JSON and space-delimited patterns: a string (`*` is a
//! wildcard), a number, or a `%regex%`, and how each compares with a field's value.

use regex::Regex;

use super::PatternError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    /// Reads an operator at the start of `text`, returning it and its length.
    pub fn lex(text: &str) -> Option<(Op, usize)> {
        let two = text.get(..2).unwrap_or_default();
        match two {
            "!=" => return Some((Op::Ne, 2)),
            "<=" => return Some((Op::Le, 2)),
            ">=" => return Some((Op::Ge, 2)),
            "==" => return Some((Op::Eq, 2)),
            _ => {}
        }
        match text.chars().next()? {
            '=' => Some((Op::Eq, 1)),
            '<' => Some((Op::Lt, 1)),
            '>' => Some((Op::Gt, 1)),
            _ => None,
        }
    }

    fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Op::Eq => ordering == Equal,
            Op::Ne => ordering != Equal,
            Op::Lt => ordering == Less,
            Op::Le => ordering != Greater,
            Op::Gt => ordering == Greater,
            Op::Ge => ordering != Less,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Value {
    /// A string; `*` matches any run of characters.
    Text(String),
    Number(f64),
    Regex(Regex),
}

impl Value {
    /// A bare (unquoted) value: a number if it reads as one.
    pub fn bare(text: &str) -> Result<Value, PatternError> {
        if let Some(inner) = text.strip_prefix('%').and_then(|t| t.strip_suffix('%')) {
            return regex(inner);
        }
        match number(text) {
            Some(n) => Ok(Value::Number(n)),
            None => Ok(Value::Text(text.to_owned())),
        }
    }

    /// Whether this value admits any value at all (`*`): used for "field exists".
    pub fn is_anything(&self) -> bool {
        matches!(self, Value::Text(t) if t == "*")
    }

    /// Compares a field's textual value (a space-delimited column, a JSON string).
    pub fn compare_text(&self, op: Op, actual: &str) -> bool {
        match self {
            Value::Text(pattern) => match op {
                Op::Eq => wildcard(pattern, actual),
                Op::Ne => !wildcard(pattern, actual),
                _ => false,
            },
            Value::Number(expected) => match number(actual) {
                Some(actual) => compare_numbers(op, actual, *expected),
                None => op == Op::Ne,
            },
            Value::Regex(regex) => match op {
                Op::Eq => regex.is_match(actual),
                Op::Ne => !regex.is_match(actual),
                _ => false,
            },
        }
    }

    /// Compares a number (a JSON number field).
    pub fn compare_number(&self, op: Op, actual: f64) -> bool {
        match self {
            Value::Number(expected) => compare_numbers(op, actual, *expected),
            _ => self.compare_text(op, &format_number(actual)),
        }
    }
}

fn compare_numbers(op: Op, actual: f64, expected: f64) -> bool {
    actual.partial_cmp(&expected).is_some_and(|ordering| op.holds(ordering))
}

/// `400`, `-1.5`, `1e10`; not `NaN`, `inf` or `0x10`.
pub fn number(text: &str) -> Option<f64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    if !digits.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')) {
        return None;
    }
    text.parse().ok()
}

/// A JSON number as text, without a useless `.0` (so `status = 4*` matches `404`).
pub fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

pub fn regex(inner: &str) -> Result<Value, PatternError> {
    compile(inner).map(Value::Regex)
}

/// A `%regex%` pattern's body, held to what CloudWatch Logs accepts: letters and digits, the
/// symbols `: _ # = @ / ; , -`, the operators `^ $ ? [ ] { } | \ * + .` (and spaces). No `( )`
/// groups and no multi-byte characters, as AWS documents.
pub fn compile(inner: &str) -> Result<Regex, PatternError> {
    const ALLOWED: &str = ":_#=@/;,-^$?[]{}|\\*+. ";
    if let Some(bad) = inner.chars().find(|c| !(c.is_ascii_alphanumeric() || ALLOWED.contains(*c))) {
        return Err(PatternError(format!(
            "Invalid regular expression: %{inner}% (the character '{bad}' is not supported in filter pattern regular expressions)"
        )));
    }
    Regex::new(inner).map_err(|_| PatternError(format!("Invalid regular expression: %{inner}%")))
}

/// Matches `text` against `pattern`, where each `*` matches any run of characters.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_prefixes_suffixes_and_middles() {
        assert!(wildcard("abc", "abc"));
        assert!(!wildcard("abc", "abcd"));
        assert!(wildcard("123.123.*", "123.123.4.5"));
        assert!(wildcard("*.html", "/index.html"));
        assert!(wildcard("a*c*e", "abcde"));
        assert!(!wildcard("a*c*e", "abcd"));
        assert!(wildcard("*", ""));
        assert!(!wildcard("ab*ba", "aba"));
    }

    #[test]
    fn values_compare_as_numbers_text_or_regex() {
        assert!(Value::bare("400").unwrap().compare_number(Op::Eq, 400.0));
        assert!(Value::bare("1e3").unwrap().compare_number(Op::Ge, 1000.0));
        assert!(Value::bare("4*").unwrap().compare_number(Op::Eq, 404.0));
        assert!(Value::bare("75").unwrap().compare_text(Op::Lt, "12"));
        assert!(!Value::bare("75").unwrap().compare_text(Op::Lt, "abc"));
        assert!(Value::bare("%^ab+c$%").unwrap().compare_text(Op::Eq, "abbbc"));
        assert!(Value::bare("x*").unwrap().compare_text(Op::Ne, "yz"));
        assert!(matches!(Value::bare("inf").unwrap(), Value::Text(_)));
        assert_eq!(Op::lex(">= 3"), Some((Op::Ge, 2)));
        assert_eq!(Op::lex("x"), None);
    }
}
