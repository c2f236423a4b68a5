//! Input formats: the pure, streaming CSV parser that turns export bytes into domain rows or row errors.
