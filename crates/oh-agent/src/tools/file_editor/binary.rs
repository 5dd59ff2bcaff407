//! Deciding whether a file is binary.
//!
//! The reference asks a classifier about the first 512 bytes (and the file extension) and,
//! since 1.57.0, overrides a "binary" verdict when the whole file decodes to clean text in a
//! known encoding. The port keeps that two-step shape with a simpler first step: a known
//! binary extension or magic number, a NUL byte, or many control bytes in the first 512
//! bytes. Because of the override, only files with control characters can be rejected.

use std::path::Path;

/// How much of the file the first step looks at (as the reference's classifier).
pub(crate) const SNIFF_LEN: usize = 512;

/// Extensions whose files are binary by convention.
const BINARY_EXTENSIONS: &[&str] = &[
    "7z", "a", "avi", "bin", "bz2", "class", "db", "dll", "dmg", "doc", "docx", "dylib", "egg",
    "eot", "exe", "flac", "gz", "h5", "ico", "img", "iso", "jar", "lib", "lz4", "m4a", "mkv",
    "mov", "mp3", "mp4", "npy", "npz", "o", "obj", "odp", "ods", "odt", "ogg", "onnx", "otf",
    "parquet", "pdf", "pickle", "pkl", "ppt", "pptx", "psd", "pt", "pth", "pyc", "pyd", "pyo",
    "rar", "so", "sqlite", "tar", "tgz", "tif", "tiff", "ttf", "war", "wasm", "wav", "webm", "whl",
    "woff", "woff2", "xls", "xlsx", "xz", "zip", "zst",
];

/// Leading bytes of common binary formats.
const MAGIC_NUMBERS: &[&[u8]] = &[
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF87a",
    b"GIF89a",
    b"%PDF-",
    b"PK\x03\x04",
    b"\x7fELF",
    b"\x1f\x8b",
    b"\xca\xfe\xba\xbe",
    b"SQLite format 3\x00",
    b"7z\xbc\xaf\x27\x1c",
    b"Rar!\x1a\x07",
    b"\xfd7zXZ\x00",
    b"\x00asm",
    b"\x28\xb5\x2f\xfd",
];

/// Share of control bytes above which a sample is binary.
const CONTROL_RATIO: f64 = 0.05;

/// The first step: does the extension or the start of the file look binary?
pub(crate) fn looks_binary(path: &Path, sample: &[u8]) -> bool {
    has_binary_extension(path) || sample_looks_binary(sample)
}

fn has_binary_extension(path: &Path) -> bool {
    path.extension()
        .map(|ext| ext.to_string_lossy().to_lowercase())
        .is_some_and(|ext| BINARY_EXTENSIONS.contains(&ext.as_str()))
}

/// A NUL byte, a known magic number, or more than 5% control bytes. ESC is not counted, so
/// logs with ANSI colours stay text.
fn sample_looks_binary(sample: &[u8]) -> bool {
    let sample = sample.get(..SNIFF_LEN).unwrap_or(sample);
    if sample.is_empty() {
        return false;
    }
    if sample.contains(&0) || MAGIC_NUMBERS.iter().any(|magic| sample.starts_with(magic)) {
        return true;
    }
    let control = sample
        .iter()
        .filter(|b| matches!(b, 0x01..=0x08 | 0x0e..=0x1a | 0x1c..=0x1f | 0x7f))
        .count();
    #[allow(clippy::cast_precision_loss, reason = "ratios of at most 512")]
    let ratio = control as f64 / sample.len() as f64;
    ratio > CONTROL_RATIO
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_not_binary() {
        assert!(!looks_binary(Path::new("a.txt"), b"hello\nworld\n"));
        assert!(!looks_binary(Path::new("a.log"), b"\x1b[31mred\x1b[0m\n"));
        assert!(!looks_binary(Path::new("a.txt"), b""));
    }

    #[test]
    fn binary_signals() {
        assert!(looks_binary(Path::new("a.txt"), b"ab\x00cd"));
        assert!(looks_binary(Path::new("a.txt"), b"\x7fELF\x02\x01"));
        assert!(looks_binary(Path::new("a.PDF"), b"text"));
        assert!(looks_binary(Path::new("a.txt"), b"\x01\x02\x03abc"));
    }
}
