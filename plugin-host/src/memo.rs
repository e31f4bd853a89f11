//! Memoized verdicts: a query-policy plugin that declares its verdict depends only on the
//! question (name, type, class) and its configuration is called once per question; the
//! verdict is reused for the same question until the plugin is reloaded.
//!
//! **The declaration** is a custom section named [`MEMO_SECTION`] holding `question`,
//! anywhere in the component (the SDK's `memoizable_verdicts!` puts it in the core module).
//! It is data, not part of the WIT interface, so a plugin built without it is simply
//! called for every query. **Boundary:** the section's name and content are read from
//! operators' plugins: docs/plugins.md, "Memoized verdicts".
//!
//! **Invariant:** only verdicts are kept, never failures: a call that traps or times out
//! is made again for the next query with that question.
//!
//! **Bound:** at most [`MEMO_ENTRIES`] questions per plugin, in [`MEMO_SHARDS`] shards
//! with a lock each; a full shard is emptied before the next verdict goes in.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};

use crate::{Action, Verdict};

/// The custom section that declares a plugin's verdicts memoizable.
pub const MEMO_SECTION: &str = "outpost-plugin-memo";

/// What the section holds: the verdict depends on the question alone.
const MEMO_QUESTION: &[u8] = b"question";

/// Questions remembered per plugin. Each holds the name, two codes and a verdict:
/// a few MiB at most.
pub const MEMO_ENTRIES: usize = 65_536;

/// Shards of the memo, each behind its own lock, so that worker threads rarely wait for
/// each other.
pub const MEMO_SHARDS: usize = 16;

/// Components nest modules and components; deeper than this is not looked into.
const MAX_NESTING: usize = 4;

/// Whether the component `bytes` declares memoizable verdicts. Unreadable bytes declare
/// nothing (the compiler reports what is wrong with them).
pub fn declares_memo(bytes: &[u8]) -> bool {
    custom_sections(bytes, 0)
        .into_iter()
        .any(|(name, data)| name == MEMO_SECTION.as_bytes() && data == MEMO_QUESTION)
}

/// The custom sections of a module or component binary, and of the modules and
/// components nested in it, as `(name, data)`.
fn custom_sections(bytes: &[u8], depth: usize) -> Vec<(&[u8], &[u8])> {
    let mut found = Vec::new();
    // "\0asm", then a 4-byte version and layer.
    let Some(mut rest) = bytes.strip_prefix(b"\0asm").and_then(|rest| rest.get(4..)) else {
        return found;
    };
    let is_component = bytes.get(6..8) == Some(&[1u8, 0][..]);
    while let Some((&id, after_id)) = rest.split_first() {
        let Some((size, after_size)) = leb128(after_id) else {
            break;
        };
        let Some(content) = after_size.get(..size) else {
            break;
        };
        rest = &after_size[size..];
        match id {
            0 => {
                if let Some((len, after_len)) = leb128(content)
                    && let Some(name) = after_len.get(..len)
                {
                    found.push((name, &after_len[len..]));
                }
            }
            // A component's core module (1) and nested component (4) sections hold whole
            // binaries.
            1 | 4 if is_component && depth < MAX_NESTING => {
                found.extend(custom_sections(content, depth + 1));
            }
            _ => {}
        }
    }
    found
}

/// An unsigned LEB128 `u32` at the start of `bytes`, and what follows it.
fn leb128(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let mut value: u32 = 0;
    for (i, &byte) in bytes.iter().enumerate().take(5) {
        value |= u32::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some((usize::try_from(value).ok()?, &bytes[i + 1..]));
        }
    }
    None
}

/// A question as the memo keys it: two independent keyed 64-bit hashes of its name (in
/// lowercase wire form: plugins see names in lowercase, so case makes no new question),
/// type and class. Sixteen bytes held in the table itself, so a lookup touches one small
/// entry; two questions share a key with a chance of 2^-128, and clients cannot aim at
/// the keys without the random seeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Question(u64, u64);

