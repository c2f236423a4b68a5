//! Catalogue import: companies, beneficiary groups, campaigns, programme instances and users from JSON.
