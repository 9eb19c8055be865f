//! The value grammar of a run configuration file: the strings that stand for `policy!`'s constructor
//! values, written as in the macro.
//!
//! ```text
//! expr  := term ('+' term)*                         0.8 * grpo(clip = 0.2) + 0.2 * reinforce
//! term  := number '*' atom | atom
//! atom  := name ['(' [opt (',' opt)*] ')'] | number | string | '[' [atom (',' atom)*] ']'
//! opt   := name '=' expr                            init = Tweedie(steps = 16)
//! name  := [A-Za-z_][A-Za-z0-9_]*     number := Rust/TOML float or integer (`1e-3`, `1_000`)
//! ```

use sepo_core::{Error, Result};

/// A parsed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number, and whether it was written as an integer.
    Number(f64, bool),
    /// A quoted string.
    Str(String),
    /// `[a, b, ..]`.
    List(Vec<Value>),
    /// `Name` or `Name(opt = value, ..)`.
    Call(Call),
    /// `w1 * a + w2 * b + ..` (two terms or more, or one with a weight).
    Sum(Vec<(Option<f64>, Value)>),
}

/// `Name(opt = value, ..)`; a bare `Name` has no options.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The name as written.
    pub name: String,
    /// The options in order.
    pub options: Vec<(String, Value)>,
}

impl Value {
    /// What the value looks like, for error messages.
    pub fn describe(&self) -> String {
        match self {
            Value::Number(v, _) => format!("the number {v}"),
            Value::Str(s) => format!("the string {s:?}"),
            Value::List(_) => "a list".into(),
            Value::Call(c) => format!("`{}`", c.name),
            Value::Sum(_) => "a weighted sum".into(),
        }
    }

    /// The terms of a sum, a lone value being one term of no weight.
    pub fn terms(&self) -> Vec<(Option<f64>, &Value)> {
        match self {
            Value::Sum(terms) => terms.iter().map(|(w, v)| (*w, v)).collect(),
            other => vec![(None, other)],
        }
    }
}

/// Parses `text`, the value of `key`; a syntax error is [`Error::Config`] naming `key`.
pub fn parse(key: &str, text: &str) -> Result<Value> {
    let mut p = Parser {
        key,
        chars: text.chars().collect(),
        at: 0,
    };
    let value = p.expr()?;
    p.skip_ws();
    if p.at < p.chars.len() {
        return Err(p.error(format!("unexpected `{}`", p.rest())));
    }
    Ok(value)
}

struct Parser<'a> {
    key: &'a str,
    chars: Vec<char>,
    at: usize,
}

