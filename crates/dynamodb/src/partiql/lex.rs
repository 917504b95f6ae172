//! PartiQL's tokens: words, "quoted names", 'strings', numbers, `?` parameters, symbols.

use crate::error::{validation, DdbError, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Word(String),
    Quoted(String),
    Str(String),
    Num(String),
    Param,
    Sym(&'static str),
    Eof,
}

pub fn syntax(near: &str) -> DdbError {
    validation(format!("Statement wasn't well formed, can't be processed: unexpected token {near}"))
}

pub fn lex(text: &str) -> Result<Vec<Tok>> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let quoted = |i: &mut usize, quote: char| -> Result<String> {
            let mut s = String::new();
            *i += 1;
            loop {
                match chars.get(*i) {
                    None => {
                        return Err(validation(
                            "Statement wasn't well formed, can't be processed: unterminated quote",
                        ))
                    }
                    Some(&ch) if ch == quote && chars.get(*i + 1) == Some(&quote) => {
                        s.push(quote);
                        *i += 2;
                    }
                    Some(&ch) if ch == quote => {
                        *i += 1;
                        return Ok(s);
                    }
                    Some(&ch) => {
                        s.push(ch);
                        *i += 1;
                    }
                }
            }
        };
        let tok = match c {
            '\'' => Tok::Str(quoted(&mut i, '\'')?),
            '"' => Tok::Quoted(quoted(&mut i, '"')?),
            '?' => {
                i += 1;
                Tok::Param
            }
            c if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) => {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_digit()
                        || ".eE".contains(chars[i])
                        || ((chars[i] == '-' || chars[i] == '+') && "eE".contains(chars[i - 1])))
                {
                    i += 1;
                }
                Tok::Num(chars[start..i].iter().collect())
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                Tok::Word(chars[start..i].iter().collect())
            }
            _ => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let sym = ["<=", ">=", "<>", "!=", "<<", ">>"].into_iter().find(|s| *s == two);
                if let Some(sym) = sym {
                    i += 2;
                    Tok::Sym(sym)
                } else {
                    i += 1;
                    Tok::Sym(match c {
                        '(' => "(",
                        ')' => ")",
                        '[' => "[",
                        ']' => "]",
                        '{' => "{",
                        '}' => "}",
                        ',' => ",",
                        '.' => ".",
                        ':' => ":",
                        '=' => "=",
                        '<' => "<",
                        '>' => ">",
                        '+' => "+",
                        '-' => "-",
                        '*' => "*",
                        ';' => ";",
                        other => return Err(syntax(&other.to_string())),
                    })
                }
            }
        };
        out.push(tok);
    }
    out.push(Tok::Eof);
    Ok(out)
}
