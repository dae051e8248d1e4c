//! Image archives: `docker save` / `docker load` (Docker's format and OCI layouts).

mod load;
mod save;

pub use load::{Loaded, load};
pub use save::save;
