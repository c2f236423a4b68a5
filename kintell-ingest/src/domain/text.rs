//! Constrained strings: emails, session ids, keys, slugs, tags.

use std::fmt;

/// Why a string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Nothing left after trimming.
    #[error("{what} is empty")]
    Empty {
        /// What was being parsed.
        what: &'static str,
    },
    /// Longer than its column allows (counted in characters).
    #[error("{what} is {len} characters long, more than the {max} allowed")]
    TooLong {
        /// What was being parsed.
        what: &'static str,
        /// Its length in characters.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// Not of the required shape.
    #[error("{value:?} is not a valid {what}: {why}")]
    Invalid {
        /// What was being parsed.
        what: &'static str,
        /// The input.
        value: String,
        /// The rule it breaks.
        why: &'static str,
    },
}

fn bounded<'a>(input: &'a str, what: &'static str, max: usize) -> Result<&'a str, TextError> {
    // Values nearly always start and end with visible ASCII (the parser has trimmed them already): no trim then.
    let t = match (input.as_bytes().first(), input.as_bytes().last()) {
        (Some(&f), Some(&l)) if f > b' ' && f < 0x80 && l > b' ' && l < 0x80 => input,
        _ => input.trim(),
    };
    if t.is_empty() {
        return Err(TextError::Empty { what });
    }
    // Byte length bounds the character count from above, so most values skip the count.
    if t.len() > max {
        let len = t.chars().count();
        if len > max {
            return Err(TextError::TooLong { what, len, max });
        }
    }
    Ok(t)
}

