//! Typed handles on the settings table.
//!
//! Each row of [`SETTINGS`](super::SETTINGS) has a constant in [`keys`](super::keys),
//! a [`Key<T>`] whose `T` says what reading it gives: `Key<Int>` an `i64`,
//! `Key<Secs>` whole seconds, `Key<Choice>` and `Key<Text>` a `&str`, `Key<Bool>` a
//! `bool`, and `Key<Option<_>>` (a setting that is off unless set) an `Option` of
//! those. A key carries its row's default, written once in the table, so a reader
//! never restates it; a misspelt key is an unknown constant, which does not compile.
//!
//! Invariant: a key's shape fits its row's [`Kind`] (checked at compile time by the
//! table), so a resolved value of the setting is always of the key's shape.

use super::{Default, Kind, Setting, Val};

mod sealed {
    pub trait Sealed {}
}

/// An integer setting (`Kind::Int`, `Kind::IntSet`).
pub enum Int {}
/// A duration setting in whole seconds (`Kind::Duration`).
pub enum Secs {}
/// One of a fixed set of words (`Kind::Choice`).
pub enum Choice {}
/// Free text checked by a rule (`Kind::Text`).
pub enum Text {}
/// A boolean setting (`Kind::Bool`).
pub enum Bool {}

/// Which kinds a shape reads (compared with a row's kind when the table compiles).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    Int,
    Secs,
    Choice,
    Text,
    Bool,
}

/// The value type of a setting.
pub trait Shape: sealed::Sealed {
    /// What reading a setting of this shape gives.
    type Value<'a>: Copy;
    /// How the table writes a default of this shape.
    type Default: Copy + 'static;
    const TAG: Tag;
    /// The value held by `val`, if `val` is of this shape.
    fn read(val: &Val) -> Option<Self::Value<'_>>;
    fn from_default<'a>(default: Self::Default) -> Self::Value<'a>;
}

/// What a key reads: a shape (the setting has a default) or `Option` of a shape
/// (the setting is off unless set).
pub trait Type: sealed::Sealed {
    type Out<'a>;
    /// The default a key of this type carries (`()` when there is none).
    type Default: Copy + 'static;
    /// The value of a setting resolved to `value` (`None`: unset, or the setting
    /// does not apply).
    fn out(value: Option<&Val>, default: Self::Default) -> Self::Out<'_>;
}

impl<S: Shape> sealed::Sealed for Option<S> {}

impl<S: Shape> Type for S {
    type Out<'a> = S::Value<'a>;
    type Default = S::Default;
    fn out(value: Option<&Val>, default: S::Default) -> S::Value<'_> {
        value
            .and_then(S::read)
            .unwrap_or_else(|| S::from_default(default))
    }
}

impl<S: Shape> Type for Option<S> {
    type Out<'a> = Option<S::Value<'a>>;
    type Default = ();
    fn out(value: Option<&Val>, (): ()) -> Option<S::Value<'_>> {
        value.and_then(S::read)
    }
}

macro_rules! shape {
    ($shape:ident, $value:ty, $default:ty, $variant:ident, |$v:ident| $read:expr) => {
        impl sealed::Sealed for $shape {}

        impl $shape {
            /// The table's form of a default of this shape.
            pub(super) const fn table_default(default: $default) -> Default {
                Default::$variant(default)
            }
        }

        impl Shape for $shape {
            type Value<'a> = $value;
            type Default = $default;
            const TAG: Tag = Tag::$shape;
            fn read(val: &Val) -> Option<Self::Value<'_>> {
                match val {
                    Val::$variant($v) => Some($read),
                    _ => None,
                }
            }
            fn from_default<'a>(default: $default) -> Self::Value<'a> {
                default
            }
        }
    };
}

shape!(Int, i64, i64, Int, |i| *i);
shape!(Secs, u64, u64, Duration, |s| *s);
shape!(Choice, &'a str, &'static str, Text, |t| t.as_str());
shape!(Text, &'a str, &'static str, Text, |t| t.as_str());
shape!(Bool, bool, bool, Bool, |b| *b);

/// Whether a setting of `kind` is read as shape `S`.
pub(super) const fn fits<S: Shape>(kind: Kind) -> bool {
    matches!(
        (kind, S::TAG),
        (Kind::Int { .. } | Kind::IntSet(_), Tag::Int)
            | (Kind::Duration { .. }, Tag::Secs)
            | (Kind::Choice(_), Tag::Choice)
            | (Kind::Text(_), Tag::Text)
            | (Kind::Bool, Tag::Bool)
    )
}

/// A setting of the table, read as `T`.
pub struct Key<T: Type> {
    setting: &'static Setting,
    default: T::Default,
}

impl<T: Type> Clone for Key<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Type> Copy for Key<T> {}

impl<T: Type> std::fmt::Debug for Key<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.setting.key)
    }
}

impl<T: Type> Key<T> {
    pub(super) const fn new(setting: &'static Setting, default: T::Default) -> Self {
        Key { setting, default }
    }

    /// The setting's row.
    pub const fn setting(self) -> &'static Setting {
        self.setting
    }

    /// The setting's key (`pantstack:<key>`, `--set <key>=...`).
    pub const fn name(self) -> &'static str {
        self.setting.key
    }

    /// The value of this setting resolved to `value`, or its default (`None` for a
    /// setting without one) when `value` is `None`.
    pub fn read(self, value: Option<&Val>) -> T::Out<'_> {
        T::out(value, self.default)
    }
}
