//! Pretty-printing that keeps a payload as the function wrote it.
//!
//! Going through `serde_json::Value` would sort the keys (the workspace's serde_json does not
//! preserve order) and could rewrite numbers, so payloads are re-indented as text instead.

/// Indents valid JSON by two spaces per level, like `serde_json::to_string_pretty`, keeping key
/// order and number spelling. `None` when the text is not JSON.
pub fn indent(text: &str) -> Option<String> {
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let (mut in_string, mut escaped) = (false, false);
    let mut chars = text.trim().chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                while chars.next_if(|next| next.is_whitespace()).is_some() {}
                out.push(c);
                if let Some(close) = chars.next_if(|&next| next == '}' || next == ']') {
                    out.push(close);
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::indent;

    #[test]
    fn keeps_order_numbers_and_strings() {
        let text = r#" {"z": 1.50, "a": [ ], "s": "a,b:{\"c\"}", "o": {"k": [1, {}]}} "#;
        let expected = "{\n  \"z\": 1.50,\n  \"a\": [],\n  \"s\": \"a,b:{\\\"c\\\"}\",\n  \"o\": {\n    \"k\": [\n      1,\n      {}\n    ]\n  }\n}";
        assert_eq!(indent(text).as_deref(), Some(expected));
    }

    #[test]
    fn matches_serde_json_on_sorted_input() {
        let value = serde_json::json!({"a": [1, 2, {"b": null}], "c": {"d": "e"}, "f": []});
        assert_eq!(indent(&value.to_string()).unwrap(), serde_json::to_string_pretty(&value).unwrap());
    }

    #[test]
    fn rejects_what_is_not_json() {
        assert_eq!(indent("hello"), None);
        assert_eq!(indent("{\"a\":"), None);
    }
}
