//! JSON patterns: `{ $.field = "value" }` and friends. Selectors walk objects and arrays
//! (`$.a.b`, `$.list[0].id`); comparisons are `=` and `!=` on strings (with `*` wildcards and
//! `%regex%`), numeric `=`, `!=`, `<`, `<=`, `>`, `>=`, and `IS NULL`, `NOT EXISTS`, `IS TRUE`,
//! `IS FALSE`; `&&` binds tighter than `||`, parentheses group. An event that is not JSON (after
//! any plain-text prefix, as Lambda's runtimes print) never matches.

use serde_json::Value as Json;

use super::value::{Op, Value};
use super::PatternError;

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone)]
enum Test {
    Compare(Op, Value),
    IsNull,
    NotExists,
    Is(bool),
}

/// `a || b || c` is one `Or` of three, not a chain: the tree is only as deep as the
/// parentheses, which [`MAX_NESTING`] bounds, so evaluating and dropping it cannot overflow the
/// stack whatever the caller lets through.
#[derive(Debug, Clone)]
enum Node {
    Or(Vec<Node>),
    And(Vec<Node>),
    Test(Vec<Step>, Test),
}

/// How deeply parentheses may nest. Real patterns use a few levels.
const MAX_NESTING: usize = 32;

/// A parsed JSON pattern.
#[derive(Debug, Clone)]
pub struct Expr(Node);

impl Expr {
    /// Parses the text between the braces.
    pub fn parse(text: &str) -> Result<Expr, PatternError> {
        let mut parser = Parser { text, at: 0, depth: 0 };
        let node = parser.or()?;
        parser.skip_space();
        if parser.at < text.len() {
            return Err(parser.error("Unexpected input"));
        }
        Ok(Expr(node))
    }

    pub fn matches(&self, message: &str) -> bool {
        parse_message(message).is_some_and(|json| self.0.eval(&json))
    }
}

impl Node {
    fn eval(&self, json: &Json) -> bool {
        match self {
            Node::Or(alternatives) => alternatives.iter().any(|n| n.eval(json)),
            Node::And(conditions) => conditions.iter().all(|n| n.eval(json)),
            Node::Test(path, test) => {
                let field = lookup(json, path);
                match test {
                    Test::NotExists => field.is_none(),
                    Test::IsNull => field.is_some_and(Json::is_null),
                    Test::Is(expected) => field.and_then(Json::as_bool) == Some(*expected),
                    Test::Compare(op, value) => match field {
                        Some(Json::String(s)) => value.compare_text(*op, s),
                        Some(Json::Number(n)) => n.as_f64().is_some_and(|n| value.compare_number(*op, n)),
                        Some(Json::Bool(b)) => value.compare_text(*op, if *b { "true" } else { "false" }),
                        Some(Json::Object(_) | Json::Array(_)) => *op == Op::Eq && value.is_anything(),
                        Some(Json::Null) | None => false,
                    },
                }
            }
        }
    }
}

/// The event as JSON: the whole message, or from its first `{` on.
fn parse_message(message: &str) -> Option<Json> {
    let trimmed = message.trim();
    if let Ok(json @ (Json::Object(_) | Json::Array(_))) = serde_json::from_str(trimmed) {
        return Some(json);
    }
    serde_json::from_str(&trimmed[trimmed.find('{')?..]).ok()
}

fn lookup<'a>(json: &'a Json, path: &[Step]) -> Option<&'a Json> {
    path.iter().try_fold(json, |node, step| match step {
        Step::Key(key) => node.as_object()?.get(key),
        Step::Index(index) => node.as_array()?.get(*index),
    })
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
    /// Parentheses open at this point.
    depth: usize,
}

