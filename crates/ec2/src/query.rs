//! The Query forms of EC2 (`InstanceId.1=…`, `Filter.1.Name=…&Filter.1.Value.1=…`,
//! `TagSpecification.1.Tag.1.Key=…`) and Auto Scaling (`Tags.member.1.Key=…`) as one JSON value:
//! a branch whose keys are all numbers (or one `member` branch of numbers) becomes an array in
//! index order, everything else an object of strings.

use std::collections::BTreeMap;

use nimbus_api::AwsError;
use serde_json::{Map, Value};

/// Parameter names have a few dot-separated parts; deeper ones are refused, not recursed into.
const MAX_NAME_PARTS: usize = 16;

enum Node {
    Leaf(String),
    Branch(BTreeMap<String, Node>),
}

fn decode(input: &str) -> String {
    nimbus_api::percent_decode(&input.replace('+', " "))
}

/// The action and its input, from the query string and the form body together.
pub fn parse(query: Option<&str>, body: &[u8]) -> Result<(String, Value), AwsError> {
    let text = String::from_utf8_lossy(body);
    let pairs = query.into_iter().flat_map(|q| q.split('&')).chain(text.split('&'));
    let mut root = BTreeMap::new();
    let mut action = String::new();
    for pair in pairs.filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (key, value) = (decode(key), decode(value));
        match key.as_str() {
            "Action" => action = value,
            "Version" => {}
            _ => {
                let path: Vec<&str> = key.splitn(MAX_NAME_PARTS + 1, '.').collect();
                if path.len() > MAX_NAME_PARTS {
                    return Err(invalid(format!("Parameter name {key:.64}… has too many parts")));
                }
                insert(&mut root, &path, value);
            }
        }
    }
    Ok((action, to_value(Node::Branch(root))))
}

fn insert(branch: &mut BTreeMap<String, Node>, path: &[&str], value: String) {
    let Some((first, rest)) = path.split_first() else { return };
    if rest.is_empty() {
        branch.insert((*first).to_owned(), Node::Leaf(value));
        return;
    }
    let child = branch.entry((*first).to_owned()).or_insert_with(|| Node::Branch(BTreeMap::new()));
    if let Node::Branch(inner) = child {
        insert(inner, rest, value);
    }
}

fn to_value(node: Node) -> Value {
    let mut children = match node {
        Node::Leaf(text) => return Value::String(text),
        Node::Branch(children) => children,
    };
    if children.len() == 1 && matches!(children.get("member"), Some(Node::Branch(_))) {
        if let Some(member) = children.remove("member") {
            return to_value(member);
        }
    }
    if !children.is_empty() && children.keys().all(|k| k.parse::<u64>().is_ok()) {
        let mut items: Vec<(u64, Node)> =
            children.into_iter().filter_map(|(k, v)| k.parse::<u64>().ok().map(|i| (i, v))).collect();
        items.sort_by_key(|(i, _)| *i);
        return Value::Array(items.into_iter().map(|(_, v)| to_value(v)).collect());
    }
    Value::Object(children.into_iter().map(|(k, v)| (k, to_value(v))).collect::<Map<_, _>>())
}

pub fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "InvalidParameterValue", message)
}

pub fn missing(name: &str) -> AwsError {
    AwsError::new(400, "MissingParameter", format!("The request must contain the parameter {name}"))
}

/// Typed access to a parsed form.
pub trait Input {
    fn str(&self, name: &str) -> Option<&str>;
    fn required(&self, name: &str) -> Result<&str, AwsError>;
    /// A list of strings (`InstanceId.1`, `InstanceId.2` …); a single value counts as one.
    fn strings(&self, name: &str) -> Vec<String>;
    fn int(&self, name: &str) -> Result<Option<i64>, AwsError>;
    fn bool(&self, name: &str) -> Option<bool>;
    fn list(&self, name: &str) -> Vec<&Value>;
}

impl Input for Value {
    fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    fn required(&self, name: &str) -> Result<&str, AwsError> {
        self.str(name).ok_or_else(|| missing(name))
    }

