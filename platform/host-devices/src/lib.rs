//! Device models of the host platform (skeleton).
