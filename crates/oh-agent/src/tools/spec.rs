//! Wire schemas and descriptions of the default tools.
//!
//! The parameter schemas are the reference's, fact for fact: property names, types, enums,
//! `items` structure and `required` lists equal what the Python SDK 1.57.0 sends (the golden
//! copy is `tests/fixtures/llm_requests/tools.json`, checked by `tests/tool_schemas.rs`). The
//! reference emits no `default`, `minimum` or `additionalProperties` keys, so neither do we.
//! The prose (tool descriptions and property descriptions) is our own.
//!
//! Every tool gets an optional `summary` parameter; tools that can change something
//! (everything but `finish` and `think`) also get an optional `security_risk` parameter. See
//! [`with_injected_fields`].

use oh_protocol::tool::{ToolAnnotations, ToolDefinition};
use serde_json::{Map, Value, json};

use crate::llm::ToolSchema;

/// One of the five tools of the default agent, in wire order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DefaultTool {
    /// `terminal`: a persistent shell.
    Terminal,
    /// `file_editor`: view, create and edit files.
    FileEditor,
    /// `task_tracker`: the agent's task list.
    TaskTracker,
    /// `finish`: end the task with a message.
    Finish,
    /// `think`: record reasoning.
    Think,
}

impl DefaultTool {
    /// All five, in the order the reference offers them to the LLM.
    pub const ALL: [DefaultTool; 5] = [
        DefaultTool::Terminal,
        DefaultTool::FileEditor,
        DefaultTool::TaskTracker,
        DefaultTool::Finish,
        DefaultTool::Think,
    ];

    /// The tool with this wire name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|tool| tool.name() == name)
    }

    /// Wire name, e.g. `terminal`.
    pub fn name(self) -> &'static str {
        match self {
            DefaultTool::Terminal => "terminal",
            DefaultTool::FileEditor => "file_editor",
            DefaultTool::TaskTracker => "task_tracker",
            DefaultTool::Finish => "finish",
            DefaultTool::Think => "think",
        }
    }

    /// The tool's class name in the reference, e.g. `TerminalTool` (`kind` in tool records).
    pub fn kind(self) -> &'static str {
        match self {
            DefaultTool::Terminal => "TerminalTool",
            DefaultTool::FileEditor => "FileEditorTool",
            DefaultTool::TaskTracker => "TaskTrackerTool",
            DefaultTool::Finish => "FinishTool",
            DefaultTool::Think => "ThinkTool",
        }
    }

    /// `kind` of the tool's actions, e.g. `TerminalAction`.
    pub fn action_kind(self) -> &'static str {
        match self {
            DefaultTool::Terminal => "TerminalAction",
            DefaultTool::FileEditor => "FileEditorAction",
            DefaultTool::TaskTracker => "TaskTrackerAction",
            DefaultTool::Finish => "FinishAction",
            DefaultTool::Think => "ThinkAction",
        }
    }

    /// `kind` of the tool's observations, e.g. `TerminalObservation`.
    pub fn observation_kind(self) -> &'static str {
        match self {
            DefaultTool::Terminal => "TerminalObservation",
            DefaultTool::FileEditor => "FileEditorObservation",
            DefaultTool::TaskTracker => "TaskTrackerObservation",
            DefaultTool::Finish => "FinishObservation",
            DefaultTool::Think => "ThinkObservation",
        }
    }

    /// Whether the tool never changes anything: such tools get no `security_risk`
    /// parameter and are not subject to confirmation. True for `finish` and `think`.
    pub fn read_only(self) -> bool {
        matches!(self, DefaultTool::Finish | DefaultTool::Think)
    }

    /// The MCP-style hints the reference records for the tool. `task_tracker` and `think`
    /// carry no title there.
    pub fn annotations(self) -> ToolAnnotations {
        // (title, read-only, destructive, idempotent, open world)
        let (title, read_only, destructive, idempotent, open_world) = match self {
            DefaultTool::Terminal => (Some("terminal"), false, true, false, true),
            DefaultTool::FileEditor => (Some("file_editor"), false, true, false, false),
            DefaultTool::TaskTracker => (None, false, false, true, false),
            DefaultTool::Finish => (Some("finish"), true, false, true, false),
            DefaultTool::Think => (None, true, false, true, false),
        };
        ToolAnnotations {
            title: title.map(str::to_owned),
            read_only_hint: read_only,
            destructive_hint: destructive,
            idempotent_hint: idempotent,
            open_world_hint: open_world,
        }
    }
}

// ------------------------------------------------------------------------- descriptions

const TERMINAL: &str = "\
Runs a shell command in one long-lived bash session.

