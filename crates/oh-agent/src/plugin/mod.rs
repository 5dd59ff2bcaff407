//! Plugins: directories that bundle skills and slash commands for the agent, found through
//! the marketplaces an agent context registers (`registered_marketplaces`), as the
//! reference's `load_plugin` does.
//!
//! [`load_plugin`] resolves a reference (`name` or `name@marketplace`), fetches the
//! marketplace and then the plugin (a local directory, or a git repository cloned into the
//! cache), reads the plugin ([`Plugin::load`]: its manifest, its skills through
//! [`crate::skills`], its commands as keyword-triggered skills) and returns the agent context
//! with the plugin's skills merged in (a plugin skill replaces one of the same name).
//!
//! Two layouts are read, as in the reference: the Claude Code one (`.plugin/plugin.json` or
//! `.claude-plugin/plugin.json`, or no manifest: the directory's name), and Agent Plugins (a
//! root `plugin.json` with a `$schema`; commands, agents and hooks under `dev.openhands/`).
//!
//! This agent runs no MCP servers, hooks or sub-agents: a plugin that carries any of them
//! is refused ([`PluginError::Unsupported`]) rather than loaded in part.

mod fetch;
pub mod marketplace;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::skills::{self, Skill, Trigger};

pub use marketplace::{MarketplaceRegistration, PluginSource};

/// The Agent Plugins manifest schema the reference accepts.
pub const AGENT_PLUGINS_SCHEMA: &str = "https://agent-plugins.org/schemas/1.0.0/plugin.schema.json";
/// Agent Plugins: the directory of this client's extensions (commands, agents, hooks).
const EXTENSION_DIR: &str = "dev.openhands";

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The agent has no `agent_context`.
    #[error(
        "No agent context available. Configure agent_context with registered_marketplaces to use load_plugin()."
    )]
    NoContext,
    /// The agent context registers no marketplace.
    #[error(
        "No marketplaces registered. Configure registered_marketplaces in AgentContext to use load_plugin()."
    )]
    NoMarketplaces,
    /// The reference is malformed.
    #[error("{0}")]
    Resolution(String),
    /// `plugin@marketplace` names a marketplace that is not registered.
    #[error("Marketplace '{0}' is not registered")]
    MarketplaceNotFound(String),
    /// No registered marketplace lists the plugin.
    #[error("{}", not_found_message(.plugin, .marketplace.as_deref(), .fetch_errors))]
    PluginNotFound {
        /// The plugin's name.
        plugin: String,
        /// The marketplace searched, when the reference named one.
        marketplace: Option<String>,
        /// Why each marketplace could not be searched (when none could).
        fetch_errors: Vec<(String, String)>,
    },
    /// A bare name listed by several marketplaces.
    #[error(
        "Plugin '{plugin}' is ambiguous; found in multiple marketplaces: {}. Use '{plugin}@<marketplace-name>'.",
        .marketplaces.join(", ")
    )]
    Ambiguous {
        /// The plugin's name.
        plugin: String,
        /// The marketplaces listing it.
        marketplaces: Vec<String>,
    },
    /// A source could not be fetched (unreachable, unknown ref, bad path).
    #[error("{0}")]
    Fetch(String),
    /// A directory or manifest is missing.
    #[error("{0}")]
    FileNotFound(String),
    /// A manifest or registration is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The plugin needs what this agent does not run.
    #[error(
        "Plugin '{plugin}' cannot be loaded: this server does not support {}",
        .features.join(", ")
    )]
    Unsupported {
        /// The plugin's name.
        plugin: String,
        /// What it carries that is not supported.
        features: Vec<String>,
    },
}

fn not_found_message(
    plugin: &str,
    marketplace: Option<&str>,
    errors: &[(String, String)],
) -> String {
    match marketplace {
        Some(m) => format!("Plugin '{plugin}' not found in marketplace '{m}'"),
        None if !errors.is_empty() => {
            let details: Vec<String> = errors.iter().map(|(n, e)| format!("{n}: {e}")).collect();
            format!(
                "Plugin '{plugin}' not found; marketplace fetch failed: {}",
                details.join("; ")
            )
        }
        None => format!("Plugin '{plugin}' not found in any registered marketplace"),
    }
}

