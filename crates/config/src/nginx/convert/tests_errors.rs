//! Conversion tests: error messages.
