//! Per-file text encodings.
//!
//! The reference detects each file's encoding (UTF-8 by default, ASCII treated as UTF-8),
//! reads and writes the file in it, and falls back to UTF-8 when an edit adds characters the
//! detected encoding cannot represent. Short non-UTF-8 files are recovered by trying common
//! single-byte code pages. This module covers the encodings that matter in practice: UTF-8
//! (with or without BOM), UTF-16 with BOM, Windows-1252, Windows-1251 and Latin-1.

/// An encoding a file is read and written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextEncoding {
    /// UTF-8 without BOM (also used for ASCII and new files).
    Utf8,
    /// UTF-8 with a leading byte order mark, kept on write.
    Utf8Sig,
    /// UTF-16, little endian, with BOM.
    Utf16Le,
    /// UTF-16, big endian, with BOM.
    Utf16Be,
    /// Windows-1252 (Western European).
    Cp1252,
    /// Windows-1251 (Cyrillic).
    Cp1251,
    /// ISO-8859-1: every byte is the code point of the same value.
    Latin1,
}

/// Why bytes could not be decoded; rendered like Python's `UnicodeDecodeError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError {
    /// Python's codec name, e.g. `utf-8`.
    codec: &'static str,
    /// The offending byte.
    byte: u8,
    /// Its offset.
    position: usize,
    /// Python's reason text.
    reason: &'static str,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "'{}' codec can't decode byte 0x{:02x} in position {}: {}",
            self.codec, self.byte, self.position, self.reason
        )
    }
}

const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// Windows-1252 code points for bytes 0x80..=0x9F; `None` where the code page has a hole.
const CP1252_HIGH: [Option<char>; 32] = [
    Some('\u{20ac}'),
    None,
    Some('\u{201a}'),
    Some('\u{0192}'),
    Some('\u{201e}'),
    Some('\u{2026}'),
    Some('\u{2020}'),
    Some('\u{2021}'),
    Some('\u{02c6}'),
    Some('\u{2030}'),
    Some('\u{0160}'),
    Some('\u{2039}'),
    Some('\u{0152}'),
    None,
    Some('\u{017d}'),
    None,
    None,
    Some('\u{2018}'),
    Some('\u{2019}'),
    Some('\u{201c}'),
    Some('\u{201d}'),
    Some('\u{2022}'),
    Some('\u{2013}'),
    Some('\u{2014}'),
    Some('\u{02dc}'),
    Some('\u{2122}'),
    Some('\u{0161}'),
    Some('\u{203a}'),
    Some('\u{0153}'),
    None,
    Some('\u{017e}'),
    Some('\u{0178}'),
];

/// Windows-1251 code points for bytes 0x80..=0xBF (0xC0..=0xFF map to U+0410..=U+044F).
const CP1251_HIGH: [Option<char>; 64] = [
    Some('\u{0402}'),
    Some('\u{0403}'),
    Some('\u{201a}'),
    Some('\u{0453}'),
    Some('\u{201e}'),
    Some('\u{2026}'),
    Some('\u{2020}'),
    Some('\u{2021}'),
    Some('\u{20ac}'),
    Some('\u{2030}'),
    Some('\u{0409}'),
    Some('\u{2039}'),
    Some('\u{040a}'),
    Some('\u{040c}'),
    Some('\u{040b}'),
    Some('\u{040f}'),
    Some('\u{0452}'),
    Some('\u{2018}'),
    Some('\u{2019}'),
    Some('\u{201c}'),
    Some('\u{201d}'),
    Some('\u{2022}'),
    Some('\u{2013}'),
    Some('\u{2014}'),
    None,
    Some('\u{2122}'),
    Some('\u{0459}'),
    Some('\u{203a}'),
    Some('\u{045a}'),
    Some('\u{045c}'),
    Some('\u{045b}'),
    Some('\u{045f}'),
    Some('\u{00a0}'),
    Some('\u{040e}'),
    Some('\u{045e}'),
    Some('\u{0408}'),
    Some('\u{00a4}'),
    Some('\u{0490}'),
    Some('\u{00a6}'),
    Some('\u{00a7}'),
    Some('\u{0401}'),
    Some('\u{00a9}'),
    Some('\u{0404}'),
    Some('\u{00ab}'),
    Some('\u{00ac}'),
    Some('\u{00ad}'),
    Some('\u{00ae}'),
    Some('\u{0407}'),
    Some('\u{00b0}'),
    Some('\u{00b1}'),
    Some('\u{0406}'),
    Some('\u{0456}'),
    Some('\u{0491}'),
    Some('\u{00b5}'),
    Some('\u{00b6}'),
    Some('\u{00b7}'),
    Some('\u{0451}'),
    Some('\u{2116}'),
    Some('\u{0454}'),
    Some('\u{00bb}'),
    Some('\u{0458}'),
    Some('\u{0405}'),
    Some('\u{0455}'),
    Some('\u{0457}'),
];