    fn strings(&self, name: &str) -> Vec<String> {
        match self.get(name) {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            Some(Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        }
    }

    fn int(&self, name: &str) -> Result<Option<i64>, AwsError> {
        match self.str(name) {
            None => Ok(None),
            Some(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| invalid(format!("Invalid value '{text}' for {name}: it must be an integer"))),
        }
    }

    fn bool(&self, name: &str) -> Option<bool> {
        self.str(name).map(|v| v.eq_ignore_ascii_case("true"))
    }

    fn list(&self, name: &str) -> Vec<&Value> {
        match self.get(name) {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(other @ Value::Object(_)) => vec![other],
            _ => Vec::new(),
        }
    }
}

/// `Filter.N.Name` / `Filter.N.Value.M`, in order.
pub fn filters(input: &Value) -> Vec<(String, Vec<String>)> {
    input
        .list("Filter")
        .into_iter()
        .filter_map(|f| Some((f.str("Name")?.to_owned(), f.strings("Value"))))
        .collect()
}

/// Tags of `TagSpecification.N` for `resource_type` (`instance`, `spot-instances-request` …).
pub fn tags_for(input: &Value, resource_type: &str) -> Vec<(String, String)> {
    input
        .list("TagSpecification")
        .into_iter()
        .filter(|spec| spec.str("ResourceType").is_none_or(|t| t == resource_type))
        .flat_map(|spec| spec.list("Tag"))
        .filter_map(|tag| Some((tag.str("Key")?.to_owned(), tag.str("Value").unwrap_or("").to_owned())))
        .collect()
}

/// EC2's filter values: `*` any run of characters, `?` one character, `\` escapes.
/// Linear in the lengths (the last `*` is the only backtracking point), so no pattern of stars
/// can make a request slow.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    // The pattern as tokens: Some(c) a literal (escapes resolved), None a `*`, '?' kept apart.
    enum Token {
        Literal(char),
        One,
        Any,
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '*' => Token::Any,
            '?' => Token::One,
            '\\' => Token::Literal(chars.next().unwrap_or('\\')),
            c => Token::Literal(c),
        });
    }
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Token::One) => {
                p += 1;
                t += 1;
            }
            Some(Token::Literal(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|token| matches!(token, Token::Any))
}

/// Whether any of `values` matches any of the filter's patterns.
pub fn any_matches(patterns: &[String], values: &[String]) -> bool {
    patterns.iter().any(|p| values.iter().any(|v| wildcard(p, v)))
}

/// A page of a lazily made sequence (one that may be far longer than anyone reads): only the
/// items up to the end of the page are made.
pub fn page_iter<T>(
    input: &Value,
    items: impl Iterator<Item = T>,
    min: i64,
    max: i64,
) -> Result<(Vec<T>, Option<String>), AwsError> {
    let (size, start) = page_bounds(input, min, max)?;
    let mut items = items.skip(start);
    let page: Vec<T> = items.by_ref().take(size).collect();
    let next = items.next().is_some().then(|| (start + size).to_string());
    Ok((page, next))
}

fn page_bounds(input: &Value, min: i64, max: i64) -> Result<(usize, usize), AwsError> {
    let size = match input.int("MaxResults")? {
        None => max,
        Some(n) if (min..=max).contains(&n) => n,
        Some(n) => {
            return Err(invalid(format!(
            "Value ( {n} ) for parameter maxResults is invalid. Expecting a value between {min} and {max}."
        )))
        }
    } as usize;
    let start = match input.str("NextToken") {
        None | Some("") => 0,
        Some(token) => token.parse::<usize>().map_err(|_| {
            AwsError::new(400, "InvalidNextToken", format!("The token '{token}' is invalid."))
        })?,
    };
    Ok((size, start))
}

/// A page of `items` from `NextToken` (an offset), `MaxResults` within `min..=max` (default
/// `max`): the page and the next token.
pub fn page<T>(
    input: &Value,
    items: Vec<T>,
    min: i64,
    max: i64,
) -> Result<(Vec<T>, Option<String>), AwsError> {
    page_iter(input, items.into_iter(), min, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_and_member_lists_become_arrays() {
        let body = "Action=RunInstances&Version=2016-11-15&InstanceId.2=b&InstanceId.1=a\
            &Filter.1.Name=instance-type&Filter.1.Value.1=t3.*&Filter.1.Value.2=m5.large\
            &TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=Name\
            &TagSpecification.1.Tag.1.Value=web+1&Tags.member.1.Key=k";
        let (action, input) = parse(None, body.as_bytes()).unwrap();
        assert_eq!(action, "RunInstances");
        assert_eq!(input.strings("InstanceId"), ["a", "b"]);
        assert_eq!(
            filters(&input),
            [("instance-type".to_owned(), vec!["t3.*".to_owned(), "m5.large".to_owned()])]
        );
        assert_eq!(tags_for(&input, "instance"), [("Name".to_owned(), "web 1".to_owned())]);
        assert_eq!(input["Tags"][0]["Key"], "k");
    }

    #[test]
    fn wildcards_follow_ec2() {
        assert!(wildcard("t3.*", "t3.micro"));
        assert!(wildcard("?3.micro", "t3.micro"));
        assert!(!wildcard("t3.*", "t3a"));
        assert!(wildcard("a\\*", "a*"));
        assert!(!wildcard("a\\*", "ab"));
        assert!(wildcard("*a*b?", "xxaxxbz"));
        assert!(wildcard("", "") && !wildcard("", "x") && wildcard("*", ""));
        let stars = "*a".repeat(200) + "b";
        assert!(!wildcard(&stars, &"a".repeat(300)));
    }
}