impl PluginError {
    /// An unknown plugin or marketplace (the reference answers 404); every other error is
    /// the request's fault (400).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Self::PluginNotFound { .. } | Self::MarketplaceNotFound(_)
        )
    }
}

/// A slash command of a plugin (`commands/<name>.md`).
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// The file's stem.
    pub name: String,
    /// `description` from the frontmatter.
    pub description: String,
    /// `argument-hint` (a list is joined with spaces).
    pub argument_hint: Option<String>,
    /// `allowed-tools`.
    pub allowed_tools: Vec<String>,
    /// The body, trimmed.
    pub content: String,
    /// The file.
    pub source: String,
}

impl Command {
    fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let (meta, body) = skills::frontmatter::split(&text).map_err(|e| e.to_string())?;
        let text_of = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let pick = |a: &str, b: &str| {
            meta.get(a)
                .filter(|v| !is_falsy(v))
                .or_else(|| meta.get(b).filter(|v| !is_falsy(v)))
        };
        let argument_hint = pick("argument-hint", "argumentHint").map(|v| match v {
            Value::Array(items) => items.iter().map(text_of).collect::<Vec<_>>().join(" "),
            other => text_of(other),
        });
        let allowed_tools = match pick("allowed-tools", "allowedTools") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items.iter().map(text_of).collect(),
            _ => Vec::new(),
        };
        Ok(Self {
            name: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            description: meta.get("description").map(text_of).unwrap_or_default(),
            argument_hint,
            allowed_tools,
            content: body.trim().to_owned(),
            source: path.to_string_lossy().into_owned(),
        })
    }

    /// The keyword-triggered skill `<plugin>:<command>`, fired by `/<plugin>:<command>`.
    pub fn to_skill(&self, plugin: &str) -> Skill {
        let mut parts = Vec::new();
        if !self.description.is_empty() {
            parts.push(format!("## {}\n\n{}\n", self.name, self.description));
        }
        if let Some(hint) = &self.argument_hint {
            parts.push(format!("**Arguments**: `$ARGUMENTS` - {hint}\n"));
        }
        if !self.content.is_empty() {
            parts.push(format!("\n{}", self.content));
        }
        let description = if self.description.is_empty() {
            format!("Command {} from {plugin}", self.name)
        } else {
            self.description.clone()
        };
        Skill {
            source: Some(self.source.clone()),
            description: Some(description),
            ..Skill::new(
                format!("{plugin}:{}", self.name),
                parts.join("\n").trim(),
                Some(Trigger::Keyword(vec![format!("/{plugin}:{}", self.name)])),
            )
        }
    }
}

fn is_falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Bool(b) => !b,
        _ => false,
    }
}

/// A plugin read from its directory.
#[derive(Debug, Clone)]
pub struct Plugin {
    /// `name` of the manifest (or the directory's name).
    pub name: String,
    /// `version` of the manifest (`1.0.0` by default).
    pub version: String,
    /// Its directory.
    pub path: PathBuf,
    /// Skills of `skills/` (or a root `SKILL.md`).
    pub skills: Vec<Skill>,
    /// Slash commands.
    pub commands: Vec<Command>,
    /// Names of the MCP servers it declares.
    pub mcp_servers: Vec<String>,
    /// It declares hooks.
    pub has_hooks: bool,
    /// Its sub-agent definition files.
    pub agents: Vec<String>,
}

