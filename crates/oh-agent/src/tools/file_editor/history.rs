//! Per-file undo history, in memory.

use std::collections::{HashMap, VecDeque};

/// How many earlier versions are kept per file (the reference keeps 10).
pub(crate) const MAX_HISTORY_PER_FILE: usize = 10;

/// Earlier versions of each file, newest last, keyed by the normalised path string.
#[derive(Debug, Default)]
pub(crate) struct History {
    entries: HashMap<String, VecDeque<String>>,
}

impl History {
    /// Remembers `content` as the newest version of `key`, dropping the oldest beyond the
    /// limit.
    pub(crate) fn push(&mut self, key: &str, content: String) {
        let versions = self.entries.entry(key.to_owned()).or_default();
        versions.push_back(content);
        while versions.len() > MAX_HISTORY_PER_FILE {
            versions.pop_front();
        }
    }

    /// Takes the newest version of `key`, if any.
    pub(crate) fn pop(&mut self, key: &str) -> Option<String> {
        self.entries.get_mut(key)?.pop_back()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_ten() {
        let mut history = History::default();
        for i in 0..12 {
            history.push("f", i.to_string());
        }
        let popped: Vec<String> = std::iter::from_fn(|| history.pop("f")).collect();
        assert_eq!(popped.len(), MAX_HISTORY_PER_FILE);
        assert_eq!(popped.first().map(String::as_str), Some("11"));
        assert_eq!(popped.last().map(String::as_str), Some("2"));
        assert_eq!(history.pop("g"), None);
    }
}
