//! Wildcard patterns with policy variables, compiled once and matched without allocating.
//!
//! The same machinery serves Action (wildcards, no variables, ASCII case folded), Resource and the ARN
//! operators (matched one colon-separated ARN segment at a time), and the string operators.
//! A variable (`${aws:username}`) is replaced by the request's single value for that key, or by its default
//! (`${aws:PrincipalTag/team, 'none'}`); substituted text is always literal, never a wildcard.
//! The escapes `${*}`, `${?}` and `${$}` stand for the literal characters.

use crate::context::ConditionContext;

/// How characters compare: exactly, ignoring ASCII case (action names), or ignoring Unicode case
/// (the `IgnoreCase` string operators).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fold {
    Exact,
    Ascii,
    Unicode,
}

/// Which special syntax a policy element understands.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Syntax {
    /// `*` and `?` are wildcards rather than literal characters.
    pub(crate) wildcards: bool,
    /// `${...}` is a policy variable (only in version 2012-10-17 policies).
    pub(crate) variables: bool,
}

/// A policy variable: the lowercased context key to substitute, and the text to use when it is absent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Variable {
    key: Box<str>,
    default: Option<Box<str>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Text(String),
    Star,
    One,
    Variable(Variable),
}

#[derive(Debug, Clone)]
enum Piece {
    Text(Box<str>),
    Star,
    One,
    /// An index into the pattern's variables.
    Variable(usize),
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    shape: Shape,
    fold: Fold,
    pieces: Box<[Piece]>,
    variables: Box<[Variable]>,
}

#[derive(Debug, Clone)]
enum Shape {
    /// A lone `*`.
    Anything,
    /// No wildcards and no variables: a plain comparison.
    Literal(Box<str>),
    General,
}

/// A compiled ARN pattern, one pattern per colon-separated segment, so that a wildcard never reaches across
/// a colon. The last segment takes the rest of the ARN, colons included: the sixth (the resource, which may
/// contain colons) in a full ARN pattern, or the whole text for `*`.
#[derive(Debug, Clone)]
pub(crate) struct ArnPattern {
    segments: Box<[Pattern]>,
}

/// The number of colon-separated segments in an ARN.
const ARN_SEGMENTS: usize = 6;

impl Pattern {
    /// Compiles `text`; the error says what is wrong with a variable.
    pub(crate) fn compile(text: &str, syntax: Syntax, fold: Fold) -> Result<Pattern, String> {
        let tokens = tokenize(text, syntax)?;
        Ok(Pattern::from_tokens(tokens, fold))
    }

    fn from_tokens(tokens: Vec<Token>, fold: Fold) -> Pattern {
        let mut pieces = Vec::new();
        let mut variables = Vec::new();
        for token in tokens {
            let piece = match token {
                Token::Text(text) => match fold {
                    Fold::Ascii => Piece::Text(text.to_ascii_lowercase().into()),
                    Fold::Exact | Fold::Unicode => Piece::Text(text.into()),
                },
                Token::Star => Piece::Star,
                Token::One => Piece::One,
                Token::Variable(variable) => {
                    variables.push(variable);
                    Piece::Variable(variables.len() - 1)
                }
            };
            pieces.push(piece);
        }
        let shape = match pieces.as_slice() {
            [Piece::Star] => Shape::Anything,
            [] => Shape::Literal("".into()),
            [Piece::Text(text)] => Shape::Literal(text.clone()),
            _ => Shape::General,
        };
        Pattern {
            shape,
            fold,
            pieces: pieces.into(),
            variables: variables.into(),
        }
    }

    /// Whether the pattern matches all of `text`, with variables taken from `context`.
    /// A variable that has no single value in the context and no default matches nothing.
    pub(crate) fn matches(&self, text: &str, context: &dyn ConditionContext) -> bool {
        match &self.shape {
            Shape::Anything => true,
            Shape::Literal(literal) => text_equals(literal, text, self.fold),
            Shape::General => self.matches_general(text, context),
        }
    }

