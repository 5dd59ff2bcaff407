//! Marketplaces: catalogues of plugins (`.plugin/marketplace.json` or
//! `.claude-plugin/marketplace.json`), registered in an agent context's
//! `registered_marketplaces`, and the resolution of a plugin reference against them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::PluginError;
use super::fetch::fetch;

/// Where the marketplace manifest may be, in order.
pub const MANIFEST_DIRS: &[&str] = &[".plugin", ".claude-plugin"];
/// The marketplace manifest's file name.
pub const MANIFEST_FILE: &str = "marketplace.json";

/// One entry of `registered_marketplaces`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MarketplaceRegistration {
    /// The name plugin references use (`plugin@name`).
    pub name: String,
    /// `github:owner/repo`, a git URL or a local path.
    pub source: String,
    /// Branch, tag or commit (git sources).
    #[serde(default, rename = "ref")]
    pub git_ref: Option<String>,
    /// Subdirectory of the repository holding the marketplace.
    #[serde(default)]
    pub repo_path: Option<String>,
}

impl MarketplaceRegistration {
    /// The registrations of an `agent_context` JSON object.
    pub fn from_context(context: Option<&Value>) -> Result<Vec<Self>, PluginError> {
        let Some(context) = context.filter(|c| c.is_object()) else {
            return Err(PluginError::NoContext);
        };
        let list = match context.get("registered_marketplaces") {
            None | Some(Value::Null) => Vec::new(),
            Some(value) => Vec::<Self>::deserialize(value).map_err(|e| {
                PluginError::Invalid(format!("invalid registered_marketplaces: {e}"))
            })?,
        };
        if list.is_empty() {
            return Err(PluginError::NoMarketplaces);
        }
        let mut seen = std::collections::HashSet::new();
        for registration in &list {
            if !seen.insert(registration.name.as_str()) {
                return Err(PluginError::Invalid(format!(
                    "Duplicate marketplace registration: {}",
                    registration.name
                )));
            }
            if let Some(repo_path) = &registration.repo_path {
                check_repo_path(repo_path)?;
            }
        }
        Ok(list)
    }
}

fn check_repo_path(value: &str) -> Result<(), PluginError> {
    let reason = if value.is_empty() {
        Some("repo_path must not be empty")
    } else if value.contains('\\') {
        Some("repo_path must use '/' separators")
    } else if value.starts_with('/') || value.as_bytes().get(1) == Some(&b':') {
        Some("repo_path must be relative, not absolute")
    } else if value.split('/').any(|part| part == "..") {
        Some("repo_path cannot contain '..' path traversal")
    } else {
        None
    };
    reason.map_or(Ok(()), |r| Err(PluginError::Invalid(r.to_owned())))
}

/// Where a plugin of a marketplace is (a `source` as the plugin fetcher takes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSource {
    /// Local path, git URL or `github:owner/repo`.
    pub source: String,
    /// Branch, tag or commit.
    pub git_ref: Option<String>,
    /// Subdirectory of the repository.
    pub repo_path: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Owner {
    #[allow(dead_code)]
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum EntrySource {
    Path(String),
    Object(SourceObject),
}

#[derive(Debug, Deserialize)]
struct SourceObject {
    source: String,
    #[serde(default)]
    repo: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default, rename = "ref")]
    git_ref: Option<String>,
    #[serde(default)]
    path: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PluginEntry {
    name: String,
    source: EntrySource,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    #[allow(dead_code)]
    name: String,
    #[allow(dead_code)]
    owner: Owner,
    #[serde(default)]
    plugins: Vec<PluginEntry>,
}

/// A loaded marketplace: its plugin entries and the directory relative sources start from.
#[derive(Debug)]
pub(crate) struct Marketplace {
    plugins: Vec<PluginEntry>,
    dir: PathBuf,
}

