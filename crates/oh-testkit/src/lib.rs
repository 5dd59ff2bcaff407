//! Test support for openhands-rs: a scripted LLM server speaking the OpenAI Chat Completions
//! and Anthropic Messages wire formats over real HTTP, recording every request.
