//! Association scoring: the policy, candidate filter, per-candidate score with reasons, and the choice.
