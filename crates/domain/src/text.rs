//! Text types with one way in: `parse`. Holding one means its rules were checked.

use unicode_segmentation::UnicodeSegmentation;

/// Why a piece of client text was refused; the message is safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TextError(pub String);

fn refuse<T>(msg: impl Into<String>) -> Result<T, TextError> {
    Err(TextError(msg.into()))
}

/// A user name: 1–32 characters of `a-z 0-9 _ . -`, folded to lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserName(String);

impl UserName {
    /// Folds `input` to lower case and checks the alphabet and length.
    pub fn parse(input: &str) -> Result<Self, TextError> {
        let name = input.to_ascii_lowercase();
        let len = name.chars().count();
        if !(1..=32).contains(&len) {
            return refuse("name must be 1 to 32 characters");
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
        {
            return refuse("name may contain only a-z, 0-9, '_', '.' and '-'");
        }
        Ok(UserName(name))
    }

    /// The folded name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password: 8 to 256 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Checks the length of `input`.
    pub fn parse(input: &str) -> Result<Self, TextError> {
        if !(8..=256).contains(&input.len()) {
            return refuse("password must be 8 to 256 bytes");
        }
        Ok(Password(input.to_owned()))
    }

    /// The password's bytes, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A room name: 1 to 64 characters, not only white space, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomName(String);

impl RoomName {
    /// Checks length and characters of `input`.
    pub fn parse(input: &str) -> Result<Self, TextError> {
        let len = input.chars().count();
        if !(1..=64).contains(&len) {
            return refuse("room name must be 1 to 64 characters");
        }
        if input.trim().is_empty() {
            return refuse("room name must not be only white space");
        }
        if input.chars().any(char::is_control) {
            return refuse("room name must not contain control characters");
        }
        Ok(RoomName(input.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A message body: 1 to `max` Unicode scalar values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    /// Checks that `input` is not empty and has at most `max` scalar values.
    pub fn parse(input: String, max: usize) -> Result<Self, TextError> {
        if input.is_empty() {
            return refuse("body must not be empty");
        }
        // Counting stops early: a huge body costs no more than `max` steps.
        if input.chars().nth(max).is_some() {
            return refuse(format!("body must be at most {max} characters"));
        }
        Ok(MessageBody(input))
    }

    /// The body.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A reaction: one emoji, 1 to 16 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emoji(String);

impl Emoji {
    /// Checks that `input` is one grapheme of at most 16 bytes that is not plain ASCII text.
    pub fn parse(input: String) -> Result<Self, TextError> {
        if !(1..=16).contains(&input.len()) {
            return refuse("reaction must be one emoji of 1 to 16 bytes");
        }
        let one_grapheme = input.graphemes(true).count() == 1;
        let keycap = input.contains('\u{20E3}');
        let first_is_ascii = input.chars().next().is_some_and(|c| c.is_ascii());
        let has_control = input.chars().any(|c| c.is_control() || c.is_whitespace());
        if !one_grapheme || (first_is_ascii && !keycap) || has_control {
            return refuse("reaction must be one emoji");
        }
        Ok(Emoji(input))
    }

    /// The emoji.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A client's idempotency key for a send: 1 to 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientMsgId(String);

impl ClientMsgId {
    /// Checks the length of `input`.
    pub fn parse(input: String) -> Result<Self, TextError> {
        if !(1..=64).contains(&input.len()) {
            return refuse("client_id must be 1 to 64 bytes");
        }
        Ok(ClientMsgId(input))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `s` can be a user or room id: 1 to 64 bytes of `A-Z a-z 0-9 _ -`.
pub fn is_valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_name_is_folded_to_lower_case() {
        assert_eq!(
            UserName::parse("Ada").map(|n| n.as_str().to_owned()),
            Ok("ada".to_owned())
        );
    }

    #[test]
    fn a_name_with_a_space_or_too_long_is_refused() {
        assert!(UserName::parse("a b").is_err());
        assert!(UserName::parse("").is_err());
        assert!(UserName::parse(&"a".repeat(33)).is_err());
        assert!(UserName::parse("émile").is_err());
    }

    #[test]
    fn an_empty_body_is_refused_and_the_limit_counts_characters_not_bytes() {
        assert!(MessageBody::parse(String::new(), 10).is_err());
        assert!(MessageBody::parse("é".repeat(10), 10).is_ok());
        assert!(MessageBody::parse("é".repeat(11), 10).is_err());
    }

    #[test]
    fn a_reaction_is_one_emoji() {
        assert!(Emoji::parse("👍".into()).is_ok());
        assert!(Emoji::parse("👍🏽".into()).is_ok());
        assert!(Emoji::parse("1️⃣".into()).is_ok());
        assert!(Emoji::parse("ok".into()).is_err());
        assert!(Emoji::parse("👍👍".into()).is_err());
        assert!(Emoji::parse(String::new()).is_err());
    }

    #[test]
    fn a_password_is_8_to_256_bytes() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"x".repeat(257)).is_err());
    }

    proptest! {
        #[test]
        fn any_parsed_name_is_lower_case_and_in_the_alphabet(s in "\\PC{0,40}") {
            if let Ok(n) = UserName::parse(&s) {
                prop_assert!(n.as_str().chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c)));
                prop_assert!((1..=32).contains(&n.as_str().len()));
            }
        }

        #[test]
        fn a_body_parses_exactly_when_it_has_1_to_max_characters(s in "\\PC{0,30}", max in 1usize..20) {
            let n = s.chars().count();
            prop_assert_eq!(MessageBody::parse(s, max).is_ok(), (1..=max).contains(&n));
        }

        #[test]
        fn ids_accept_only_url_safe_bytes(s in "\\PC{0,70}") {
            let ok = is_valid_id(&s);
            prop_assert_eq!(ok, !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        }
    }
}