impl Hash for Question {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

/// Passes a [`Question`]'s first hash through: it is already a keyed hash.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is called (by `Question::hash`); fold anything else in.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A remembered verdict. Most are `allow`, which needs no allocation.
#[derive(Clone, Debug)]
enum Remembered {
    Allow,
    Other(Arc<Verdict>),
}

/// One shard of a memo: verdicts by question.
type Shard = Mutex<HashMap<Question, Remembered, BuildHasherDefault<PassThrough>>>;

/// The verdicts of one plugin, by question.
#[derive(Debug)]
pub(crate) struct Memo {
    /// Two random seeds: clients choose the names, so the hashes must not be ones they can
    /// aim at.
    seeds: (RandomState, RandomState),
    shards: Box<[Shard]>,
}

impl Memo {
    pub(crate) fn new() -> Memo {
        Memo {
            seeds: (RandomState::new(), RandomState::new()),
            shards: (0..MEMO_SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
        }
    }

    /// The key of the question for `name` (lowercase wire form), `qtype` and `qclass`.
    fn question(&self, name: &[u8], qtype: u16, qclass: u16) -> Question {
        let key = (name, qtype, qclass);
        Question(self.seeds.0.hash_one(key), self.seeds.1.hash_one(key))
    }

    fn shard(&self, question: &Question) -> &Shard {
        // The table uses the hash's low bits for buckets and its top bits for tags; the
        // shard takes bits from the middle.
        let index = (question.0 >> 32) as usize % self.shards.len();
        &self.shards[index]
    }

    /// The verdict remembered for the question (`name` in lowercase wire form), or the
    /// question to remember one under.
    pub(crate) fn get(&self, name: &[u8], qtype: u16, qclass: u16) -> Result<Verdict, Question> {
        let question = self.question(name, qtype, qclass);
        let remembered = self
            .shard(&question)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&question)
            .cloned();
        match remembered {
            Some(Remembered::Allow) => Ok(Verdict {
                action: Action::Allow,
                tags: Vec::new(),
            }),
            Some(Remembered::Other(verdict)) => Ok(Verdict::clone(&verdict)),
            None => Err(question),
        }
    }

    /// Remembers `verdict` for `question`; empties the shard first when it is full.
    pub(crate) fn put(&self, question: Question, verdict: &Verdict) {
        let remembered = match verdict {
            Verdict {
                action: Action::Allow,
                tags,
            } if tags.is_empty() => Remembered::Allow,
            other => Remembered::Other(Arc::new(other.clone())),
        };
        let mut shard = self
            .shard(&question)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if shard.len() >= MEMO_ENTRIES / MEMO_SHARDS {
            shard.clear();
        }
        shard.insert(question, remembered);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary of `kind` (module or component) made of custom sections.
    fn binary(component: bool, sections: &[(&str, &[u8])]) -> Vec<u8> {
        let mut bytes = b"\0asm".to_vec();
        bytes.extend_from_slice(if component {
            &[0x0d, 0, 1, 0]
        } else {
            &[1, 0, 0, 0]
        });
        for (name, data) in sections {
            let mut content = vec![u8::try_from(name.len()).unwrap()];
            content.extend_from_slice(name.as_bytes());
            content.extend_from_slice(data);
            bytes.push(0);
            bytes.push(u8::try_from(content.len()).unwrap());
            bytes.extend_from_slice(&content);
        }
        bytes
    }

    #[test]
    fn the_declaration_is_found_in_a_nested_module_and_nowhere_else() {
        let module = binary(false, &[("producers", b"x"), (MEMO_SECTION, b"question")]);
        let mut component = binary(true, &[]);
        component.push(1);
        component.push(u8::try_from(module.len()).unwrap());
        component.extend_from_slice(&module);
        assert!(declares_memo(&component));
        assert!(declares_memo(&module));

        assert!(!declares_memo(&binary(true, &[(MEMO_SECTION, b"client")])));
        assert!(!declares_memo(&binary(true, &[("other", b"question")])));
        // Cut anywhere, or not wasm at all: no declaration, no panic.
        for cut in 0..component.len() - 1 {
            assert!(!declares_memo(&component[..cut]), "cut at {cut}");
        }
        assert!(!declares_memo(b"not wasm"));
        assert!(!declares_memo(&[
            0, b'a', b's', b'm', 0x0d, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff
        ]));
    }

    #[test]
    fn a_full_shard_is_emptied_and_the_memo_stays_bounded() {
        let memo = Memo::new();
        let verdict = Verdict {
            action: crate::Action::Allow,
            tags: Vec::new(),
        };
        let name = |i: usize| {
            let label = format!("host-{i}");
            let mut wire = vec![u8::try_from(label.len()).unwrap()];
            wire.extend_from_slice(label.as_bytes());
            wire.extend_from_slice(b"\x07example\x00");
            wire
        };
        for i in 0..3 * MEMO_ENTRIES {
            let question = memo.question(&name(i), 1, 1);
            memo.put(question, &verdict);
        }
        let held: usize = memo
            .shards
            .iter()
            .map(|shard| shard.lock().unwrap().len())
            .sum();
        assert!(held <= MEMO_ENTRIES, "{held}");
        assert!(held > 0);
        // Another type or class is another question.
        let last = name(3 * MEMO_ENTRIES - 1);
        assert!(memo.get(&last, 1, 1).is_ok());
        assert!(memo.get(&last, 28, 1).is_err());
        assert!(memo.get(&last, 1, 3).is_err());
    }
}