impl TextEncoding {
    /// Python's codec name, for messages.
    fn codec_name(self) -> &'static str {
        match self {
            Self::Utf8 | Self::Utf8Sig => "utf-8",
            Self::Utf16Le => "utf-16-le",
            Self::Utf16Be => "utf-16-be",
            Self::Cp1252 => "charmap",
            Self::Cp1251 => "charmap",
            Self::Latin1 => "latin-1",
        }
    }

    /// Decodes a whole file.
    pub(crate) fn decode(self, bytes: &[u8]) -> Result<String, DecodeError> {
        match self {
            Self::Utf8 => decode_utf8(bytes, 0),
            Self::Utf8Sig => {
                let body = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
                decode_utf8(body, bytes.len() - body.len())
            }
            Self::Utf16Le | Self::Utf16Be => self.decode_utf16(bytes),
            Self::Cp1252 | Self::Cp1251 | Self::Latin1 => self.decode_single_byte(bytes),
        }
    }

    /// Encodes text, or `None` if some character has no representation.
    pub(crate) fn encode(self, text: &str) -> Option<Vec<u8>> {
        match self {
            Self::Utf8 => Some(text.as_bytes().to_vec()),
            Self::Utf8Sig => {
                let mut out = UTF8_BOM.to_vec();
                out.extend_from_slice(text.as_bytes());
                Some(out)
            }
            Self::Utf16Le => Some(encode_utf16(text, [0xff, 0xfe], u16::to_le_bytes)),
            Self::Utf16Be => Some(encode_utf16(text, [0xfe, 0xff], u16::to_be_bytes)),
            Self::Cp1252 | Self::Cp1251 | Self::Latin1 => text
                .chars()
                .map(|ch| self.encode_char(ch))
                .collect::<Option<Vec<u8>>>(),
        }
    }

    fn decode_utf16(self, bytes: &[u8]) -> Result<String, DecodeError> {
        let body = bytes.get(2..).unwrap_or_default();
        let units = body.chunks(2).map(|pair| match (self, pair) {
            (_, [single]) => u16::from(*single),
            (Self::Utf16Be, [hi, lo]) => u16::from_be_bytes([*hi, *lo]),
            (_, [lo, hi]) => u16::from_le_bytes([*lo, *hi]),
            _ => 0,
        });
        if body.len() % 2 == 1 {
            return Err(DecodeError {
                codec: self.codec_name(),
                byte: body[body.len() - 1],
                position: bytes.len() - 1,
                reason: "truncated data",
            });
        }
        let mut out = String::with_capacity(body.len() / 2);
        for (index, unit) in char::decode_utf16(units).enumerate() {
            match unit {
                Ok(ch) => out.push(ch),
                Err(_) => {
                    let position = 2 + index * 2;
                    return Err(DecodeError {
                        codec: self.codec_name(),
                        byte: bytes.get(position).copied().unwrap_or_default(),
                        position,
                        reason: "illegal encoding",
                    });
                }
            }
        }
        Ok(out)
    }

    fn decode_single_byte(self, bytes: &[u8]) -> Result<String, DecodeError> {
        let mut out = String::with_capacity(bytes.len());
        for (position, &byte) in bytes.iter().enumerate() {
            match self.decode_byte(byte) {
                Some(ch) => out.push(ch),
                None => {
                    return Err(DecodeError {
                        codec: self.codec_name(),
                        byte,
                        position,
                        reason: "character maps to <undefined>",
                    });
                }
            }
        }
        Ok(out)
    }

    fn decode_byte(self, byte: u8) -> Option<char> {
        if byte < 0x80 {
            return Some(char::from(byte));
        }
        let index = usize::from(byte - 0x80);
        match self {
            Self::Cp1252 => match CP1252_HIGH.get(index) {
                Some(entry) => *entry,
                None => Some(char::from(byte)),
            },
            Self::Cp1251 => match CP1251_HIGH.get(index) {
                Some(entry) => *entry,
                None => char::from_u32(0x0410 + u32::from(byte - 0xc0)),
            },
            _ => Some(char::from(byte)),
        }
    }

    fn encode_char(self, ch: char) -> Option<u8> {
        if ch.is_ascii() {
            return u8::try_from(u32::from(ch)).ok();
        }
        match self {
            Self::Latin1 => u8::try_from(u32::from(ch)).ok(),
            Self::Cp1252 => (0x80u8..=0xff).find(|b| self.decode_byte(*b) == Some(ch)),
            Self::Cp1251 => {
                let code = u32::from(ch);
                if (0x0410..=0x044f).contains(&code) {
                    return u8::try_from(code - 0x0410 + 0xc0).ok();
                }
                (0x80u8..0xc0).find(|b| self.decode_byte(*b) == Some(ch))
            }
            _ => None,
        }
    }
}