impl Parser<'_> {
    fn error(&self, what: String) -> Error {
        let text: String = self.chars.iter().collect();
        Error::Config {
            key: self.key.to_string(),
            reason: format!("cannot read {text:?}: {what} (at character {})", self.at),
        }
    }

    fn rest(&self) -> String {
        self.chars[self.at..].iter().take(12).collect()
    }

    fn skip_ws(&mut self) {
        while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.chars.get(self.at).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Result<Value> {
        let mut terms = vec![self.term()?];
        while self.eat('+') {
            terms.push(self.term()?);
        }
        Ok(match terms.as_slice() {
            [(None, _)] => terms.pop().expect("one term").1,
            _ => Value::Sum(terms),
        })
    }

    fn term(&mut self) -> Result<(Option<f64>, Value)> {
        let atom = self.atom()?;
        if let Value::Number(w, _) = atom {
            if self.eat('*') {
                return Ok((Some(w), self.atom()?));
            }
        }
        Ok((None, atom))
    }

    fn atom(&mut self) -> Result<Value> {
        match self.peek() {
            None => Err(self.error("a value is missing".into())),
            Some('"') => self.string(),
            Some('[') => {
                self.at += 1;
                let mut items = Vec::new();
                if !self.eat(']') {
                    loop {
                        items.push(self.atom()?);
                        if self.eat(']') {
                            break;
                        }
                        if !self.eat(',') {
                            return Err(self.error("expected `,` or `]`".into()));
                        }
                    }
                }
                Ok(Value::List(items))
            }
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => self.number(),
            Some(c) if c.is_alphabetic() || c == '_' => self.call(),
            Some(c) => Err(self.error(format!("unexpected `{c}`"))),
        }
    }

    fn string(&mut self) -> Result<Value> {
        self.at += 1;
        let start = self.at;
        while let Some(&c) = self.chars.get(self.at) {
            if c == '"' {
                let s = self.chars[start..self.at].iter().collect();
                self.at += 1;
                return Ok(Value::Str(s));
            }
            self.at += 1;
        }
        Err(self.error("unterminated string".into()))
    }

    fn number(&mut self) -> Result<Value> {
        let start = self.at;
        while let Some(&c) = self.chars.get(self.at) {
            let exponent_sign = (c == '-' || c == '+')
                && self.at > start
                && matches!(self.chars[self.at - 1], 'e' | 'E');
            if c.is_ascii_alphanumeric()
                || c == '.'
                || c == '_'
                || exponent_sign
                || self.at == start
            {
                self.at += 1;
            } else {
                break;
            }
        }
        let written: String = self.chars[start..self.at].iter().collect();
        let clean = written.replace('_', "");
        let int = !clean.contains(['.', 'e', 'E']);
        match clean.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Value::Number(v, int)),
            Ok(v) => Err(self.error(format!("the number `{written}` is {v}, not finite"))),
            Err(_) => Err(self.error(format!("`{written}` is not a number"))),
        }
    }

    fn name(&mut self) -> String {
        let start = self.at;
        while self
            .chars
            .get(self.at)
            .is_some_and(|c| c.is_alphanumeric() || *c == '_')
        {
            self.at += 1;
        }
        self.chars[start..self.at].iter().collect()
    }

    fn call(&mut self) -> Result<Value> {
        let name = self.name();
        let mut options = Vec::new();
        if self.eat('(') && !self.eat(')') {
            loop {
                self.skip_ws();
                let option = self.name();
                if option.is_empty() {
                    return Err(self.error(format!("expected an option name in `{name}(..)`")));
                }
                if !self.eat('=') {
                    return Err(self.error(format!("expected `=` after `{option}`")));
                }
                options.push((option, self.expr()?));
                if self.eat(')') {
                    break;
                }
                if !self.eat(',') {
                    return Err(self.error("expected `,` or `)`".into()));
                }
            }
        }
        Ok(Value::Call(Call { name, options }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, options: Vec<(&str, Value)>) -> Value {
        Value::Call(Call {
            name: name.into(),
            options: options
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        })
    }

    #[test]
    fn reads_the_macro_spelling() {
        assert_eq!(parse("k", "Absorbing").unwrap(), call("Absorbing", vec![]));
        assert_eq!(
            parse("k", "Flow(init = Tweedie(steps = 1_000), eps = 1e-3)").unwrap(),
            call(
                "Flow",
                vec![
                    (
                        "init",
                        call("Tweedie", vec![("steps", Value::Number(1000.0, true))])
                    ),
                    ("eps", Value::Number(1e-3, false)),
                ]
            )
        );
        assert_eq!(
            parse("k", "0.8 * grpo(clip = 0.2) + 0.2 * reinforce").unwrap(),
            Value::Sum(vec![
                (
                    Some(0.8),
                    call("grpo", vec![("clip", Value::Number(0.2, false))])
                ),
                (Some(0.2), call("reinforce", vec![])),
            ])
        );
        assert_eq!(
            parse("k", r#"m(motif = [3, 0], dir = "a b")"#).unwrap(),
            call(
                "m",
                vec![
                    (
                        "motif",
                        Value::List(vec![Value::Number(3.0, true), Value::Number(0.0, true)])
                    ),
                    ("dir", Value::Str("a b".into())),
                ]
            )
        );
    }

    #[test]
    fn syntax_errors_name_the_key() {
        for bad in [
            "Tweedie(steps 3)",
            "Tweedie(steps = 3",
            "a b",
            "x(y = 1e999)",
            "",
        ] {
            match parse("sampler", bad) {
                Err(Error::Config { key, .. }) => assert_eq!(key, "sampler"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