impl Plugin {
    /// Reads the plugin in `dir`.
    pub fn load(dir: &Path) -> Result<Self, PluginError> {
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
        if !dir.is_dir() {
            return Err(PluginError::FileNotFound(format!(
                "Plugin directory not found: {}",
                dir.display()
            )));
        }
        let agent_plugins = is_agent_plugins(&dir);
        let (name, version) = if agent_plugins {
            agent_plugins_manifest(&dir)?
        } else {
            claude_manifest(&dir)?
        };
        let extension_root = if agent_plugins {
            dir.join(EXTENSION_DIR)
        } else {
            dir.clone()
        };
        let mcp_file = dir.join(if agent_plugins {
            "mcp.json"
        } else {
            ".mcp.json"
        });
        Ok(Self {
            skills: load_plugin_skills(&dir),
            commands: md_files(&extension_root.join("commands"), &dir)
                .into_iter()
                .filter_map(|p| {
                    Command::load(&p)
                        .inspect_err(|e| tracing::warn!(path = %p.display(), error = %e, "skipping a command"))
                        .ok()
                })
                .collect(),
            mcp_servers: mcp_servers(&mcp_file, &dir),
            has_hooks: has_hooks(&extension_root.join("hooks").join("hooks.json"), &dir),
            agents: md_files(&extension_root.join("agents"), &dir)
                .into_iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
            name,
            version,
            path: dir,
        })
    }

    /// Its skills, then one per command.
    pub fn all_skills(&self) -> Vec<Skill> {
        let mut all = self.skills.clone();
        all.extend(self.commands.iter().map(|c| c.to_skill(&self.name)));
        all
    }

    /// What it carries that this agent cannot run.
    pub fn unsupported(&self) -> Vec<String> {
        let mut features = Vec::new();
        if !self.mcp_servers.is_empty() {
            features.push(format!("MCP servers ({})", self.mcp_servers.join(", ")));
        }
        if self.has_hooks {
            features.push("hooks".to_owned());
        }
        if !self.agents.is_empty() {
            features.push(format!("sub-agents ({} definition(s))", self.agents.len()));
        }
        features
    }

    /// `context` (an `agent_context` object, or none) with this plugin's skills merged in:
    /// a plugin skill replaces an existing skill of the same name in place, others are
    /// appended.
    pub fn add_skills_to(&self, context: Option<&Value>) -> Value {
        let mut context = context
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut list: Vec<Value> = context
            .get("skills")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let allowed: Vec<Option<&[String]>> = self
            .skills
            .iter()
            .map(|_| None)
            .chain(
                self.commands
                    .iter()
                    .map(|c| (!c.allowed_tools.is_empty()).then_some(c.allowed_tools.as_slice())),
            )
            .collect();
        for (skill, allowed_tools) in self.all_skills().iter().zip(allowed) {
            let value = skill_json(skill, allowed_tools);
            match list
                .iter_mut()
                .find(|s| s.get("name").and_then(Value::as_str) == Some(&skill.name))
            {
                Some(slot) => {
                    tracing::warn!(name = %skill.name, "plugin skill overrides an existing skill");
                    *slot = value;
                }
                None => list.push(value),
            }
        }
        context.insert("skills".into(), Value::Array(list));
        Value::Object(context)
    }
}

/// A skill in the JSON form the SDK's `Skill` model has in an `agent_context`.
pub fn skill_json(skill: &Skill, allowed_tools: Option<&[String]>) -> Value {
    let trigger = match &skill.trigger {
        None => Value::Null,
        Some(Trigger::Keyword(words)) => json!({"type": "keyword", "keywords": words}),
        Some(Trigger::Task(words)) => json!({"type": "task", "triggers": words}),
        Some(Trigger::Path(paths)) => json!({"type": "path", "paths": paths}),
    };
    json!({
        "name": skill.name,
        "content": skill.content,
        "trigger": trigger,
        "source": skill.source,
        "mcp_tools": null,
        "inputs": [],
        "is_agentskills_format": skill.is_agentskills_format,
        "version": "1.0.0",
        "description": skill.description,
        "license": null,
        "compatibility": null,
        "metadata": null,
        "allowed_tools": allowed_tools,
        "disable_model_invocation": skill.disable_model_invocation,
        "resources": null,
    })
}

fn is_agent_plugins(dir: &Path) -> bool {
    let manifest = dir.join("plugin.json");
    if !manifest.is_file() {
        return false;
    }
    match std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(t.trim_start_matches('\u{feff}')).ok())
    {
        Some(Value::Object(map)) => map.contains_key("$schema"),
        _ => true,
    }
}

