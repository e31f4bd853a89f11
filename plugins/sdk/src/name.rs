//! Names as plugins see them: lowercase ASCII presentation form, fully qualified, with
//! the trailing dot (`www.example.com.`; the root is `.`).

/// The most bytes a name may have in presentation form without the trailing dot
/// (253 characters fill a 255-byte wire name).
pub const MAX_NAME_LEN: usize = 253;

/// The longest label (RFC 1035 section 2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// Why a configured name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong,
    EmptyLabel,
    LabelTooLong,
    BadCharacter(char),
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NameError::Empty => f.write_str("the name is empty"),
            NameError::TooLong => write!(f, "the name is longer than {MAX_NAME_LEN} characters"),
            NameError::EmptyLabel => f.write_str("the name has an empty label (two dots in a row)"),
            NameError::LabelTooLong => {
                write!(f, "a label is longer than {MAX_LABEL_LEN} characters")
            }
            NameError::BadCharacter(c) => write!(
                f,
                "{c:?} is not allowed in a name (use letters, digits, '-' and '_')"
            ),
        }
    }
}

/// `name` lowercased and without its trailing dot, checked label by label: the form
/// in which plugins keep configured names. `"Ads.Example."` gives `"ads.example"`.
pub fn normalize(name: &str) -> Result<String, NameError> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() {
        return Err(NameError::Empty);
    }
    if bare.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    for label in bare.split('.') {
        if label.is_empty() {
            return Err(NameError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(NameError::LabelTooLong);
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(NameError::BadCharacter(bad));
        }
    }
    Ok(bare.to_ascii_lowercase())
}

/// A query name without its trailing dot (the host already lowercased it).
pub fn bare(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

/// `name` (without trailing dot) and each of its ancestors, longest first, as slices
/// of `name`: `"a.b.c"` gives `"a.b.c"`, `"b.c"`, `"c"`. Allocates nothing.
pub fn suffixes(name: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(name).filter(|name| !name.is_empty());
    std::iter::from_fn(move || {
        let current = rest?;
        rest = current.split_once('.').map(|(_, tail)| tail);
        Some(current)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_lowercases_and_drops_the_trailing_dot() {
        assert_eq!(normalize("Ads.Example.").unwrap(), "ads.example");
        assert_eq!(normalize("ads.example").unwrap(), "ads.example");
        assert_eq!(
            normalize("_dmarc.x-y.example").unwrap(),
            "_dmarc.x-y.example"
        );
    }

    #[test]
    fn normalize_refuses_what_is_not_a_name() {
        assert_eq!(normalize("."), Err(NameError::Empty));
        assert_eq!(normalize("a..b"), Err(NameError::EmptyLabel));
        assert_eq!(normalize("a b"), Err(NameError::BadCharacter(' ')));
        assert_eq!(normalize(&"x".repeat(64)), Err(NameError::LabelTooLong));
        let long = vec!["abcdefghi"; 26].join(".");
        assert_eq!(normalize(&long), Err(NameError::TooLong));
    }

    #[test]
    fn suffixes_walk_towards_the_root() {
        let all: Vec<&str> = suffixes("a.b.c").collect();
        assert_eq!(all, ["a.b.c", "b.c", "c"]);
        assert_eq!(suffixes("").count(), 0);
        assert_eq!(bare("www.example."), "www.example");
        assert_eq!(bare("."), "");
    }
}
