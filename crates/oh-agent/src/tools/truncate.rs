//! Middle truncation of long texts, as the reference clips tool output.

/// The notice put where text was cut out.
pub const CLIPPED_NOTICE: &str = "<response clipped><NOTE>Due to the max output limit, only part of the full response has been shown to you.</NOTE>";

/// Cuts `text` to at most `max_chars` characters (counted as Unicode scalar values) by keeping
/// its head and tail and putting `notice` in the middle. The head gets the odd character.
/// Text within the limit is returned unchanged.
pub fn maybe_truncate(text: &str, max_chars: usize, notice: &str) -> String {
    let total = text.chars().count();
    if total <= max_chars {
        return text.to_owned();
    }
    let notice_len = notice.chars().count();
    let keep = max_chars.saturating_sub(notice_len);
    let head = keep.div_ceil(2);
    let tail = keep / 2;
    let mut out = String::with_capacity(max_chars * 4);
    out.extend(text.chars().take(head));
    out.push_str(notice);
    out.extend(text.chars().skip(total - tail));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_unchanged() {
        assert_eq!(maybe_truncate("abc", 3, "!"), "abc");
    }

    #[test]
    fn long_text_keeps_head_and_tail() {
        let cut = maybe_truncate("abcdefghij", 6, "..");
        assert_eq!(cut, "ab..ij");
        assert_eq!(maybe_truncate("abcdefghij", 7, ".."), "abc..ij");
    }
}
