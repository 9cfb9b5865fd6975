//! Data-safety cases: copies_and_messages.