How commands run:
* Send a single command per call. To run several in sequence, join them on one line with `&&` or `;`.
* The session keeps its state between calls: the current directory, exported variables and activated virtual environments all carry over.
* If a command prints nothing new for 30 seconds and you gave no `timeout`, the call comes back early with exit code -1 while the command goes on running.
* Do not turn on strict modes such as `set -e`, `set -eu` or `set -o pipefail`; they can end the session itself.

Long or never-ending commands:
* Start servers and watchers in the background with their output sent to a log file, for example `npm start > app.log 2>&1 &`.
* Give slow commands (builds, test suites, installs) a `timeout` large enough for them to finish.
* Exit code -1 means the command is still running. Call again to deal with it: an empty `command` collects its new output; with `is_input` set to true, text is typed into its standard input, and key names are sent as keystrokes: `C-c`, `C-d`, `C-z` or any other `C-<letter>`, `ENTER`, `TAB`, `ESC`, `BS`, the arrows `UP`, `DOWN`, `LEFT` and `RIGHT`, `HOME`, `END`, `PGUP`, `PGDN`.

Good habits:
* Before creating a file, make sure its directory is there.
* Use absolute paths instead of changing directory often.
* Very long output is shortened before you see it.

Reset:
* `reset` set to true throws the session away and opens a fresh one. Use it only when the shell stops responding: the working directory, variables and running processes are all lost.";

const FILE_EDITOR_HEAD: &str = "\
Views, creates and edits plain-text files.
* Its state, undo history included, lasts across calls for the whole conversation.
* `view` on a file prints it with line numbers, like `cat -n`; on a directory it lists files and folders two levels deep, skipping hidden ones.
";

const FILE_EDITOR_IMAGES: &str = "\
* `view` on an image (.png, .jpg, .jpeg, .gif, .webp, .bmp) returns the picture itself.
";

const FILE_EDITOR_BODY: &str = "\
* `create` writes a new file and refuses to replace one that already exists.
* Long results are cut short and marked `<response clipped>`.
* `undo_edit` puts the file at `path` back the way it was before its most recent edit.

Before editing:
1. Look at the file with `view` to see its current contents and surroundings.
2. When creating a file, make sure its parent directory exists and is the intended place.

While editing:
* Keep the code correct and idiomatic; never leave it half-changed.
* Always give absolute paths, starting with `/`.

Rules for `str_replace`:
1. `old_str` has to equal the file's text exactly, whitespace and indentation included, covering whole consecutive lines.
2. `old_str` has to occur once only. Take in a few lines around the change (three to five is usually enough) so it is unique; otherwise nothing is replaced.
3. `new_str` holds the replacement lines and has to differ from `old_str`.

Several edits to one file are best sent together, as multiple calls in one response, rather than one call per response.
";

const TASK_TRACKER: &str = "\
Keeps a structured task list for multi-step work, so that progress stays visible to you and to the user.

When to use it:
* Work with several steps or parts, or several requests arriving together.
* Larger features or refactors that need planning across files or components.
* When the user asks for a plan or a task list.
* At the start of a project, to write down what was asked for.

When to skip it:
* A single simple change, or a plain question: just do it, or answer it.

Commands:
* `view` shows the current list. Look at it before changing anything.
* `plan` replaces the whole list with `task_list`, so always send every task, not only the changed ones.

Statuses (`todo`, `in_progress`, `done`):
* Move a task to `in_progress` before starting on it, and have only one task in progress at a time.
* Mark a task `done` as soon as it is really finished: its tests pass, nothing is left half-done and no errors remain. Otherwise leave it `in_progress` and add new tasks for the problems you found.
* Remove tasks that no longer apply.
* Give tasks short, concrete titles and put details in `notes`.

Example: for \"add login and logout with input validation\", plan tasks such as designing the endpoints, writing each handler, adding validation and error handling, and testing it all. For \"what does this regex mean?\", answer directly, with no task list.

When in doubt about whether the work is big enough, use it.";

const FINISH: &str = "\
Ends the task and hands control back to the user.

Call it when the requested work is complete, or when you cannot go on because something is missing, broken or out of your reach.

In `message`, tell the user what you did and what came of it, what they may want to do next, why anything could not be done, and any questions you need answered.";

const THINK: &str = "\
Writes down a thought. It fetches nothing and changes nothing; it only records your reasoning in the conversation.

Useful for:
1. Weighing several possible fixes once you have found the cause of a bug, and picking the simplest sound one.
2. Working out why tests failed and how to make them pass.
3. Comparing approaches and their trade-offs before a larger refactor.
4. Planning the design of a new feature.
5. Sorting out hypotheses while debugging something complicated.";