const STOP: &[char] = &['.', '[', ']', '=', '!', '<', '>', '(', ')', '&', '|', '"'];

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.at..]
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        let found = self.rest().starts_with(token);
        if found {
            self.at += token.len();
        }
        found
    }

    fn error(&self, what: &str) -> PatternError {
        PatternError(format!("{what} at position {} of JSON pattern", self.at))
    }

    fn or(&mut self) -> Result<Node, PatternError> {
        let mut alternatives = vec![self.and()?];
        while self.eat("||") {
            alternatives.push(self.and()?);
        }
        Ok(if alternatives.len() == 1 { alternatives.remove(0) } else { Node::Or(alternatives) })
    }

    fn and(&mut self) -> Result<Node, PatternError> {
        let mut conditions = vec![self.unary()?];
        while self.eat("&&") {
            conditions.push(self.unary()?);
        }
        Ok(if conditions.len() == 1 { conditions.remove(0) } else { Node::And(conditions) })
    }

    fn unary(&mut self) -> Result<Node, PatternError> {
        if self.eat("(") {
            if self.depth == MAX_NESTING {
                return Err(self.error("Too many nested parentheses"));
            }
            self.depth += 1;
            let inner = self.or()?;
            self.depth -= 1;
            if !self.eat(")") {
                return Err(self.error("Missing ')'"));
            }
            return Ok(inner);
        }
        let path = self.selector()?;
        self.skip_space();
        if let Some((op, len)) = Op::lex(self.rest()) {
            self.at += len;
            return Ok(Node::Test(path, Test::Compare(op, self.value()?)));
        }
        let words: Vec<&str> = self.rest().split_whitespace().take(2).collect();
        let test = match words.as_slice() {
            ["IS", "NULL", ..] => Test::IsNull,
            ["IS", "TRUE", ..] => Test::Is(true),
            ["IS", "FALSE", ..] => Test::Is(false),
            ["NOT", "EXISTS", ..] => Test::NotExists,
            _ => return Err(self.error("Expected a comparison")),
        };
        self.eat(words[0]);
        self.eat(words[1]);
        Ok(Node::Test(path, test))
    }

    fn selector(&mut self) -> Result<Vec<Step>, PatternError> {
        if !self.eat("$") {
            return Err(self.error("Expected a selector starting with '$'"));
        }
        let mut path = Vec::new();
        loop {
            if self.rest().starts_with('.') {
                self.at += 1;
                let len = self
                    .rest()
                    .find(|c: char| c.is_whitespace() || STOP.contains(&c))
                    .unwrap_or(self.rest().len());
                if len == 0 {
                    return Err(self.error("Expected a field name"));
                }
                path.push(Step::Key(self.rest()[..len].to_owned()));
                self.at += len;
            } else if self.rest().starts_with('[') {
                let close = self.rest().find(']').ok_or_else(|| self.error("Missing ']'"))?;
                let index =
                    self.rest()[1..close].trim().parse().map_err(|_| self.error("Invalid array index"))?;
                path.push(Step::Index(index));
                self.at += close + 1;
            } else {
                return Ok(path);
            }
        }
    }

    fn value(&mut self) -> Result<Value, PatternError> {
        self.skip_space();
        let rest = self.rest();
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut text = String::new();
            let mut chars = quoted.char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        self.at += i + 2;
                        return Ok(Value::Text(text));
                    }
                    '\\' => text.push(chars.next().map_or('\\', |(_, c)| c)),
                    c => text.push(c),
                }
            }
            return Err(self.error("Unterminated string"));
        }
        if let Some(inner) = rest.strip_prefix('%') {
            let end = inner.find('%').ok_or_else(|| self.error("Unterminated regular expression"))?;
            self.at += end + 2;
            return super::value::regex(&inner[..end]);
        }
        let len =
            rest.find(|c: char| c.is_whitespace() || c == ')' || c == '&' || c == '|').unwrap_or(rest.len());
        if len == 0 {
            return Err(self.error("Expected a value"));
        }
        self.at += len;
        Value::bare(&rest[..len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, message: &str) -> bool {
        Expr::parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e:?}")).matches(message)
    }

    const EVENT: &str = r#"{"eventType":"UpdateTrail","sourceIPAddress":"123.123.4.5","bandwidth":80,
        "latency":20,"user":{"id":1,"name":"Ann"},"users":[{"email":"John.Doe@example.com"}],
        "actions":["GET","PUT","DELETE"],"fieldNull":null,"flag":true,"off":false,"code":"404"}"#;

    #[test]
    fn strings_wildcards_and_regexes() {
        assert!(matches(r#"$.eventType = "UpdateTrail""#, EVENT));
        assert!(matches("$.eventType = UpdateTrail", EVENT));
        assert!(!matches(r#"$.eventType = "updatetrail""#, EVENT));
        assert!(matches(r#"$.eventType != "CreateTrail""#, EVENT));
        assert!(matches("$.sourceIPAddress = 123.123.*", EVENT));
        assert!(!matches("$.sourceIPAddress != 123.123.*", EVENT));
        assert!(matches(r#"$.eventType = "*Trail""#, EVENT));
        assert!(matches("$.eventType = %^Update[A-Z]%", EVENT));
        assert!(!matches("$.missing != x", EVENT));
    }

    #[test]
    fn numbers_nested_fields_and_arrays() {
        assert!(matches("$.bandwidth > 75", EVENT));
        assert!(!matches("$.latency > 50", EVENT));
        assert!(matches("$.latency <= 20", EVENT));
        assert!(matches("$.latency >= 2e1", EVENT));
        assert!(matches("$.user.id = 1", EVENT));
        assert!(matches("$.user.name = Ann", EVENT));
        assert!(matches(r#"$.users[0].email = "John.Doe@example.com""#, EVENT));
        assert!(matches("$.actions[2] = DELETE", EVENT));
        assert!(!matches("$.actions[5] = DELETE", EVENT));
        assert!(matches("$.code = 404", EVENT));
        assert!(matches("$.code = 4*", EVENT));
    }

    #[test]
    fn null_existence_booleans_and_logic() {
        assert!(matches("$.fieldNull IS NULL", EVENT));
        assert!(!matches("$.user IS NULL", EVENT));
        assert!(matches("$.nothing NOT EXISTS", EVENT));
        assert!(!matches("$.fieldNull NOT EXISTS", EVENT));
        assert!(matches("$.flag IS TRUE", EVENT));
        assert!(matches("$.off IS FALSE", EVENT));
        assert!(matches("$.user = *", EVENT));
        assert!(matches(r#"$.user.id = 1 && $.users[0].email = "John.Doe@example.com""#, EVENT));
        assert!(matches("$.user.id = 2 || $.bandwidth > 75", EVENT));
        assert!(matches(r#"($.user.id = 2 && $.latency = 20) || $.actions[0] = "GET""#, EVENT));
        assert!(!matches(r#"$.user.id = 2 && ($.latency = 20 || $.actions[0] = "GET")"#, EVENT));
    }

    #[test]
    fn only_json_events_match_and_prefixes_are_skipped() {
        assert!(!matches("$.a = 1", "a = 1"));
        assert!(matches("$.level = ERROR", "2024-01-01T00:00:00.000Z\tabc\tINFO\t{\"level\":\"ERROR\"}\n"));
    }

    #[test]
    fn nesting_is_bounded_and_long_chains_stay_flat() {
        let nested = |depth: usize| format!("{}$.a = 1{}", "(".repeat(depth), ")".repeat(depth));
        assert!(matches(&nested(MAX_NESTING), r#"{"a":1}"#));
        let deep = Expr::parse(&nested(MAX_NESTING + 1)).unwrap_err();
        assert!(deep.0.starts_with("Too many nested parentheses"), "{deep:?}");
        assert!(Expr::parse(&nested(100_000)).is_err());
        // Far longer than any request may carry, on a worker thread's stack (tokio's default).
        let chain = format!("{} || $.a = 1", vec!["$.a = 2 && $.b = 3"; 50_000].join(" || "));
        let worker = std::thread::Builder::new().stack_size(2 << 20);
        let matched = worker.spawn(move || matches(&chain, r#"{"a":1}"#)).unwrap().join().unwrap();
        assert!(matched);
    }

    #[test]
    fn malformed_patterns_are_rejected() {
        for bad in ["", "$.a =", "a = 1", "$.a = \"x", "($.a = 1", "$.a ~ 1", "$.a[x] = 1", "$.a = 1 junk"] {
            assert!(Expr::parse(bad).is_err(), "{bad}");
        }
    }
}
