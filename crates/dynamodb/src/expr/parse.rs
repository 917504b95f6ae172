//! Recursive descent over the tokens: conditions (OR < AND < NOT < comparisons and functions),
//! operands and document paths, projections. Names and values are substituted as they are met.

use std::sync::OnceLock;

use super::lex::{lex, syntax, Tok};
use super::{Cmp, Cond, Ctx, Elem, Operand, Path};
use crate::error::{validation, DdbError, Result};
use crate::value::Av;

pub struct Parser<'c> {
    pub ctx: &'c mut Ctx,
    pub kind: String,
    text: String,
    toks: Vec<Tok>,
    pos: usize,
    /// Nesting so far (parentheses, NOT, functions): bounded, so no input can exhaust the stack.
    pub depth: usize,
}

const MAX_EXPRESSION_BYTES: usize = 4096;
const MAX_DEPTH: usize = 64;

fn reserved(word: &str) -> bool {
    static WORDS: OnceLock<std::collections::HashSet<&'static str>> = OnceLock::new();
    WORDS
        .get_or_init(|| include_str!("reserved.txt").split_whitespace().collect())
        .contains(word.to_ascii_uppercase().as_str())
}

const VALID_TYPES: [&str; 10] = ["S", "SS", "N", "NS", "B", "BS", "BOOL", "NULL", "L", "M"];

