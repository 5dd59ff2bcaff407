//! One module per topic.

mod constructors;
mod fuzz_parsers;
mod gemini_wire;
mod preset_observations;