impl Marketplace {
    /// Reads the marketplace in `dir`. Without a manifest, a directory of skill folders
    /// (`<name>/SKILL.md`) is a marketplace with no plugins, as in the reference; anything
    /// else is an error.
    pub(crate) fn load(dir: &Path) -> Result<Self, PluginError> {
        if !dir.is_dir() {
            return Err(PluginError::FileNotFound(format!(
                "Marketplace directory not found: {}",
                dir.display()
            )));
        }
        let manifest = MANIFEST_DIRS
            .iter()
            .map(|d| dir.join(d).join(MANIFEST_FILE))
            .find(|p| p.exists());
        let Some(manifest) = manifest else {
            if has_skill_folders(dir) {
                return Ok(Self {
                    plugins: Vec::new(),
                    dir: dir.to_owned(),
                });
            }
            return Err(PluginError::FileNotFound(format!(
                "Marketplace manifest not found. Expected {MANIFEST_FILE} in {} directory under {}, and no skill folders (<name>/SKILL.md) were found there",
                MANIFEST_DIRS.join(" or "),
                dir.display()
            )));
        };
        let text = std::fs::read_to_string(&manifest).map_err(|e| {
            PluginError::Invalid(format!("cannot read {}: {e}", manifest.display()))
        })?;
        let parsed: Manifest = serde_json::from_str(&text).map_err(|e| {
            PluginError::Invalid(format!(
                "Invalid marketplace manifest {}: {e}",
                manifest.display()
            ))
        })?;
        for entry in &parsed.plugins {
            if let EntrySource::Object(obj) = &entry.source {
                if obj.source == "github" && obj.repo.is_none() {
                    return Err(PluginError::Invalid(
                        "GitHub source requires 'repo' field".into(),
                    ));
                }
                if obj.source == "url" && obj.url.is_none() {
                    return Err(PluginError::Invalid(
                        "URL source requires 'url' field".into(),
                    ));
                }
            }
        }
        Ok(Self {
            plugins: parsed.plugins,
            dir: dir.to_owned(),
        })
    }

    fn entry(&self, name: &str) -> Option<&PluginEntry> {
        self.plugins.iter().find(|p| p.name == name)
    }

    /// Where the plugin of `entry` is: objects name a GitHub repository or a git URL;
    /// absolute paths and URLs stay as they are; other strings are relative to the
    /// marketplace (their leading `.` and `/` dropped, as the reference does).
    fn source_of(&self, entry: &PluginEntry) -> Result<PluginSource, PluginError> {
        match &entry.source {
            EntrySource::Object(obj) => {
                let source = match (obj.source.as_str(), &obj.repo, &obj.url) {
                    ("github", Some(repo), _) => format!("github:{repo}"),
                    ("url", _, Some(url)) => url.clone(),
                    (kind, _, _) => {
                        return Err(PluginError::Invalid(format!(
                            "Invalid plugin source for '{}': source type '{kind}' is missing required field",
                            entry.name
                        )));
                    }
                };
                Ok(PluginSource {
                    source,
                    git_ref: obj.git_ref.clone(),
                    repo_path: obj.path.clone(),
                })
            }
            EntrySource::Path(path) => {
                let source = if path.starts_with(['/', '~']) || path.contains("://") {
                    path.clone()
                } else {
                    self.dir
                        .join(path.trim_start_matches(['.', '/']))
                        .to_string_lossy()
                        .into_owned()
                };
                Ok(PluginSource {
                    source,
                    git_ref: None,
                    repo_path: None,
                })
            }
        }
    }
}

fn has_skill_folders(dir: &Path) -> bool {
    let roots: Vec<PathBuf> = [dir.join("skills"), dir.join(".skills")]
        .into_iter()
        .filter(|p| p.is_dir())
        .collect();
    let roots = if roots.is_empty() {
        vec![dir.to_owned()]
    } else {
        roots
    };
    roots.iter().any(|root| {
        std::fs::read_dir(root).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.path().join("SKILL.md").is_file())
        })
    })
}

