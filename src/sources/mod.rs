//! Sources: things that produce entity values and set them on the hub.
//!
//! A source registers its entities when it is built and then runs as one task
//! until cancelled. Sources never call sinks.

pub mod system;