/// Defines a trimmed, non-empty string newtype with a maximum length in characters.
macro_rules! bounded_string {
    ($(#[$meta:meta])* $name:ident, $what:literal, $max:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The maximum length in characters.
            pub const MAX_CHARS: usize = $max;

            /// Trims and checks the length.
            ///
            /// # Errors
            /// [`TextError::Empty`] or [`TextError::TooLong`].
            pub fn parse(input: &str) -> Result<Self, TextError> {
                bounded(input, $what, $max).map(|t| $name(t.to_owned()))
            }

            /// The value.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

bounded_string!(
    /// An external session id (`session_id`, `booking_id`): 1 to 255 characters, case-sensitive.
    SessionId, "session id", 255
);
bounded_string!(
    /// A webhook delivery id (the `X-Delivery-Id` header): 1 to 255 characters, case-sensitive.
    DeliveryId, "delivery id", 255
);
bounded_string!(
    /// A course id: 1 to 255 characters, case-sensitive.
    CourseId, "course id", 255
);
bounded_string!(
    /// A catalogue key (company, beneficiary group, campaign): 1 to 255 characters.
    Key, "key", 255
);
bounded_string!(
    /// A display name: 1 to 255 characters.
    Name, "name", 255
);
bounded_string!(
    /// A person's first or last name: 1 to 100 characters.
    PersonName, "person name", 100
);
bounded_string!(
    /// A beneficiary group's type (e.g. `refugees`): 1 to 50 characters.
    GroupType, "group type", 50
);

/// A course provider: trimmed, lower-cased, 1 to 100 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Provider(String);

impl Provider {
    /// The maximum length in characters.
    pub const MAX_CHARS: usize = 100;

    /// Trims, lower-cases and checks the length.
    ///
    /// # Errors
    /// [`TextError::Empty`] or [`TextError::TooLong`].
    pub fn parse(input: &str) -> Result<Self, TextError> {
        bounded(input, "provider", Self::MAX_CHARS).map(|t| Provider(t.to_lowercase()))
    }

    /// The value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Provider {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An email address, trimmed and lower-cased.
///
/// At most 254 characters, exactly one `@`, a non-empty local part without spaces, a domain with a dot and no empty
/// label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// The maximum length in characters.
    pub const MAX_CHARS: usize = 254;

    /// Parses and normalises an address.
    ///
    /// # Errors
    /// [`TextError::Empty`], [`TextError::TooLong`] or [`TextError::Invalid`] naming the rule broken.
    pub fn parse(input: &str) -> Result<Self, TextError> {
        let t = bounded(input, "email", Self::MAX_CHARS)?;
        let invalid = |why| TextError::Invalid {
            what: "email",
            value: t.to_owned(),
            why,
        };
        let lower = match email_rule_ascii(t) {
            Some(Ok(false)) => t.to_owned(),
            Some(Ok(true)) => t.to_ascii_lowercase(),
            Some(Err(why)) => return Err(invalid(why)),
            None => {
                email_rule(t).map_err(invalid)?;
                t.to_lowercase()
            }
        };
        Ok(Email(lower))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The first rule of an address that `t` breaks, in the order the rules are checked.
fn email_rule(t: &str) -> Result<(), &'static str> {
    let mut parts = t.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("it must contain exactly one @");
    };
    if local.is_empty() {
        return Err("the part before @ is empty");
    }
    if t.chars().any(char::is_whitespace) {
        return Err("it contains a space");
    }
    if !domain.contains('.') {
        return Err("the domain has no dot");
    }
    if domain.split('.').any(str::is_empty) {
        return Err("the domain has an empty label");
    }
    Ok(())
}

/// [`email_rule`] for ASCII text (`None` for any other), with whether `t` holds an upper-case letter: one pass of
/// table look-ups, up to the first @ and then over the domain. Addresses are parsed twice per session row, and
/// the iterator version took a third of the parser's time.
fn email_rule_ascii(t: &str) -> Option<Result<bool, &'static str>> {
    let bytes = t.as_bytes();
    let class_of = |b: u8| EMAIL_CLASS.get(usize::from(b)).copied().unwrap_or(HIGH);
    let mut class = 0;
    let mut at = None;
    for (i, &b) in bytes.iter().enumerate() {
        let c = class_of(b);
        if c & AT != 0 {
            at = Some(i);
            break;
        }
        class |= c;
    }
    let domain = at.and_then(|a| bytes.get(a + 1..)).unwrap_or_default();
    // A label is empty when a dot starts the domain, follows a dot, or ends the domain.
    let (mut dots, mut empty_label, mut after_dot) = (0u32, false, true);
    for &b in domain {
        let c = class_of(b);
        class |= c;
        let dot = c & DOT != 0;
        empty_label |= dot && after_dot;
        after_dot = dot;
        dots += u32::from(dot);
    }
    empty_label |= after_dot;
    if class & HIGH != 0 {
        return None;
    }
    let rule = match at {
        None => "it must contain exactly one @",
        Some(_) if class & AT != 0 => "it must contain exactly one @",
        Some(0) => "the part before @ is empty",
        Some(_) if class & SPACE != 0 => "it contains a space",
        Some(_) if dots == 0 => "the domain has no dot",
        Some(_) if empty_label => "the domain has an empty label",
        Some(_) => return Some(Ok(class & UPPER != 0)),
    };
    Some(Err(rule))
}

const SPACE: u8 = 1;
const UPPER: u8 = 2;
const HIGH: u8 = 4;
const AT: u8 = 8;
const DOT: u8 = 16;

/// What each byte is, for [`email_rule_ascii`]: a table lookup per byte and no branch.
static EMAIL_CLASS: [u8; 256] = {
    let mut t = [0; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = match b as u8 {
            // The ASCII characters `char::is_whitespace` accepts (U+000B too, unlike `u8::is_ascii_whitespace`).
            b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r' => SPACE,
            b'A'..=b'Z' => UPPER,
            b'@' => AT,
            b'.' => DOT,
            0x80.. => HIGH,
            _ => 0,
        };
        b += 1;
    }
    t
};

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A programme instance slug: trimmed, lower-cased, 1 to 255 characters of `a-z`, `0-9`, `-`, `_` and `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct ProgramSlug(String);

impl ProgramSlug {
    /// The maximum length in characters.
    pub const MAX_CHARS: usize = 255;

    /// Parses a slug; upper-case letters are lowered.
    ///
    /// # Errors
    /// [`TextError::Empty`], [`TextError::TooLong`] or [`TextError::Invalid`].
    pub fn parse(input: &str) -> Result<Self, TextError> {
        let t = bounded(input, "programme slug", Self::MAX_CHARS)?;
        if !t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(TextError::Invalid {
                what: "programme slug",
                value: t.to_owned(),
                why: "only letters, digits, '-', '_' and '.' are allowed",
            });
        }
        Ok(ProgramSlug(t.to_ascii_lowercase()))
    }

    /// The slug.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProgramSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ProgramSlug {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A normalised tag: trimmed and lower-cased, never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Tag(String);

impl Tag {
    /// Normalises a tag; `None` when it trims to nothing (such tags are dropped, not errors).
    pub fn normalise(input: &str) -> Option<Self> {
        let t = input.trim();
        (!t.is_empty()).then(|| Tag(t.to_lowercase()))
    }

    /// The tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A set of normalised tags: deduplicated and sorted, so equal sets compare equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Tags(Vec<Tag>);

impl Tags {
    /// Normalises each tag, dropping empty ones and duplicates.
    pub fn from_raw<I, S>(raw: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut v: Vec<Tag> = raw
            .into_iter()
            .filter_map(|s| Tag::normalise(s.as_ref()))
            .collect();
        v.sort();
        v.dedup();
        Tags(v)
    }

    /// The tags, sorted.
    pub fn as_slice(&self) -> &[Tag] {
        &self.0
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether `tag` is in the set.
    pub fn contains(&self, tag: &Tag) -> bool {
        self.0.binary_search(tag).is_ok()
    }
}

impl<'de> serde::Deserialize<'de> for Tags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = <Vec<String> as serde::Deserialize>::deserialize(d)?;
        Ok(Tags::from_raw(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse("  Anna.O'Neil+kg@Example.COM ")
                .unwrap()
                .as_str(),
            "anna.o'neil+kg@example.com"
        );
        for bad in [
            "",
            "no-at-sign",
            "a@b@c.d",
            "@example.com",
            "a b@example.com",
            "a@example",
            "a@example..com",
            "a@.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
        for (bad, why) in [
            ("a@@b.c", "it must contain exactly one @"),
            ("a@b.c@", "it must contain exactly one @"),
            ("@b@c.d", "it must contain exactly one @"),
            ("@ b.c", "the part before @ is empty"),
            ("a\u{b}b@c.d", "it contains a space"),
            ("a@b", "the domain has no dot"),
            ("a@", "the domain has no dot"),
            ("a@b.", "the domain has an empty label"),
            ("a@.b", "the domain has an empty label"),
            ("a@b..c", "the domain has an empty label"),
            ("ä@b..c", "the domain has an empty label"),
            ("ä b@c.d", "it contains a space"),
            ("a\u{a0}b@c.d", "it contains a space"),
        ] {
            match Email::parse(bad) {
                Err(TextError::Invalid { why: w, .. }) => assert_eq!(w, why, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert_eq!(Email::parse(".A@B.C").unwrap().as_str(), ".a@b.c");
        assert_eq!(Email::parse("Ä@B.C").unwrap().as_str(), "ä@b.c");
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(matches!(
            Email::parse(&long),
            Err(TextError::TooLong { max: 254, .. })
        ));
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert!(SessionId::parse(&"д".repeat(255)).is_ok());
        assert!(matches!(
            SessionId::parse(&"д".repeat(256)),
            Err(TextError::TooLong {
                len: 256,
                max: 255,
                ..
            })
        ));
        assert!(matches!(
            SessionId::parse("   "),
            Err(TextError::Empty { .. })
        ));
    }

    #[test]
    fn slugs() {
        assert_eq!(
            ProgramSlug::parse("Mentors-Ukraine-2024-Q4")
                .unwrap()
                .as_str(),
            "mentors-ukraine-2024-q4"
        );
        assert!(ProgramSlug::parse("a b").is_err());
    }

    #[test]
    fn tags_normalise() {
        let t = Tags::from_raw([" Refugees", "refugees", "", "  ", "Ukrainian"]);
        assert_eq!(
            t.as_slice().iter().map(Tag::as_str).collect::<Vec<_>>(),
            ["refugees", "ukrainian"]
        );
    }

    proptest! {
        #[test]
        fn valid_emails_parse_and_round_trip(local in "[a-zA-Z0-9._+'-]{1,40}", d1 in "[a-z0-9-]{1,20}", d2 in "[a-z]{2,6}") {
            let raw = format!("{local}@{d1}.{d2}");
            let e = Email::parse(&raw).unwrap();
            prop_assert_eq!(e.as_str(), raw.to_lowercase());
            prop_assert_eq!(Email::parse(e.as_str()).unwrap(), e.clone());
        }

        /// The one-pass ASCII check refuses exactly what the general one refuses, for the same reason, and sees
        /// every upper-case letter.
        #[test]
        fn ascii_email_rule_agrees_with_the_general_rule(t in "[aZ@. \t\x0b\x0c\r\n-]{0,12}") {
            let ascii = email_rule_ascii(&t).expect("ASCII input");
            prop_assert_eq!(ascii.map(|_| ()), email_rule(&t));
            if let Ok(upper) = ascii {
                prop_assert_eq!(upper, t.contains('Z'));
            }
        }

        #[test]
        fn session_ids_round_trip(s in "[^\\s][^\\r\\n]{0,100}[^\\s]") {
            let id = SessionId::parse(&s).unwrap();
            prop_assert_eq!(id.as_str(), s.trim());
            prop_assert_eq!(SessionId::parse(&id.to_string()).unwrap(), id);
        }

        #[test]
        fn slugs_round_trip(s in "[a-z0-9][a-z0-9._-]{0,60}") {
            let slug = ProgramSlug::parse(&s).unwrap();
            prop_assert_eq!(ProgramSlug::parse(slug.as_str()).unwrap(), slug);
        }

        #[test]
        fn any_string_never_panics(s in any::<String>()) {
            let _ = Email::parse(&s);
            let _ = ProgramSlug::parse(&s);
            let _ = Provider::parse(&s);
        }
    }
}