    fn matches_general(&self, text: &str, context: &dyn ConditionContext) -> bool {
        const INLINE: usize = 4;
        if self.variables.len() <= INLINE {
            let mut resolved = [""; INLINE];
            for (slot, variable) in resolved.iter_mut().zip(self.variables.iter()) {
                match variable.resolve(context) {
                    Some(value) => *slot = value,
                    None => return false,
                }
            }
            return glob(&self.pieces, &resolved, text, self.fold);
        }
        let mut resolved = Vec::with_capacity(self.variables.len());
        for variable in self.variables.iter() {
            match variable.resolve(context) {
                Some(value) => resolved.push(value),
                None => return false,
            }
        }
        glob(&self.pieces, &resolved, text, self.fold)
    }
}

impl ArnPattern {
    /// Compiles an ARN pattern (case-sensitive, as ARNs are).
    pub(crate) fn compile(text: &str, syntax: Syntax) -> Result<ArnPattern, String> {
        let tokens = tokenize(text, syntax)?;
        let mut segments: Vec<Vec<Token>> = vec![Vec::new()];
        for token in tokens {
            match token {
                Token::Text(text) => {
                    for character in text.chars() {
                        if character == ':' && segments.len() < ARN_SEGMENTS {
                            segments.push(Vec::new());
                            continue;
                        }
                        push_character(segments.last_mut(), character);
                    }
                }
                other => {
                    if let Some(segment) = segments.last_mut() {
                        segment.push(other);
                    }
                }
            }
        }
        let segments = segments
            .into_iter()
            .map(|segment| Pattern::from_tokens(segment, Fold::Exact))
            .collect();
        Ok(ArnPattern { segments })
    }

    /// Whether the pattern matches the ARN `text`, segment by segment.
    pub(crate) fn matches(&self, text: &str, context: &dyn ConditionContext) -> bool {
        let mut parts = text.splitn(self.segments.len(), ':');
        for segment in self.segments.iter() {
            match parts.next() {
                Some(part) if segment.matches(part, context) => {}
                _ => return false,
            }
        }
        true
    }
}

fn push_character(segment: Option<&mut Vec<Token>>, character: char) {
    let segment = match segment {
        Some(segment) => segment,
        None => return,
    };
    match segment.last_mut() {
        Some(Token::Text(text)) => text.push(character),
        _ => segment.push(Token::Text(character.to_string())),
    }
}

impl Variable {
    fn resolve<'a>(&'a self, context: &'a dyn ConditionContext) -> Option<&'a str> {
        match context.values(&self.key) {
            Some([single]) => Some(single.as_str()),
            _ => self.default.as_deref(),
        }
    }
}

/// Splits `text` into literal text, wildcards and variables.
fn tokenize(text: &str, syntax: Syntax) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(character) = rest.chars().next() {
        if syntax.variables && rest.starts_with("${") {
            let (token, consumed) = parse_variable(&rest[2..])?;
            match token {
                Token::Text(escaped) => literal.push_str(&escaped),
                variable => {
                    flush(&mut literal, &mut tokens);
                    tokens.push(variable);
                }
            }
            rest = &rest[2 + consumed..];
            continue;
        }
        rest = &rest[character.len_utf8()..];
        match character {
            '*' if syntax.wildcards => {
                flush(&mut literal, &mut tokens);
                tokens.push(Token::Star);
            }
            '?' if syntax.wildcards => {
                flush(&mut literal, &mut tokens);
                tokens.push(Token::One);
            }
            _ => literal.push(character),
        }
    }
    flush(&mut literal, &mut tokens);
    Ok(tokens)
}

fn flush(literal: &mut String, tokens: &mut Vec<Token>) {
    if !literal.is_empty() {
        tokens.push(Token::Text(std::mem::take(literal)));
    }
}

