//! Repository ports: the traits the pipeline speaks to, in domain types only; stores implement them.