fn read_manifest(path: &Path) -> Result<Map<String, Value>, PluginError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        PluginError::Invalid(format!("Failed to read manifest {}: {e}", path.display()))
    })?;
    match serde_json::from_str::<Value>(text.trim_start_matches('\u{feff}')) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(PluginError::Invalid(format!(
            "Manifest {} must contain a JSON object",
            path.display()
        ))),
        Err(e) => Err(PluginError::Invalid(format!(
            "Invalid JSON in {}: {e}",
            path.display()
        ))),
    }
}

fn name_and_version(
    map: &Map<String, Value>,
    path: &Path,
) -> Result<(String, String), PluginError> {
    let name = match map.get("name") {
        Some(Value::String(name)) => name.clone(),
        _ => {
            return Err(PluginError::Invalid(format!(
                "Failed to parse manifest {}: 'name' must be a string",
                path.display()
            )));
        }
    };
    let version = match map.get("version") {
        None => "1.0.0".to_owned(),
        Some(Value::String(v)) => v.clone(),
        Some(_) => {
            return Err(PluginError::Invalid(format!(
                "Failed to parse manifest {}: 'version' must be a string",
                path.display()
            )));
        }
    };
    Ok((name, version))
}

fn claude_manifest(dir: &Path) -> Result<(String, String), PluginError> {
    let found = [".plugin", ".claude-plugin"]
        .iter()
        .map(|d| dir.join(d).join("plugin.json"))
        .find(|p| p.symlink_metadata().is_ok());
    let Some(path) = found else {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Ok((name, "1.0.0".to_owned()));
    };
    if !within(&path, dir) {
        return Err(PluginError::Invalid(format!(
            "Manifest {} resolves outside the plugin root",
            path.display()
        )));
    }
    let map = read_manifest(&path)?;
    name_and_version(&map, &path)
}

fn agent_plugins_manifest(dir: &Path) -> Result<(String, String), PluginError> {
    let path = dir.join("plugin.json");
    if !within(&path, dir) {
        return Err(PluginError::Invalid(format!(
            "Manifest {} resolves outside the plugin root",
            path.display()
        )));
    }
    let map = read_manifest(&path)?;
    let schema = map.get("$schema");
    if schema.and_then(Value::as_str) != Some(AGENT_PLUGINS_SCHEMA) {
        return Err(PluginError::Invalid(format!(
            "Unsupported or missing $schema in {}: {}. Supported: {AGENT_PLUGINS_SCHEMA}",
            path.display(),
            schema.map_or("None".to_owned(), Value::to_string)
        )));
    }
    name_and_version(&map, &path)
}

/// Whether `path` resolves inside `root` (a link may not lead out of the plugin).
fn within(path: &Path, root: &Path) -> bool {
    match (std::fs::canonicalize(path), std::fs::canonicalize(root)) {
        (Ok(p), Ok(r)) => p.starts_with(r),
        _ => false,
    }
}

/// `skills/`: its `<name>/SKILL.md` folders and its top-level `.md` files (not deeper:
/// those are a skill's resources), in path order; without `skills/`, a root `SKILL.md`.
fn load_plugin_skills(dir: &Path) -> Vec<Skill> {
    let skills_dir = dir.join("skills");
    if skills_dir.symlink_metadata().is_ok() {
        if !within(&skills_dir, dir) || !skills_dir.is_dir() {
            tracing::warn!(path = %skills_dir.display(), "ignoring the plugin's skills");
            return Vec::new();
        }
        let mut found: Vec<Skill> = skills::load_skills_from_dir(&skills_dir)
            .into_iter()
            .filter(|s| {
                let Some(source) = s.source.as_deref().map(Path::new) else {
                    return false;
                };
                let top_level = if s.is_agentskills_format {
                    source.parent().and_then(Path::parent) == Some(skills_dir.as_path())
                } else {
                    source.parent() == Some(skills_dir.as_path())
                };
                top_level && within(source, dir)
            })
            .collect();
        found.sort_by(|a, b| a.source.cmp(&b.source));
        return found;
    }
    let root_skill = std::fs::read_dir(dir).ok().and_then(|entries| {
        entries.filter_map(Result::ok).map(|e| e.path()).find(|p| {
            p.is_file()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().eq_ignore_ascii_case("skill.md"))
        })
    });
    match root_skill {
        Some(path) if within(&path, dir) => match Skill::load(&path, Some(dir)) {
            Ok(skill) => vec![skill],
            Err(e) => {
                tracing::warn!(error = %e, "skipping the plugin's root skill");
                Vec::new()
            }
        },
        _ => Vec::new(),
    }
}