/// The description of `tool` shown to the LLM. `working_dir` is the workspace directory;
/// only `file_editor` mentions it (see [`file_editor_description`], here without the
/// image line).
pub fn description(tool: DefaultTool, working_dir: &str) -> String {
    match tool {
        DefaultTool::Terminal => TERMINAL.to_owned(),
        DefaultTool::FileEditor => file_editor_description(working_dir, false),
        DefaultTool::TaskTracker => TASK_TRACKER.to_owned(),
        DefaultTool::Finish => FINISH.to_owned(),
        DefaultTool::Think => THINK.to_owned(),
    }
}

/// The `file_editor` description. With `vision` (the model accepts images) it also says that
/// viewing an image file returns the image, as the reference does for such models. It ends
/// with [`working_dir_sentence`].
pub fn file_editor_description(working_dir: &str, vision: bool) -> String {
    let mut text = String::from(FILE_EDITOR_HEAD);
    if vision {
        text.push_str(FILE_EDITOR_IMAGES);
    }
    text.push_str(FILE_EDITOR_BODY);
    text.push('\n');
    text.push_str(&working_dir_sentence(working_dir));
    text
}

/// The closing sentence of the `file_editor` description, naming the workspace directory.
pub fn working_dir_sentence(working_dir: &str) -> String {
    format!(
        "The workspace directory is {working_dir}. Begin exploring the project there, \
         not at the root of the filesystem."
    )
}

// ------------------------------------------------------------------------- schemas

/// `{"type": "string", "description": …}`.
fn string(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

/// `{"type": "boolean", "description": …}`.
fn boolean(description: &str) -> Value {
    json!({ "type": "boolean", "description": description })
}

/// `{"type": "string", "description": …, "enum": [...]}`.
fn string_enum(description: &str, values: &[&str]) -> Value {
    json!({ "type": "string", "description": description, "enum": values })
}

/// An object schema from `(name, schema)` pairs, in order, and the required names
/// (`None`: no `required` key, as the reference emits for actions without required fields).
fn object(properties: Vec<(&str, Value)>, required: Option<&[&str]>) -> Value {
    let properties: Map<String, Value> = properties
        .into_iter()
        .map(|(name, schema)| (name.to_owned(), schema))
        .collect();
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Value::Object(properties));
    if let Some(required) = required {
        schema.insert("required".into(), json!(required));
    }
    Value::Object(schema)
}

/// The JSON schema of the tool's own action: `{"type": "object", "properties": {...},
/// "required": [...]}`, without the injected `security_risk` and `summary`.
pub fn action_parameters(tool: DefaultTool) -> Value {
    match tool {
        DefaultTool::Terminal => object(
            vec![
                (
                    "command",
                    string(
                        "Shell command to run; one command per call. Leave it empty to read \
                         more output of a command that came back with exit code -1. With \
                         `is_input`, it is instead text for the running program, or a key \
                         name: `C-c`, `C-d`, `C-z`, any `C-<letter>`, `ENTER`, `TAB`, `ESC`, \
                         `BS`, the arrows `UP`/`DOWN`/`LEFT`/`RIGHT`, `HOME`, `END`, `PGUP`, \
                         `PGDN`.",
                    ),
                ),
                (
                    "is_input",
                    boolean(
                        "When true, `command` goes to the program that is still running \
                         instead of starting a new command. False if left out.",
                    ),
                ),
                (
                    "timeout",
                    json!({
                        "type": "number",
                        "description": "Hard time limit in seconds. When it is reached the \
                            call returns with exit code -1 and the command keeps running. \
                            Without it, the call returns once the command has printed nothing \
                            new for 30 seconds. Set it generously for installs, builds, test \
                            runs and anything with a known long duration.",
                    }),
                ),
                (
                    "reset",
                    boolean(
                        "When true, discard the current shell and start a new one. A last \
                         resort for a terminal that stopped responding: variables, the working \
                         directory and background processes are lost. Not allowed together \
                         with `is_input`.",
                    ),
                ),
            ],
            Some(&["command"]),
        ),
        DefaultTool::FileEditor => object(
            vec![
                (
                    "command",
                    string_enum(
                        "Which operation to run.",
                        &["view", "create", "str_replace", "insert", "undo_edit"],
                    ),
                ),
                (
                    "path",
                    string("Absolute path of the file or directory to work on."),
                ),
                (
                    "file_text",
                    string("Full content of the new file; needed by `create`."),
                ),
                (
                    "old_str",
                    string("The exact text in the file to replace; needed by `str_replace`."),
                ),
                (
                    "new_str",
                    string(
                        "The replacement text for `str_replace`, or the text to add for \
                         `insert`.",
                    ),
                ),
                (
                    "insert_line",
                    json!({
                        "type": "integer",
                        "description": "For `insert`: the line after which `new_str` is \
                            added; 0 puts it at the top of the file.",
                    }),
                ),
                (
                    "view_range",
                    json!({
                        "type": "array",
                        "items": { "type": "integer" },
                        "description": "For `view` of a file only: `[first, last]` line \
                            numbers, counted from 1, both included; a `last` of -1 means up to \
                            the end. Without it the whole file is shown.",
                    }),
                ),
            ],
            Some(&["command", "path"]),
        ),
        DefaultTool::TaskTracker => object(
            vec![
                (
                    "command",
                    string_enum(
                        "`view` prints the current list; `plan` replaces it with `task_list`. \
                         Check the list with `view` before changing it.",
                        &["view", "plan"],
                    ),
                ),
                (
                    "task_list",
                    json!({
                        "type": "array",
                        "description": "Every task, in order; it replaces the whole list. \
                            Used by `plan`.",
                        "items": object(
                            vec![
                                ("title", string("Short name of the task.")),
                                ("notes", string("Optional details about the task.")),
                                (
                                    "status",
                                    string_enum(
                                        "Progress of the task.",
                                        &["todo", "in_progress", "done"],
                                    ),
                                ),
                            ],
                            Some(&["title"]),
                        ),
                    }),
                ),
            ],
            None,
        ),
        DefaultTool::Finish => object(
            vec![("message", string("The closing message for the user."))],
            Some(&["message"]),
        ),
        DefaultTool::Think => object(
            vec![("thought", string("The reasoning to record."))],
            Some(&["thought"]),
        ),
    }
}