/// Resolves plugin references against registered marketplaces, fetching each marketplace
/// at most once.
pub(crate) struct Registry<'a> {
    registrations: Vec<MarketplaceRegistration>,
    cache_dir: &'a Path,
    fetched: BTreeMap<String, Marketplace>,
}

impl<'a> Registry<'a> {
    pub(crate) fn new(registrations: Vec<MarketplaceRegistration>, cache_dir: &'a Path) -> Self {
        Self {
            registrations,
            cache_dir,
            fetched: BTreeMap::new(),
        }
    }

    async fn marketplace(&mut self, name: &str) -> Result<&Marketplace, PluginError> {
        if !self.fetched.contains_key(name) {
            let registration = self
                .registrations
                .iter()
                .find(|r| r.name == name)
                .ok_or_else(|| PluginError::MarketplaceNotFound(name.to_owned()))?;
            let fetched = fetch(
                &registration.source,
                registration.git_ref.as_deref(),
                registration.repo_path.as_deref(),
                self.cache_dir,
            )
            .await?;
            let path = fetched.path;
            let loaded = tokio::task::spawn_blocking(move || Marketplace::load(&path))
                .await
                .map_err(|e| PluginError::Invalid(format!("marketplace loading failed: {e}")))??;
            self.fetched.insert(name.to_owned(), loaded);
        }
        Ok(&self.fetched[name])
    }

    /// `plugin@marketplace` looks in that marketplace only; a bare name in every registered
    /// marketplace, and must be found in exactly one.
    pub(crate) async fn resolve(&mut self, plugin_ref: &str) -> Result<PluginSource, PluginError> {
        let (plugin, marketplace) = parse_ref(plugin_ref)?;
        if let Some(marketplace_name) = marketplace {
            let market = self.marketplace(marketplace_name).await?;
            let entry = market
                .entry(plugin)
                .ok_or_else(|| PluginError::PluginNotFound {
                    plugin: plugin.to_owned(),
                    marketplace: Some(marketplace_name.to_owned()),
                    fetch_errors: Vec::new(),
                })?;
            return market.source_of(entry);
        }
        let names: Vec<String> = self.registrations.iter().map(|r| r.name.clone()).collect();
        let mut matches = Vec::new();
        let mut fetch_errors = Vec::new();
        let mut searched = 0;
        for name in names {
            let market = match self.marketplace(&name).await {
                Ok(market) => market,
                Err(e) => {
                    tracing::warn!(marketplace = %name, plugin, error = %e, "marketplace not searched");
                    fetch_errors.push((name, e.to_string()));
                    continue;
                }
            };
            searched += 1;
            if let Some(entry) = market.entry(plugin) {
                matches.push((name, market.source_of(entry)?));
            }
        }
        match matches.len() {
            0 => Err(PluginError::PluginNotFound {
                plugin: plugin.to_owned(),
                marketplace: None,
                fetch_errors: if searched == 0 {
                    fetch_errors
                } else {
                    Vec::new()
                },
            }),
            1 => Ok(matches.remove(0).1),
            _ => Err(PluginError::Ambiguous {
                plugin: plugin.to_owned(),
                marketplaces: matches.into_iter().map(|(name, _)| name).collect(),
            }),
        }
    }
}

/// `name` or `name@marketplace` (split at the last `@`).
pub(crate) fn parse_ref(plugin_ref: &str) -> Result<(&str, Option<&str>), PluginError> {
    match plugin_ref.rsplit_once('@') {
        None if plugin_ref.is_empty() => Err(PluginError::Resolution(
            "Plugin reference must not be empty".into(),
        )),
        None => Ok((plugin_ref, None)),
        Some((plugin, market)) if plugin.is_empty() || market.is_empty() => {
            Err(PluginError::Resolution(
                "Plugin reference must use 'plugin-name@marketplace-name'".into(),
            ))
        }
        Some((plugin, market)) => Ok((plugin, Some(market))),
    }
}
