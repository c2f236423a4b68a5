//! Example programs for kintell-ingest, in `examples/`; run one with
//! `cargo run -p kintell-ingest-examples --example NAME`:
//!
//! - `sqlite_service`: the library embedded in a service on SQLite — migrate, catalogue, import, report, ledger,
//!   review queue, campaign report;
//! - `postgres`: the same on PostgreSQL (URL from the first argument or `KINTELL_DATABASE_URL`);
//! - `custom_scoring`: scoring alone, a custom `ScoringPolicy` against the default one;
//! - `progress`: an import reporting its progress through `batch::Progress`;
//! - `custom_store`: a store of your own behind the repository ports, plugged in with `Store::from_repositories`.
//!
//! This library holds what several examples share: the small sample catalogue and sessions file of [`sample`], and
//! the walk-through of a service of [`service`]. `tests/examples.rs` runs every example end to end.
#![deny(missing_docs)]

pub mod service;

pub mod sample {
    //! A small catalogue and a Kintell sessions export that exercise every association decision.
    //!
    //! The catalogue has one company (`acme`), two campaigns of it (mentoring and language support for Ukrainian
    //! refugees, both in 2024) with an instance each, a volunteer of Acme and three participants: Olena has both
    //! group tags, Dmytro one of them, Lea none. Under the default scoring policy the sessions file gives:
    //!
    //! | row | session | scored | decision |
    //! |---|---|---|---|
    //! | 1 | Olena, mentorship | 100 (all tags) | `auto` |
    //! | 2 | Dmytro, mentorship | 90 (half the tags) | `auto` |
    //! | 3 | Lea, mentorship | 80, no tag evidence | `review` |
    //! | 4 | Olena, language | 100 | `auto` |
    //! | 5 | an unknown participant | — | rejected: `unknown_user` |
    //! | 6 | a date that is not one | — | rejected: `invalid_datetime` |

    use std::path::{Path, PathBuf};

    /// The catalogue document (see the README, "The catalogue document").
    pub const CATALOGUE_JSON: &str = r#"{
  "companies": [{"key": "acme", "name": "Acme AS"}],
  "beneficiary_groups": [
    {"key": "ua-refugees", "name": "Ukrainian refugees", "group_type": "refugees", "tags": ["refugees", "ukrainian"]}
  ],
  "campaigns": [
    {"key": "acme-mentors-2024", "name": "Acme mentors for Ukraine 2024", "company": "acme",
     "beneficiary_group": "ua-refugees", "program_type": "mentors_ukraine", "start_date": "2024-01-01",
     "end_date": "2024-12-31", "status": "active", "max_sessions": 4},
    {"key": "acme-language-2024", "name": "Acme language support 2024", "company": "acme",
     "beneficiary_group": "ua-refugees", "program_type": "language_ukraine", "start_date": "2024-01-01",
     "end_date": "2024-12-31", "status": "active", "target_beneficiaries": 10}
  ],
  "program_instances": [
    {"slug": "acme-mentors-2024", "campaign": "acme-mentors-2024", "program_type": "mentors_ukraine",
     "program_name": "Acme mentors 2024", "start_date": "2024-01-01", "end_date": "2024-12-31", "status": "active"},
    {"slug": "acme-language-2024", "campaign": "acme-language-2024", "program_type": "language_ukraine",
     "program_name": "Acme language circles 2024", "start_date": "2024-01-01", "end_date": "2024-12-31",
     "status": "active"}
  ],
  "users": [
    {"email": "maria@acme.example", "role": "volunteer", "company": "acme", "first_name": "Maria"},
    {"email": "olena@example.org", "role": "participant", "tags": ["refugees", "ukrainian"], "first_name": "Olena"},
    {"email": "dmytro@example.org", "role": "participant", "tags": ["refugees"], "first_name": "Dmytro"},
    {"email": "lea@example.org", "role": "participant", "tags": [], "first_name": "Lea"}
  ]
}"#;

    /// The file name of the sessions export.
    pub const SESSIONS_FILE_NAME: &str = "kintell-sessions-2024.csv";

    /// A Kintell sessions export (the live export's columns) with four good rows and two bad ones.
    pub const SESSIONS_CSV: &str = "\
session_id,session_type,participant_email,volunteer_email,date,duration_min,rating,feedback_text,language_level
KIN-1001,Mentorship,olena@example.org,maria@acme.example,2024-03-05T10:00:00Z,60,5,Clear next steps for the CV,
KIN-1002,Mentorship,dmytro@example.org,maria@acme.example,2024-03-12T10:00:00Z,45,4,,
KIN-1003,Mentorship,lea@example.org,maria@acme.example,2024-03-19T10:00:00Z,60,4,,
KIN-1004,Language Connect,olena@example.org,maria@acme.example,2024-04-02T15:00:00Z,30,5,\"Practised small talk, \"\"very useful\"\"\",B1
KIN-1005,Mentorship,nobody@example.org,maria@acme.example,2024-04-09T10:00:00Z,60,3,,
KIN-1006,Mentorship,olena@example.org,maria@acme.example,not-a-date,60,3,,
";

    /// Where [`write_files`] put the sample files.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SampleFiles {
        /// The catalogue document.
        pub catalogue: PathBuf,
        /// The sessions export.
        pub sessions: PathBuf,
    }

    /// Writes the catalogue (`catalogue.json`) and the sessions export into `dir`.
    ///
    /// # Errors
    /// The error of the first write that failed.
    pub fn write_files(dir: &Path) -> std::io::Result<SampleFiles> {
        let files = SampleFiles {
            catalogue: dir.join("catalogue.json"),
            sessions: dir.join(SESSIONS_FILE_NAME),
        };
        std::fs::write(&files.catalogue, CATALOGUE_JSON)?;
        std::fs::write(&files.sessions, SESSIONS_CSV)?;
        Ok(files)
    }
}

/// The exit status of an example's `main`: success, or the error and its causes printed to stderr and failure.
pub fn exit_code<E: std::error::Error + ?Sized>(
    result: Result<(), Box<E>>,
) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut cause = e.source();
            while let Some(c) = cause {
                eprintln!("  caused by: {c}");
                cause = c.source();
            }
            std::process::ExitCode::FAILURE
        }
    }
}
