//! One module per topic.

mod restart;
mod swarm;
