//! The helper modules shared by the topics (`common`: conversations on the scripted LLM;
//! `llm_support`: requests for the LLM clients), then one module per topic.

mod common;
mod llm_support;

mod apply_patch;
mod bad_responses;
mod condenser;
mod conversation;
mod crash_resume;
mod env_keys;
mod file_editor;
mod llm_anthropic;
mod llm_openai;
mod llm_requests;
mod local_workspace;
mod planning_file_editor;
mod plugins;
mod preset_gemini;
mod presets;
mod search_tools;
mod secrets;
mod skills;
mod state_machine;
mod task_tracker;
mod terminal;
mod tool_schemas;