impl<'c> Parser<'c> {
    pub fn new(ctx: &'c mut Ctx, kind: &str, text: &str) -> Result<Parser<'c>> {
        if text.trim().is_empty() {
            return Err(validation(format!("Invalid {kind}: The expression can not be empty;")));
        }
        if text.len() > MAX_EXPRESSION_BYTES {
            return Err(validation(format!(
                "Invalid {kind}: Expression size has exceeded the maximum allowed size; size: {}",
                text.len()
            )));
        }
        Ok(Parser {
            toks: lex(kind, text)?,
            ctx,
            kind: kind.to_owned(),
            text: text.to_owned(),
            pos: 0,
            depth: 0,
        })
    }

    /// Enters one level of nesting.
    pub fn deeper(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.invalid("The expression has redundant parentheses or is nested too deeply;"));
        }
        Ok(())
    }

    pub fn peek(&self) -> &Tok {
        self.toks.get(self.pos).unwrap_or(&Tok::Eof)
    }

    pub fn peek_at(&self, ahead: usize) -> &Tok {
        self.toks.get(self.pos + ahead).unwrap_or(&Tok::Eof)
    }

    pub fn next(&mut self) -> Tok {
        let tok = self.peek().clone();
        self.pos += 1;
        tok
    }

    pub fn error(&self) -> DdbError {
        let tok = self.peek().show();
        let near: String = {
            let end = (self.pos + 1).min(self.toks.len());
            let start = self.pos.saturating_sub(1).min(end);
            let shown: Vec<String> =
                self.toks[start..end].iter().filter(|t| **t != Tok::Eof).map(Tok::show).collect();
            if shown.is_empty() {
                self.text.clone()
            } else {
                shown.join(" ")
            }
        };
        syntax(&self.kind, &tok, &near)
    }

    pub fn invalid(&self, message: impl std::fmt::Display) -> DdbError {
        validation(format!("Invalid {}: {message}", self.kind))
    }

    pub fn expect(&mut self, sym: &str) -> Result<()> {
        match self.peek() {
            Tok::Sym(s) if *s == sym => {
                self.next();
                Ok(())
            }
            _ => Err(self.error()),
        }
    }

    pub fn eat(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Tok::Sym(s) if *s == sym) {
            self.next();
            return true;
        }
        false
    }

    pub fn end(&self) -> Result<()> {
        match self.peek() {
            Tok::Eof => Ok(()),
            _ => Err(self.error()),
        }
    }

    pub fn condition_expression(mut self) -> Result<Cond> {
        let cond = self.or()?;
        self.end()?;
        Ok(cond)
    }

    pub fn projection(mut self) -> Result<Vec<Path>> {
        let mut paths = vec![self.path()?];
        while self.eat(",") {
            paths.push(self.path()?);
        }
        self.end()?;
        Ok(paths)
    }

    fn or(&mut self) -> Result<Cond> {
        let mut left = self.and()?;
        while self.peek().is_word("OR") {
            self.next();
            left = Cond::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Cond> {
        let mut left = self.not()?;
        while self.peek().is_word("AND") {
            self.next();
            left = Cond::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Cond> {
        if self.peek().is_word("NOT") {
            self.next();
            self.deeper()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Cond::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Cond> {
        if self.eat("(") {
            self.deeper()?;
            let cond = self.or()?;
            self.expect(")")?;
            self.depth -= 1;
            return Ok(cond);
        }
        if let (Tok::Word(word), Tok::Sym("(")) = (self.peek().clone(), self.peek_at(1).clone()) {
            if word != "size" {
                return self.function(&word);
            }
        }
        let left = self.operand()?;
        if self.peek().is_word("BETWEEN") {
            self.next();
            let low = self.operand()?;
            if !self.peek().is_word("AND") {
                return Err(self.error());
            }
            self.next();
            let high = self.operand()?;
            if let (Operand::Value(l), Operand::Value(h)) = (&low, &high) {
                if l.type_name() != h.type_name() || super::eval::compare(l, h).is_none_or(|o| o.is_gt()) {
                    return Err(self.invalid(format!(
                        "The BETWEEN operator requires upper bound to be greater than or equal to lower bound; lower bound operand: AttributeValue: {{{}:{}}}, upper bound operand: AttributeValue: {{{}:{}}}",
                        l.type_name(), show_scalar(l), h.type_name(), show_scalar(h)
                    )));
                }
            }
            return Ok(Cond::Between(left, low, high));
        }
        if self.peek().is_word("IN") {
            self.next();
            self.expect("(")?;
            let mut list = vec![self.operand()?];
            while self.eat(",") {
                list.push(self.operand()?);
            }
            self.expect(")")?;
            if list.len() > 100 {
                return Err(self.invalid(
                    "The IN operator is provided with too many operands; number of operands: ".to_owned()
                        + &list.len().to_string(),
                ));
            }
            return Ok(Cond::In(left, list));
        }
        let cmp = match self.next() {
            Tok::Sym("=") => Cmp::Eq,
            Tok::Sym("<>") => Cmp::Ne,
            Tok::Sym("<") => Cmp::Lt,
            Tok::Sym("<=") => Cmp::Le,
            Tok::Sym(">") => Cmp::Gt,
            Tok::Sym(">=") => Cmp::Ge,
            _ => {
                self.pos -= 1;
                return Err(self.error());
            }
        };
        let right = self.operand()?;
        Ok(Cond::Cmp(left, cmp, right))
    }

    fn function(&mut self, name: &str) -> Result<Cond> {
        self.next();
        self.expect("(")?;
        let cond = match name {
            "attribute_exists" => Cond::Exists(self.path()?),
            "attribute_not_exists" => Cond::NotExists(self.path()?),
            "attribute_type" => {
                let path = self.path()?;
                self.expect(",")?;
                let kind = self.operand()?;
                if let Operand::Value(value) = &kind {
                    match value {
                        Av::S(t) if VALID_TYPES.contains(&t.as_str()) => {}
                        Av::S(t) => {
                            return Err(self.invalid(format!(
                                "Invalid attribute type name found; type: {t}, valid types: {{B,NULL,SS,BOOL,L,BS,N,NS,S,M}}"
                            )))
                        }
                        other => return Err(self.operand_type("attribute_type", other)),
                    }
                }
                Cond::Type(path, kind)
            }
            "begins_with" => {
                let path = self.operand()?;
                self.expect(",")?;
                let prefix = self.operand()?;
                if let Operand::Value(value) = &prefix {
                    if !matches!(value, Av::S(_) | Av::B(_)) {
                        return Err(self.operand_type("begins_with", value));
                    }
                }
                Cond::BeginsWith(path, prefix)
            }
            "contains" => {
                let path = self.operand()?;
                self.expect(",")?;
                Cond::Contains(path, self.operand()?)
            }
            other => return Err(self.invalid(format!("Invalid function name; function: {other}"))),
        };
        self.expect(")")?;
        Ok(cond)
    }

    pub fn operand_type(&self, function: &str, value: &Av) -> DdbError {
        self.invalid(format!(
            "Incorrect operand type for operator or function; operator or function: {function}, operand type: {}",
            long_type(value)
        ))
    }

    pub fn operand(&mut self) -> Result<Operand> {
        match self.peek().clone() {
            Tok::Value(_) => Ok(Operand::Value(self.value()?)),
            Tok::Word(w) if w == "size" && self.peek_at(1) == &Tok::Sym("(") => {
                self.next();
                self.next();
                let path = self.path()?;
                self.expect(")")?;
                Ok(Operand::Size(path))
            }
            Tok::Word(w) if self.peek_at(1) == &Tok::Sym("(") => {
                Err(self.invalid(format!("Invalid function name; function: {w}")))
            }
            _ => Ok(Operand::Path(self.path()?)),
        }
    }

    pub fn value(&mut self) -> Result<Av> {
        match self.next() {
            Tok::Value(name) => {
                let value = self.ctx.values.get(&name).cloned().ok_or_else(|| {
                    self.invalid(format!(
                        "An expression attribute value used in expression is not defined; attribute value: {name}"
                    ))
                })?;
                self.ctx.used_values.insert(name);
                Ok(value)
            }
            _ => {
                self.pos -= 1;
                Err(self.error())
            }
        }
    }

    pub fn path(&mut self) -> Result<Path> {
        let mut path = vec![Elem::Name(self.name()?)];
        loop {
            if self.eat(".") {
                path.push(Elem::Name(self.name()?));
            } else if self.eat("[") {
                match self.next() {
                    Tok::Int(n) => {
                        let index = n.parse().map_err(|_| self.error())?;
                        path.push(Elem::Index(index));
                    }
                    _ => {
                        self.pos -= 1;
                        return Err(self.error());
                    }
                }
                self.expect("]")?;
            } else {
                return Ok(path);
            }
        }
    }

    fn name(&mut self) -> Result<String> {
        match self.next() {
            Tok::Word(word) => {
                if reserved(&word) {
                    return Err(self
                        .invalid(format!("Attribute name is a reserved keyword; reserved keyword: {word}")));
                }
                Ok(word)
            }
            Tok::Name(name) => {
                let real = self.ctx.names.get(&name).cloned().ok_or_else(|| {
                    self.invalid(format!(
                        "An expression attribute name used in the document path is not defined; attribute name: {name}"
                    ))
                })?;
                self.ctx.used_names.insert(name);
                Ok(real)
            }
            _ => {
                self.pos -= 1;
                Err(self.error())
            }
        }
    }
}

/// AWS's long type names in operand-type messages.
pub fn long_type(value: &Av) -> &'static str {
    match value {
        Av::S(_) => "S",
        Av::N(_) => "N",
        Av::B(_) => "B",
        Av::Bool(_) => "BOOL",
        Av::Null => "NULL",
        Av::M(_) => "M",
        Av::L(_) => "L",
        Av::Ss(_) => "SS",
        Av::Ns(_) => "NS",
        Av::Bs(_) => "BS",
    }
}

fn show_scalar(value: &Av) -> String {
    match value {
        Av::S(s) => s.clone(),
        Av::N(n) => n.to_string(),
        other => other.to_json().to_string(),
    }
}
