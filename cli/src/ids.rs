//! Record ids in the user's terms: checking an id read from a file against the collection's
//! id type, parsing one given on the command line, and showing one in a message.
//!
//! A collection has integer ids or string ids ([`IdType`], chosen by `cairn create
//! --id-type`). In JSONL an integer id is a JSON number and a string id a JSON string; the
//! kinds are never converted into each other (`"42"` is not `42`), so an export imports back
//! as it was. On the command line an id is read by the collection's type: in a collection of
//! string ids `cairn get db c 42` looks up the string `"42"`.

use cairndb::{Id, IdType, MAX_ID_BYTES};

use crate::util::one_line;

/// An id as a message shows it: an integer in decimal, a string as a JSON string literal
/// (quotes and escapes make an empty id or one with spaces visible), cut to 60 characters.
pub fn show(id: &Id) -> String {
    match id {
        Id::Int(n) => n.to_string(),
        Id::Str(s) => {
            let cut = s.chars().count() > 60;
            let head: String = s.chars().take(60).collect();
            let q = serde_json::to_string(&head).unwrap_or_else(|_| format!("{head:?}"));
            if cut { format!("{q}…") } else { q }
        }
    }
}

/// An id in a table cell: an integer in decimal, a string as it is (control characters as
/// spaces), cut to 64 characters.
pub fn cell(id: &Id) -> String {
    match id {
        Id::Int(n) => n.to_string(),
        Id::Str(s) => one_line(s, 64),
    }
}

/// `integer ids` or `string ids`.
pub fn kind_plural(t: IdType) -> &'static str {
    match t {
        IdType::Int => "integer ids",
        IdType::Str => "string ids",
    }
}

/// Checks that `id` fits collection `collection` whose ids are of type `t`: the same kind,
/// and a string id of 1 to [`MAX_ID_BYTES`] bytes. The message names the id and what the
/// collection takes: `id "doc-1" is a string but collection `c` has integer ids`.
pub fn check(id: &Id, t: IdType, collection: &str) -> Result<(), String> {
    match (id, t) {
        (Id::Int(_), IdType::Int) => Ok(()),
        (Id::Str(s), IdType::Str) => check_len(s),
        (Id::Str(_), IdType::Int) => Err(format!(
            "id {} is a string but collection `{collection}` has integer ids",
            show(id)
        )),
        (Id::Int(n), IdType::Str) => Err(format!(
            "id {n} is a number but collection `{collection}` has string ids \
             (write it as \"{n}\" if that is its id)"
        )),
    }
}

/// A string id's length: 1 to [`MAX_ID_BYTES`] bytes of UTF-8.
fn check_len(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!(
            "id \"\" is empty; a string id is 1 to {MAX_ID_BYTES} bytes of UTF-8"
        ));
    }
    if s.len() > MAX_ID_BYTES {
        return Err(format!(
            "id {} is {} bytes long; a string id is 1 to {MAX_ID_BYTES} bytes of UTF-8",
            show(&Id::Str(s.to_owned())),
            s.len()
        ));
    }
    Ok(())
}

/// Reads an id given on the command line by the collection's id type: a whole number for
/// integer ids, the text as it is for string ids.
pub fn parse_arg(arg: &str, t: IdType, collection: &str) -> Result<Id, String> {
    match t {
        IdType::Int => arg.parse::<u64>().map(Id::Int).map_err(|_| {
            format!(
                "id {}: collection `{collection}` has integer ids, whole numbers from 0 to {}",
                show(&Id::Str(arg.to_owned())),
                u64::MAX
            )
        }),
        IdType::Str => {
            check_len(arg)?;
            Ok(Id::Str(arg.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_name_the_id_and_the_collection() {
        assert!(check(&Id::Int(1), IdType::Int, "c").is_ok());
        assert!(check(&Id::from("a"), IdType::Str, "c").is_ok());
        assert_eq!(
            check(&Id::from("doc-1"), IdType::Int, "c").unwrap_err(),
            "id \"doc-1\" is a string but collection `c` has integer ids"
        );
        assert_eq!(
            check(&Id::Int(42), IdType::Str, "c").unwrap_err(),
            "id 42 is a number but collection `c` has string ids (write it as \"42\" if that is its id)"
        );
        let e = check(&Id::from(""), IdType::Str, "c").unwrap_err();
        assert!(e.starts_with("id \"\" is empty"), "{e}");
        let max = "é".repeat(MAX_ID_BYTES / 2);
        assert!(check(&Id::from(max.as_str()), IdType::Str, "c").is_ok());
        let e = check(&Id::from(format!("{max}x")), IdType::Str, "c").unwrap_err();
        assert!(e.contains("is 1025 bytes long"), "{e}");
        assert!(e.contains("…"), "long ids are cut in messages: {e}");
    }

    #[test]
    fn command_line_ids_follow_the_collection() {
        assert_eq!(parse_arg("42", IdType::Int, "c").unwrap(), Id::Int(42));
        assert_eq!(parse_arg("42", IdType::Str, "c").unwrap(), Id::from("42"));
        assert_eq!(
            parse_arg("a b#1", IdType::Str, "c").unwrap(),
            Id::from("a b#1")
        );
        for bad in ["x", "-1", "1.5", "", "18446744073709551616"] {
            let e = parse_arg(bad, IdType::Int, "c").unwrap_err();
            assert!(e.contains("collection `c` has integer ids"), "{bad}: {e}");
        }
        assert!(parse_arg("", IdType::Str, "c").is_err());
    }

    #[test]
    fn shown_ids() {
        assert_eq!(show(&Id::Int(7)), "7");
        assert_eq!(show(&Id::from("a \"b\"")), r#""a \"b\"""#);
        assert_eq!(cell(&Id::from("a\nb")), "a b");
    }
}