/// Parses the inside of `${...}` (`rest` starts just after `${`); returns the token and the bytes consumed,
/// including the closing brace.
fn parse_variable(rest: &str) -> Result<(Token, usize), String> {
    let mut in_quotes = false;
    let mut end = None;
    for (index, character) in rest.char_indices() {
        match character {
            '\'' => in_quotes = !in_quotes,
            '}' if !in_quotes => {
                end = Some(index);
                break;
            }
            _ => {}
        }
    }
    let end = match end {
        Some(end) => end,
        None => return Err("a policy variable '${' is not closed with '}'".to_owned()),
    };
    let inner = &rest[..end];
    let consumed = end + 1;
    match inner.trim() {
        "*" | "?" | "$" => return Ok((Token::Text(inner.trim().to_owned()), consumed)),
        _ => {}
    }
    let (key, default) = match inner.split_once(',') {
        Some((key, default)) => (key.trim(), Some(default.trim())),
        None => (inner.trim(), None),
    };
    let key_is_valid = !key.is_empty()
        && key
            .chars()
            .all(|c| !c.is_whitespace() && !matches!(c, '$' | '{' | '}' | '\'' | '*' | '?'));
    if !key_is_valid {
        return Err(format!(
            "the policy variable '${{{inner}}}' has no valid key name"
        ));
    }
    let default = match default {
        None => None,
        Some(default) => {
            let quoted = default.len() >= 2
                && default.starts_with('\'')
                && default.ends_with('\'')
                && !default[1..default.len() - 1].contains('\'');
            if !quoted {
                return Err(format!(
                    "the default value in the policy variable '${{{inner}}}' must be in single quotes"
                ));
            }
            Some(default[1..default.len() - 1].into())
        }
    };
    let variable = Variable {
        key: key.to_lowercase().into(),
        default,
    };
    Ok((Token::Variable(variable), consumed))
}

fn text_equals(pattern: &str, text: &str, fold: Fold) -> bool {
    match fold {
        Fold::Exact => pattern == text,
        Fold::Ascii => pattern.eq_ignore_ascii_case(text),
        Fold::Unicode => pattern
            .chars()
            .flat_map(char::to_lowercase)
            .eq(text.chars().flat_map(char::to_lowercase)),
    }
}

fn characters_equal(expected: char, actual: char, fold: Fold) -> bool {
    match fold {
        Fold::Exact => expected == actual,
        Fold::Ascii => expected.eq_ignore_ascii_case(&actual),
        Fold::Unicode => expected == actual || expected.to_lowercase().eq(actual.to_lowercase()),
    }
}

/// A position inside a pattern: a piece, and a byte offset inside that piece's text.
#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    piece: usize,
    offset: usize,
}

enum Element {
    End,
    Star,
    One,
    Character(char),
}

/// The pattern element at `cursor`, and the cursor just past it.
fn element_at(pieces: &[Piece], resolved: &[&str], cursor: Cursor) -> (Element, Cursor) {
    let mut cursor = cursor;
    loop {
        let next_piece = Cursor {
            piece: cursor.piece + 1,
            offset: 0,
        };
        let text: &str = match pieces.get(cursor.piece) {
            None => return (Element::End, cursor),
            Some(Piece::Star) => return (Element::Star, next_piece),
            Some(Piece::One) => return (Element::One, next_piece),
            Some(Piece::Text(text)) => text,
            Some(Piece::Variable(index)) => resolved.get(*index).copied().unwrap_or_default(),
        };
        match text
            .get(cursor.offset..)
            .and_then(|rest| rest.chars().next())
        {
            Some(character) => {
                let next = Cursor {
                    piece: cursor.piece,
                    offset: cursor.offset + character.len_utf8(),
                };
                return (Element::Character(character), next);
            }
            None => cursor = next_piece,
        }
    }
}

/// Matches `text` against the pieces: the classic wildcard algorithm that, on a mismatch, lets the most
/// recent `*` swallow one more character. Linear in space, O(pattern × text) in time at worst.
fn glob(pieces: &[Piece], resolved: &[&str], text: &str, fold: Fold) -> bool {
    let mut cursor = Cursor::default();
    let mut position = 0;
    let mut restart: Option<(Cursor, usize)> = None;
    loop {
        let (element, next) = element_at(pieces, resolved, cursor);
        let current = text[position..].chars().next();
        let advanced = match (element, current) {
            (Element::End, None) => return true,
            (Element::End, Some(_)) => None,
            (Element::Star, _) => {
                restart = Some((next, position));
                cursor = next;
                continue;
            }
            (Element::One, Some(actual)) => Some(position + actual.len_utf8()),
            (Element::Character(expected), Some(actual))
                if characters_equal(expected, actual, fold) =>
            {
                Some(position + actual.len_utf8())
            }
            (Element::One | Element::Character(_), _) => None,
        };
        match advanced {
            Some(after) => {
                position = after;
                cursor = next;
            }
            None => match restart {
                Some((after_star, start)) if start < text.len() => {
                    let width = text[start..].chars().next().map_or(1, char::len_utf8);
                    restart = Some((after_star, start + width));
                    cursor = after_star;
                    position = start + width;
                }
                _ => return false,
            },
        }
    }
}

#[cfg(test)]
mod tests;
