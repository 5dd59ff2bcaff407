//! The `view` command: files with line numbers, directory listings, images.

use std::fs;
use std::path::Path;

use base64::Engine as _;
use oh_protocol::message::{Content, ImageContent};
use oh_protocol::tool::{FileEditorCommand, FileEditorObservation};

use crate::regular_file::{self, OpenError};

use super::error::EditorError;
use super::fsio::{LoadFailure, is_image, load, not_regular, validate_file};
use super::text::{
    DIRECTORY_CONTENT_TRUNCATED_NOTICE, MAX_RESPONSE_LEN_CHAR, cat_n, count_lines, line_range,
};
use super::text_observation;
use crate::pyfmt::{os_error, py_int_list};
use crate::tools::truncate::maybe_truncate;

/// Runs `view` on an existing path.
pub(crate) fn view(
    path: &Path,
    display: &str,
    view_range: Option<&[i64]>,
) -> Result<FileEditorObservation, EditorError> {
    if path.is_dir() {
        return view_directory(path, display, view_range);
    }
    if is_image(path) {
        return view_image(path, display);
    }
    view_file(path, display, view_range)
}

fn view_file(
    path: &Path,
    display: &str,
    view_range: Option<&[i64]>,
) -> Result<FileEditorObservation, EditorError> {
    validate_file(path, display)?;
    let loaded = load(path).map_err(|failure| match failure {
        LoadFailure::Decode(err) => EditorError::Tool(format!(
            "Cannot view {display}: file contains binary content that cannot be decoded as \
             text. Error: {err}"
        )),
        open @ LoadFailure::Open(_) => open.into_read_error(path, display),
    })?;
    let text = match view_range {
        None | Some([]) => cat_n(&loaded.text, display, 1),
        Some(range) => view_lines(&loaded.text, display, range)?,
    };
    Ok(text_observation(FileEditorCommand::View, text, display))
}

/// A `view_range` view: checks the range as the reference does and clamps an end past the
/// last line with a leading note.
fn view_lines(text: &str, display: &str, range: &[i64]) -> Result<String, EditorError> {
    let shown = py_int_list(range);
    let &[start, end] = range else {
        return Err(EditorError::invalid(
            "view_range",
            shown,
            "It should be a list of two integers.",
        ));
    };
    let num_lines = i64::try_from(count_lines(text)).unwrap_or(i64::MAX);
    if start < 1 || start > num_lines {
        return Err(EditorError::invalid(
            "view_range",
            shown,
            format!(
                "Its first element `{start}` should be within the range of lines of the file: \
                 {}.",
                py_int_list(&[1, num_lines])
            ),
        ));
    }
    let mut note = None;
    let end = if end == -1 {
        num_lines
    } else if end > num_lines {
        note = Some(format!(
            "NOTE: We only show up to {num_lines} since there're only {num_lines} lines in this \
             file.\n"
        ));
        num_lines
    } else {
        end
    };
    if end < start {
        return Err(EditorError::invalid(
            "view_range",
            shown,
            format!(
                "Its second element `{end}` should be greater than or equal to the first element \
                 `{start}`."
            ),
        ));
    }
    let (first, last) = (to_index(start), to_index(end));
    let body = cat_n(&line_range(text, first, last), display, first);
    Ok(note.unwrap_or_default() + &body)
}

fn to_index(value: i64) -> usize {
    usize::try_from(value).unwrap_or_default()
}

fn view_image(path: &Path, display: &str) -> Result<FileEditorObservation, EditorError> {
    let bytes = regular_file::read(path).map_err(|err| match err {
        OpenError::Io(err) => EditorError::Tool(format!(
            "Failed to read image file {display}: {}",
            os_error(&err, path)
        )),
        _ => not_regular(display),
    })?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    let url = format!("data:{};base64,{encoded}", image_mime(path));
    let mut observation = text_observation(
        FileEditorCommand::View,
        format!("Image file {display} read successfully. Displaying image content."),
        display,
    );
    observation.content.push(Content::Image(ImageContent {
        cache_prompt: false,
        image_urls: vec![url],
    }));
    Ok(observation)
}

/// The MIME type Python's `mimetypes` gives each image extension.
fn image_mime(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .map(|ext| ext.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        _ => "image/png",
    }
}

fn view_directory(
    path: &Path,
    display: &str,
    view_range: Option<&[i64]>,
) -> Result<FileEditorObservation, EditorError> {
    if let Some(range) = view_range.filter(|range| !range.is_empty()) {
        return Err(EditorError::invalid(
            "view_range",
            py_int_list(range),
            "The `view_range` parameter is not allowed when `path` points to a directory.",
        ));
    }
    let children = match sorted_children(path) {
        Ok(children) => children,
        Err(err) => {
            let mut observation =
                text_observation(FileEditorCommand::View, os_error(&err, path), display);
            observation.is_error = true;
            return Ok(observation);
        }
    };
    let hidden = children.iter().filter(|name| is_hidden(name)).count();
    let mut lines = vec![format!("{display}/")];
    for child in children.iter().filter(|name| !is_hidden(name)) {
        let child_path = path.join(child);
        let child_is_dir = child_path.is_dir();
        lines.push(entry_line(display, child, child_is_dir));
        if !child_is_dir {
            continue;
        }
        for grandchild in sorted_children(&child_path).unwrap_or_default() {
            if is_hidden(&grandchild) {
                continue;
            }
            let is_dir = child_path.join(&grandchild).is_dir();
            lines.push(entry_line(
                display,
                &format!("{child}/{grandchild}"),
                is_dir,
            ));
        }
    }
    let mut text = format!(
        "Here's the files and directories up to 2 levels deep in {display}, excluding hidden \
         items:\n{}",
        lines.join("\n")
    );
    if hidden > 0 {
        text.push_str(&format!(
            "\n\n{hidden} hidden files/directories in this directory are excluded. You can use \
             'ls -la {display}' to see them."
        ));
    }
    let text = maybe_truncate(
        &text,
        MAX_RESPONSE_LEN_CHAR,
        DIRECTORY_CONTENT_TRUNCATED_NOTICE,
    );
    Ok(text_observation(FileEditorCommand::View, text, display))
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

fn entry_line(root: &str, relative: &str, is_dir: bool) -> String {
    let slash = if is_dir { "/" } else { "" };
    format!("{root}/{relative}{slash}")
}

/// Entry names of a directory, sorted as Python sorts path strings (by code point).
fn sorted_children(path: &Path) -> std::io::Result<Vec<String>> {
    let mut names = fs::read_dir(path)?
        .map(|entry| entry.map(|entry| entry.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<Vec<String>>>()?;
    names.sort();
    Ok(names)
}