fn decode_utf8(bytes: &[u8], offset: usize) -> Result<String, DecodeError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.to_owned()),
        Err(err) => {
            let position = err.valid_up_to();
            let byte = bytes.get(position).copied().unwrap_or_default();
            let reason = match err.error_len() {
                None => "unexpected end of data",
                Some(_) if (0x80..0xc2).contains(&byte) || byte >= 0xf5 => "invalid start byte",
                Some(_) => "invalid continuation byte",
            };
            Err(DecodeError {
                codec: "utf-8",
                byte,
                position: position + offset,
                reason,
            })
        }
    }
}

fn encode_utf16(text: &str, bom: [u8; 2], to_bytes: fn(u16) -> [u8; 2]) -> Vec<u8> {
    let mut out = bom.to_vec();
    for unit in text.encode_utf16() {
        out.extend_from_slice(&to_bytes(unit));
    }
    out
}

/// Whether decoded text holds control characters that never occur in ordinary text files
/// (`[\x00-\x08\x0e-\x1f\x7f]`, as the reference's clean-text check).
pub(crate) fn has_binary_control(text: &str) -> bool {
    text.chars()
        .any(|ch| matches!(ch, '\u{0}'..='\u{8}' | '\u{e}'..='\u{1f}' | '\u{7f}'))
}

