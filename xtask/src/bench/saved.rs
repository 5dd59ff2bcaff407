//! Saved conversations on disk, for the "RSS with 1,000 saved conversations"
//! measurement.
//!
//! The reference's own layout is used (spec §9.1): one directory per
//! conversation, `<conversations_path>/<id hex>/` with `meta.json`,
//! `base_state.json` and `events/event-NNNNN-<event id>.json`. Rather than
//! re-deriving the format, one conversation the Python server wrote itself (the
//! last scripted run, so it has events) is kept as a template, with its ids and
//! paths turned into placeholders, and cloned under fresh ids.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};

const ID: &str = "@@CONVERSATION_ID@@";
const ID_HEX: &str = "@@CONVERSATION_ID_HEX@@";
const CONVERSATIONS: &str = "@@CONVERSATIONS_PATH@@";
const WORKSPACE: &str = "@@WORKSPACE@@";

/// Files that belong to a live owner, not to the conversation.
fn skipped(name: &str) -> bool {
    name == "owner_lease.json" || name.ends_with(".lock")
}

/// Turns the conversation `id` (dashed) in `conversations` (host path), whose
/// server-side paths were `server_conversations` and `server_workspace`, into a
/// template in `template` (replaced).
pub(crate) fn capture(
    conversations: &Path,
    id: &str,
    server_conversations: &str,
    server_workspace: &str,
    template: &Path,
) -> Result<usize> {
    let hex = id.replace('-', "");
    let source = conversations.join(&hex);
    if !source.join("meta.json").is_file() {
        bail!("{} has no meta.json", source.display());
    }
    if template.exists() {
        fs::remove_dir_all(template)?;
    }
    let mut files = 0;
    copy_tree(&source, template, &mut files, &|text: &str| {
        text.replace(server_conversations, CONVERSATIONS)
            .replace(server_workspace, WORKSPACE)
            .replace(id, ID)
            .replace(&hex, ID_HEX)
    })?;
    Ok(files)
}

/// Writes `count` conversations cloned from `template` into `conversations`
/// (host path), for a server that sees `server_conversations` and
/// `server_workspace`.
pub(crate) fn generate(
    template: &Path,
    conversations: &Path,
    count: usize,
    server_conversations: &str,
    server_workspace: &str,
) -> Result<()> {
    if !template.join("meta.json").is_file() {
        bail!(
            "no conversation template at {} (it is captured from the Python server's scripted run; run the bench once with Python)",
            template.display()
        );
    }
    fs::create_dir_all(conversations)?;
    for _ in 0..count {
        let id = uuid::Uuid::new_v4();
        let dashed = id.hyphenated().to_string();
        let hex = id.simple().to_string();
        let mut files = 0;
        copy_tree(
            template,
            &conversations.join(&hex),
            &mut files,
            &|text: &str| {
                text.replace(CONVERSATIONS, server_conversations)
                    .replace(WORKSPACE, server_workspace)
                    .replace(ID_HEX, &hex)
                    .replace(ID, &dashed)
            },
        )?;
    }
    Ok(())
}

/// Copies `from` into `to`, passing UTF-8 files through `edit`.
fn copy_tree(
    from: &Path,
    to: &Path,
    files: &mut usize,
    edit: &dyn Fn(&str) -> String,
) -> Result<()> {
    fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if skipped(&name.to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            copy_tree(&path, &to.join(&name), files, edit)?;
        } else {
            let bytes = fs::read(&path)?;
            let out = match String::from_utf8(bytes) {
                Ok(text) => edit(&text).into_bytes(),
                Err(raw) => raw.into_bytes(),
            };
            fs::write(to.join(&name), out)?;
            *files += 1;
        }
    }
    Ok(())
}
