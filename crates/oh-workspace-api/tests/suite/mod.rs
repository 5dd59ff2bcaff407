mod fake;
mod lifecycle;
mod readiness;