/// The values of the injected `security_risk` parameter.
pub const SECURITY_RISK_VALUES: [&str; 4] = ["UNKNOWN", "LOW", "MEDIUM", "HIGH"];

/// Adds the parameters the agent injects into every tool: `security_risk` (a string enum of
/// [`SECURITY_RISK_VALUES`], left out when `read_only`) and `summary` (a string). Both are
/// optional: `required` is not touched. They are inserted before the action's own
/// properties, as the reference does; whether that order survives depends on `serde_json`'s
/// `preserve_order` feature, which this workspace does not enable, so do not rely on it.
pub fn with_injected_fields(parameters: Value, read_only: bool) -> Value {
    let Value::Object(mut schema) = parameters else {
        return parameters;
    };
    let mut properties = Map::new();
    if !read_only {
        properties.insert(
            "security_risk".into(),
            string_enum(
                "How risky this action is, by the risk guidance in the system prompt: LOW, \
                 MEDIUM or HIGH, or UNKNOWN when you cannot tell.",
                &SECURITY_RISK_VALUES,
            ),
        );
    }
    properties.insert(
        "summary".into(),
        string(
            "About ten words on what this call does and to what, for example \
             'Run the parser unit tests'.",
        ),
    );
    if let Some(Value::Object(own)) = schema.remove("properties") {
        properties.extend(own);
    }
    schema.insert("properties".into(), Value::Object(properties));
    Value::Object(schema)
}

/// The full parameter schema sent to the LLM for `tool`.
pub fn wire_parameters(tool: DefaultTool) -> Value {
    with_injected_fields(action_parameters(tool), tool.read_only())
}

/// The tool as offered to the LLM (name, description, wire parameters).
pub fn tool_schema(tool: DefaultTool, working_dir: &str) -> ToolSchema {
    ToolSchema {
        name: tool.name().to_owned(),
        description: description(tool, working_dir),
        parameters: wire_parameters(tool),
    }
}

/// The tool's record in the `SystemPromptEvent`.
pub fn tool_definition(tool: DefaultTool, working_dir: &str) -> ToolDefinition {
    definition(
        tool.name(),
        tool.kind(),
        tool.action_kind(),
        tool.observation_kind(),
        description(tool, working_dir),
        tool.annotations(),
    )
}

/// A tool's record in the `SystemPromptEvent`, from its wire name, its class names in the
/// reference (`GlobTool`, `GlobAction`, `GlobObservation`), its description and its hints.
/// No `meta`, prompt guidance or response schema; set them on the result where a tool has
/// them.
pub fn definition(
    name: &str,
    kind: &str,
    action_type: &str,
    observation_type: &str,
    description: String,
    annotations: ToolAnnotations,
) -> ToolDefinition {
    ToolDefinition {
        description,
        action_type: action_type.to_owned(),
        observation_type: Some(observation_type.to_owned()),
        annotations: Some(annotations),
        meta: None,
        prompt_guidance: None,
        response_schema: None,
        kind: kind.to_owned(),
        title: name.to_owned(),
    }
}

/// The hints of a tool that never reaches outside the machine (`open_world_hint: false`),
/// titled by its wire name.
pub fn annotations(
    name: &str,
    read_only: bool,
    destructive: bool,
    idempotent: bool,
) -> ToolAnnotations {
    ToolAnnotations {
        title: Some(name.to_owned()),
        read_only_hint: read_only,
        destructive_hint: destructive,
        idempotent_hint: idempotent,
        open_world_hint: false,
    }
}
