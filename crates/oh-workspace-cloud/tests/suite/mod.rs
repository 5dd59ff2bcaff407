mod fake;
mod lifecycle;
mod settings;