/// Picks the encoding a file's bytes are read and written in.
///
/// A BOM wins; valid UTF-8 is UTF-8. Otherwise the first single-byte code page that decodes
/// the bytes to clean text is used (Windows-1251 first when the bytes look Cyrillic, then
/// Windows-1252, then Latin-1); if none is clean, the first that decodes at all.
pub(crate) fn detect(bytes: &[u8]) -> TextEncoding {
    if bytes.starts_with(UTF8_BOM) {
        return TextEncoding::Utf8Sig;
    }
    if bytes.starts_with(&[0xff, 0xfe]) {
        return TextEncoding::Utf16Le;
    }
    if bytes.starts_with(&[0xfe, 0xff]) {
        return TextEncoding::Utf16Be;
    }
    if std::str::from_utf8(bytes).is_ok() {
        return TextEncoding::Utf8;
    }
    let candidates: &[TextEncoding] = if looks_cyrillic(bytes) {
        &[
            TextEncoding::Cp1251,
            TextEncoding::Cp1252,
            TextEncoding::Latin1,
        ]
    } else {
        &[TextEncoding::Cp1252, TextEncoding::Latin1]
    };
    let decodable = || {
        candidates
            .iter()
            .copied()
            .filter_map(|enc| enc.decode(bytes).ok().map(|text| (enc, text)))
    };
    decodable()
        .find(|(_, text)| !has_binary_control(text))
        .or_else(|| decodable().next())
        .map_or(TextEncoding::Latin1, |(enc, _)| enc)
}

/// Cyrillic words in Windows-1251 are runs of bytes >= 0xC0, while accented Latin letters in
/// Windows-1252 mostly stand alone between ASCII letters.
fn looks_cyrillic(bytes: &[u8]) -> bool {
    let high = bytes.iter().filter(|b| **b >= 0xc0).count();
    let pairs = bytes
        .windows(2)
        .filter(|pair| pair[0] >= 0xc0 && pair[1] >= 0xc0)
        .count();
    high > 0 && pairs * 2 > high
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_byte_code_pages_round_trip() {
        for enc in [
            TextEncoding::Cp1252,
            TextEncoding::Cp1251,
            TextEncoding::Latin1,
        ] {
            let bytes: Vec<u8> = (0u8..=255)
                .filter(|b| enc.decode_byte(*b).is_some())
                .collect();
            let text = enc.decode(&bytes).unwrap();
            assert_eq!(enc.encode(&text).unwrap(), bytes, "{enc:?}");
        }
    }

    #[test]
    fn known_code_points() {
        assert_eq!(TextEncoding::Cp1252.decode(b"\x80\xe9").unwrap(), "€é");
        assert_eq!(TextEncoding::Cp1251.decode(b"\xcf\xf0\xe8").unwrap(), "При");
        assert!(TextEncoding::Cp1252.decode(b"\x81").is_err());
        assert_eq!(TextEncoding::Cp1252.encode("✓"), None);
    }

    #[test]
    fn detection() {
        assert_eq!(detect(b"plain"), TextEncoding::Utf8);
        assert_eq!(detect("héllo".as_bytes()), TextEncoding::Utf8);
        assert_eq!(detect(b"\xef\xbb\xbfhi"), TextEncoding::Utf8Sig);
        assert_eq!(detect(b"caf\xe9 cr\xe8me"), TextEncoding::Cp1252);
        assert_eq!(
            detect(b"\xcf\xf0\xe8\xe2\xe5\xf2 \xec\xe8\xf0"),
            TextEncoding::Cp1251
        );
        assert_eq!(detect(b"caf\x81"), TextEncoding::Latin1);
    }

    #[test]
    fn utf16_round_trip() {
        let bytes = TextEncoding::Utf16Le.encode("hé\n").unwrap();
        assert_eq!(detect(&bytes), TextEncoding::Utf16Le);
        assert_eq!(TextEncoding::Utf16Le.decode(&bytes).unwrap(), "hé\n");
        let be = TextEncoding::Utf16Be.encode("x").unwrap();
        assert_eq!(be, b"\xfe\xff\x00x");
        assert_eq!(TextEncoding::Utf16Be.decode(&be).unwrap(), "x");
    }

    #[test]
    fn utf8_errors_read_like_python() {
        let err = TextEncoding::Utf8.decode(b"ab\xff").unwrap_err();
        assert_eq!(
            err.to_string(),
            "'utf-8' codec can't decode byte 0xff in position 2: invalid start byte"
        );
    }
}