/// Top-level `.md` files of `dir` (not `README.md`) inside `root`, sorted.
fn md_files(dir: &Path, root: &Path) -> Vec<PathBuf> {
    if !dir.is_dir() || !within(dir, root) {
        return Vec::new();
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    !p.is_dir()
                        && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("md"))
                        && p.file_name()
                            .is_some_and(|n| !n.to_string_lossy().eq_ignore_ascii_case("readme.md"))
                        && within(p, root)
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The server names of `mcpServers` in an MCP config file (none when absent or unreadable,
/// which the reference also ignores).
fn mcp_servers(path: &Path, root: &Path) -> Vec<String> {
    if !path.is_file() || !within(path, root) {
        return Vec::new();
    }
    let parsed = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok());
    match parsed
        .as_ref()
        .and_then(|v| v.get("mcpServers"))
        .and_then(Value::as_object)
    {
        Some(servers) => servers.keys().cloned().collect(),
        None => {
            tracing::warn!(path = %path.display(), "ignoring an MCP config without mcpServers");
            Vec::new()
        }
    }
}

/// Whether a hooks file declares at least one hook.
fn has_hooks(path: &Path, root: &Path) -> bool {
    if !path.is_file() || !within(path, root) {
        return false;
    }
    let Some(value) = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
    else {
        tracing::warn!(path = %path.display(), "ignoring an unreadable hooks file");
        return false;
    };
    let events = value.get("hooks").unwrap_or(&value);
    events.as_object().is_some_and(|map| {
        map.values().any(|v| match v {
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            _ => false,
        })
    })
}

/// A plugin loaded into an agent context.
#[derive(Debug, Clone)]
pub struct LoadedPlugin {
    /// The plugin.
    pub plugin: Plugin,
    /// The commit fetched, for a git source.
    pub resolved_ref: Option<String>,
    /// The agent context with the plugin's skills.
    pub agent_context: Value,
}

/// Loads `plugin_ref` from the marketplaces registered in `agent_context`; git sources are
/// cloned under `cache_dir`. The agent context itself is not changed: the caller stores
/// [`LoadedPlugin::agent_context`].
pub async fn load_plugin(
    agent_context: Option<&Value>,
    plugin_ref: &str,
    cache_dir: &Path,
) -> Result<LoadedPlugin, PluginError> {
    let registrations = MarketplaceRegistration::from_context(agent_context)?;
    let mut registry = marketplace::Registry::new(registrations, cache_dir);
    let spec = registry.resolve(plugin_ref).await?;
    let fetched = fetch::fetch(
        &spec.source,
        spec.git_ref.as_deref(),
        spec.repo_path.as_deref(),
        cache_dir,
    )
    .await?;
    let path = fetched.path;
    let plugin = tokio::task::spawn_blocking(move || Plugin::load(&path))
        .await
        .map_err(|e| PluginError::Invalid(format!("plugin loading failed: {e}")))??;
    let features = plugin.unsupported();
    if !features.is_empty() {
        return Err(PluginError::Unsupported {
            plugin: plugin.name,
            features,
        });
    }
    tracing::info!(plugin = %plugin.name, version = %plugin.version, resolved_ref = ?fetched.resolved_ref, "plugin loaded");
    let agent_context = plugin.add_skills_to(agent_context);
    Ok(LoadedPlugin {
        plugin,
        resolved_ref: fetched.resolved_ref,
        agent_context,
    })
}

#[cfg(test)]
mod tests;
