//! sepo procedural macros (see the DSL issue).
