//! Sources: things that produce entity values and set them on the hub.
//!
//! A source says which entities it has when it is built (`entities()`); the
//! app registers them on the hub, then runs the source as one task until
//! cancelled. Sources never call sinks.

pub mod inputs;
mod kernel_file;
pub mod sensors;
pub mod system;
