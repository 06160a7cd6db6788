//! The reference grammar of variable values: `${queue:jobs}` (a queue's URL),
//! `${dlq:jobs}` (its dead-letter queue's URL), `${bucket:results}` (a bucket's
//! name); `${queue:api.jobs}` names another service's (`api`'s) queue.
//!
//! One grammar for the manifest checks, synth (an `Fn::Sub` string) and the local
//! cloud (the value a task gets): [`pieces`] splits a value, and each reader says
//! what a piece becomes. Every piece displays as the text it was read from, so a
//! value rendered with nothing replaced is the value itself.
//!
//! Invariants: a reference is `${` up to the first `}` after it; `${` with no `}`
//! after it ends the value's references (the rest is one [`Piece::Unclosed`]).

use std::fmt;

/// What a reference may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `${queue:NAME}`: the queue's URL.
    Queue,
    /// `${dlq:NAME}`: the URL of the queue's dead-letter queue.
    Dlq,
    /// `${bucket:NAME}`: the bucket's name.
    Bucket,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Queue, Kind::Dlq, Kind::Bucket];

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Queue => "queue",
            Kind::Dlq => "dlq",
            Kind::Bucket => "bucket",
        }
    }

    /// The manifest section that declares what it names.
    pub fn section(self) -> &'static str {
        match self {
            Kind::Queue | Kind::Dlq => "queues",
            Kind::Bucket => "buckets",
        }
    }
}

/// `${kind:name}`, as written: the kind may be one [`Kind`] does not know (the
/// checks say so), the name may be `OWNER.NAME`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reference<'a> {
    pub kind: &'a str,
    pub name: &'a str,
}

impl<'a> Reference<'a> {
    /// The kind, if it is one of the grammar's.
    pub fn known(&self) -> Option<Kind> {
        Kind::parse(self.kind)
    }

    /// `api.jobs` → `("api", "jobs")`; `None` for a name without an owner.
    pub fn owner(&self) -> Option<(&'a str, &'a str)> {
        self.name.split_once('.')
    }
}

impl fmt::Display for Reference<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${{{}:{}}}", self.kind, self.name)
    }
}

/// One piece of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Text outside `${…}`.
    Text(&'a str),
    /// `${kind:name}`.
    Ref(Reference<'a>),
    /// `${inner}` without a `:` (not a reference; the checks refuse it).
    Other(&'a str),
    /// A `${` with no `}` after it: the text after that `${`, to the value's end.
    Unclosed(&'a str),
}

impl fmt::Display for Piece<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Piece::Text(t) => f.write_str(t),
            Piece::Ref(r) => r.fmt(f),
            Piece::Other(inner) => write!(f, "${{{inner}}}"),
            Piece::Unclosed(rest) => write!(f, "${{{rest}"),
        }
    }
}

/// The pieces of `value`, in order; empty text is left out.
pub fn pieces(value: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            out.push(Piece::Text(&rest[..start]));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push(Piece::Unclosed(after));
            return out;
        };
        let inner = &after[..end];
        out.push(match inner.split_once(':') {
            Some((kind, name)) => Piece::Ref(Reference { kind, name }),
            None => Piece::Other(inner),
        });
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out
}

/// The references of `value`; `Err` says why a `${` is not one.
pub fn references(value: &str) -> Result<Vec<Reference<'_>>, String> {
    let mut out = Vec::new();
    for piece in pieces(value) {
        match piece {
            Piece::Text(_) => {}
            Piece::Ref(r) => out.push(r),
            Piece::Other(inner) => {
                return Err(format!(
                    "`${{{inner}}}` must be `${{queue:NAME}}`, `${{dlq:NAME}}` or `${{bucket:NAME}}`"
                ));
            }
            Piece::Unclosed(_) => return Err(format!("`{value}` has an unclosed `${{`")),
        }
    }
    Ok(out)
}

/// `value` with each reference `replace` gives a text for replaced by it; every
/// other piece is kept as written.
pub fn substitute(
    value: &str,
    mut replace: impl FnMut(&Reference<'_>) -> Option<String>,
) -> String {
    let mut out = String::with_capacity(value.len());
    for piece in pieces(value) {
        match &piece {
            Piece::Ref(r) => match replace(r) {
                Some(text) => out.push_str(&text),
                None => out.push_str(&piece.to_string()),
            },
            other => out.push_str(&other.to_string()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_splits_into_pieces_that_display_as_read() {
        for value in [
            "",
            "plain",
            "q=${queue:jobs} d=${dlq:api.jobs} b=${bucket:results}",
            "${HOME}/x",
            "a ${queue:x",
            "${a${queue:x}}",
            "${queue:jobs}${bucket:b}",
        ] {
            let shown: String = pieces(value).iter().map(|p| p.to_string()).collect();
            assert_eq!(shown, value);
            assert_eq!(substitute(value, |_| None), value);
        }
        assert_eq!(
            pieces("q=${queue:api.jobs}!"),
            vec![
                Piece::Text("q="),
                Piece::Ref(Reference {
                    kind: "queue",
                    name: "api.jobs"
                }),
                Piece::Text("!"),
            ]
        );
        assert_eq!(
            pieces("a ${b"),
            vec![Piece::Text("a "), Piece::Unclosed("b")]
        );
    }

    #[test]
    fn references_know_their_kind_and_owner() {
        let refs = references("${queue:api.jobs} ${dlq:jobs} ${secret:x}").unwrap_or_default();
        assert_eq!(refs.len(), 3);
        assert_eq!(refs[0].known(), Some(Kind::Queue));
        assert_eq!(refs[0].owner(), Some(("api", "jobs")));
        assert_eq!(refs[1].known(), Some(Kind::Dlq));
        assert_eq!(refs[1].owner(), None);
        assert_eq!(refs[2].known(), None);
        assert_eq!(refs[0].to_string(), "${queue:api.jobs}");
        assert_eq!(Kind::Dlq.section(), "queues");
    }

    #[test]
    fn malformed_references_say_why() {
        assert_eq!(
            references("${HOME}"),
            Err("`${HOME}` must be `${queue:NAME}`, `${dlq:NAME}` or `${bucket:NAME}`".into())
        );
        assert_eq!(
            references("x ${queue:a"),
            Err("`x ${queue:a` has an unclosed `${`".into())
        );
    }

    #[test]
    fn substitute_replaces_what_it_is_given() {
        let v = substitute("u=${queue:jobs} h=${HOME} s=${secret:x}", |r| {
            r.known().map(|k| format!("<{}:{}>", k.as_str(), r.name))
        });
        assert_eq!(v, "u=<queue:jobs> h=${HOME} s=${secret:x}");
    }
}
