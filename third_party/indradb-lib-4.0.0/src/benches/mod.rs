mod benches;
#[macro_use]
mod macros;

pub use self::benches::*;
pub use self::macros::*;
