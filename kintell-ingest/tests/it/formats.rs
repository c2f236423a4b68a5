//! Tests of the formats area: a CSV snippet in, a rendering of the file result and of every row out.

use std::fmt::Write as _;
use std::io::Read;

use chrono::{DateTime, TimeZone, Utc};
use expect_test::{Expect, expect};
use kintell_ingest::domain::{DomainRow, EntityKind, ProgramType, TimeZoneOffset};
use kintell_ingest::formats::{
    Delimiter, Entry, ErrorCode, FormatId, OpenError, ParseOptions, Parser, RowError,
};
use kintell_ingest::synthetic::{SessionsSpec, latest_session_time};
use proptest::prelude::*;

fn ingest_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn opts() -> ParseOptions {
    ParseOptions::new(ingest_time())
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or("-".to_owned(), |v| v.to_string())
}

fn list(v: &Option<Vec<String>>) -> String {
    v.as_ref()
        .map_or("-".to_owned(), |v| format!("[{}]", v.join("|")))
}

fn render_row(row: &DomainRow) -> String {
    match row {
        DomainRow::Session(s) => format!(
            "session {} {} {} -> {} scheduled={} completed={} duration={} rating={} level={} topics={} metadata={} program_ref={} feedback={}",
            s.session_id,
            s.session_type,
            s.participant_email,
            s.volunteer_email,
            ts(s.scheduled_at),
            s.completed_at.map_or("-".to_owned(), ts),
            opt(&s.duration_minutes),
            opt(&s.rating),
            opt(&s.language_level),
            list(&s.topics),
            s.metadata
                .as_ref()
                .map_or("-".to_owned(), |m| serde_json::Value::Object(m.clone())
                    .to_string()),
            opt(&s.program_ref),
            s.feedback_text
                .as_ref()
                .map_or("-".to_owned(), |f| format!("{f:?}")),
        ),
        DomainRow::User(u) => format!(
            "user {} name={} linkedin={} verification={} role_when_joined={} role={} grant_access={} joined={} company={} tags={}",
            u.email,
            u.name.as_ref().map_or("-".to_owned(), |n| format!(
                "{:?}/{:?}",
                n.first,
                n.last.as_deref().unwrap_or("-")
            )),
            opt(&u.linkedin_url),
            opt(&u.verification_status),
            opt(&u.role_when_joined),
            opt(&u.role),
            opt(&u.grant_access),
            u.joined_kg_at.map_or("-".to_owned(), ts),
            opt(&u.company),
            list(&u.tags),
        ),
        DomainRow::Match(m) => format!(
            "match {} + {} matched={} status={} language={} interests={} location={} id={} ended={} reason={}",
            m.participant_email,
            m.buddy_email,
            ts(m.matched_at),
            m.status,
            opt(&m.language),
            list(&m.interests),
            opt(&m.location),
            opt(&m.external_match_id),
            m.ended_at.map_or("-".to_owned(), ts),
            opt(&m.end_reason),
        ),
        DomainRow::Completion(c) => format!(
            "completion {} {}/{} name={} completed={} score={} credential={}",
            c.user_email,
            c.provider,
            c.course_id,
            opt(&c.course_name),
            ts(c.completed_at),
            opt(&c.final_score),
            opt(&c.credential_ref),
        ),
    }
}

fn render_error(out: &mut String, e: &RowError) {
    let field = e.field.as_deref().unwrap_or("-");
    let _ = writeln!(
        out,
        "row {} line {}: {} [{field}] {}",
        e.row_number, e.line_number, e.code, e.message
    );
    for d in e.details.iter().skip(1) {
        let _ = writeln!(
            out,
            "  also {} [{}] {}",
            d.code,
            d.field.as_deref().unwrap_or("-"),
            d.message
        );
    }
    let _ = writeln!(out, "  raw {}", e.raw_record.to_json());
}

/// Parses `input` and renders the file result and every entry.
fn render(input: &[u8], options: &ParseOptions) -> String {
    let mut out = String::new();
    let mut parser = match Parser::open(input, options) {
        Ok(p) => p,
        Err(OpenError::File(e)) => return format!("file error {}: {}\n", e.code, e.message),
        Err(e) => return format!("io error: {e}\n"),
    };
    let h = parser.header();
    let _ = writeln!(
        out,
        "format {} delimiter {} header line {}",
        h.format, h.delimiter, h.header_line
    );
    let columns: Vec<String> = h
        .columns
        .iter()
        .zip(&h.header)
        .map(|(c, found)| match c {
            Some(c) if c == found => c.clone(),
            Some(c) => format!("{found:?}={c}"),
            None => format!("{found:?}=?"),
        })
        .collect();
    let _ = writeln!(out, "columns {}", columns.join(" "));
    if !h.unknown_columns.is_empty() {
        let _ = writeln!(out, "unknown {:?}", h.unknown_columns);
    }
    if !h.comments.is_empty() {
        let _ = writeln!(out, "comments {:?}", h.comments);
    }
    loop {
        match parser.next_record() {
            Ok(None) => break,
            Ok(Some(Ok(r))) => {
                let _ = writeln!(
                    out,
                    "row {} line {}: {}",
                    r.row_number,
                    r.line_number,
                    render_row(&r.row)
                );
            }
            Ok(Some(Err(e))) => render_error(&mut out, &e),
            Err(e) => {
                let _ = writeln!(out, "read error: {e}");
                break;
            }
        }
    }
    out
}

fn check(input: &str, expect: Expect) {
    check_with(&opts(), input.as_bytes(), expect);
}

/// Like [`check`], leaving out the raw records (for inputs with very long values).
fn check_without_raw(input: &str, expect: Expect) {
    let actual: String = render(input.as_bytes(), &opts())
        .lines()
        .filter(|l| !l.starts_with("  raw "))
        .map(|l| format!("{l}\n"))
        .collect();
    expect.assert_eq(&actual);
}

fn check_with(options: &ParseOptions, input: &[u8], expect: Expect) {
    let actual = render(input, options);
    expect.assert_eq(&actual);
    // Parsing is deterministic: a second run over the same bytes gives the same result.
    assert_eq!(render(input, options), actual);
}

const KS: &str = "session_id,session_type,participant_email,volunteer_email,date,duration_min,rating,feedback_text,language_level";

#[test]
fn upstream_samples_parse() {
    for (file, format, rows) in [
        ("kintell-sessions.csv", FormatId::KintellSessions, 3),
        ("buddy-matches.csv", FormatId::BuddyMatches, 5),
        ("course-completions.csv", FormatId::CourseCompletions, 4),
    ] {
        let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(&path).expect("fixture");
        let mut parser = Parser::open(&bytes[..], &opts()).expect("opens");
        assert_eq!(parser.format(), format, "{file}");
        let mut n = 0;
        while let Some(entry) = parser.next_record().expect("reads") {
            let record = entry.unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(record.row.entity(), format.entity());
            n += 1;
        }
        assert_eq!(n, rows, "{file}");
    }
}

#[test]
fn kintell_sessions_rows() {
    check(
        &format!(
            "{KS}\n\
             KINTELL-001,Language Connect,alice@example.com,charlie@volunteer.org,2025-11-01T15:00:00Z,60,5,Great session!,b1\n\
             KINTELL-002,Mentorship,Bob@Example.com,diana@volunteer.org,2025-11-02 10:00,45,1.5,,\n\
             KINTELL-003,MENTOR call,anna.o'neil+kg@example.com,diana@volunteer.org,2025-11-03,30,,,\n"
        ),
        expect![[r#"
            format kintell-sessions delimiter , header line 1
            columns session_id session_type participant_email volunteer_email date duration_min rating feedback_text language_level
            row 1 line 2: session KINTELL-001 language alice@example.com -> charlie@volunteer.org scheduled=2025-11-01T15:00:00Z completed=2025-11-01T15:00:00Z duration=60 rating=1.00 level=B1 topics=- metadata=- program_ref=- feedback="Great session!"
            row 2 line 3: session KINTELL-002 mentorship bob@example.com -> diana@volunteer.org scheduled=2025-11-02T10:00:00Z completed=2025-11-02T10:00:00Z duration=45 rating=0.13 level=- topics=- metadata=- program_ref=- feedback=-
            row 3 line 4: session KINTELL-003 mentorship anna.o'neil+kg@example.com -> diana@volunteer.org scheduled=2025-11-03T00:00:00Z completed=2025-11-03T00:00:00Z duration=30 rating=- level=- topics=- metadata=- program_ref=- feedback=-
        "#]],
    );
}

#[test]
fn kintell_sessions_errors() {
    check(
        &format!(
            "{KS}\n\
             ,Language,,b@x.org,2025-11-01T15:00:00Z,60,,,\n\
             S2,Chess club,no-at-sign,b@x.org,not-a-date,0,9,,Z9\n\
             S3,Language,a@x.org,b@x.org,1999-12-31T23:00:00Z,6.5,4.2.1,,\n\
             S4,Language,a@x.org,b@x.org,2026-01-02T00:00:01Z,481,0.9,,\n\
             S5,Language,a@x.org,b@x.org,2026-01-02T00:00:00Z,-5,,,\n\
             S6,,a@x.org,b@x.org,2025-02-29,60,,,\n\
             S7,Language,a@x.org,b@x.org,2025-01-01,60\n\
             S8,Language,a@x.org,b@x.org,2025-01-01,60,,,,extra\n"
        ),
        expect![[r#"
            format kintell-sessions delimiter , header line 1
            columns session_id session_type participant_email volunteer_email date duration_min rating feedback_text language_level
            row 1 line 2: missing_field [session_id] session_id is required but empty
              also missing_field [participant_email] participant_email is required but empty
              raw ["","Language","","b@x.org","2025-11-01T15:00:00Z","60","","",""]
            row 2 line 3: unknown_session_type [session_type] session_type: "Chess club" names neither a language nor a mentoring session
              also invalid_email [participant_email] participant_email: "no-at-sign" is not a valid email: it must contain exactly one @
              also invalid_datetime [date] date: "not-a-date" is not a valid timestamp (expected YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS[.fraction]] with an optional Z or ±HH:MM)
              also out_of_range [duration_min] duration_min: 0 is outside the allowed range 1..=480
              also out_of_range [rating] rating: 9 is outside the allowed range 1..=5
              also invalid_enum [language_level] language_level: "Z9" is not one of the accepted values (A1, A2, B1, B2, C1, C2)
              raw ["S2","Chess club","no-at-sign","b@x.org","not-a-date","0","9","","Z9"]
            row 3 line 4: out_of_range [date] date: "1999-12-31T23:00:00Z" is earlier than 2000-01-01T00:00Z
              also invalid_number [duration_min] duration_min: "6.5" is not a valid integer
              also invalid_number [rating] rating: "4.2.1" is not a valid decimal
              raw ["S3","Language","a@x.org","b@x.org","1999-12-31T23:00:00Z","6.5","4.2.1","",""]
            row 4 line 5: out_of_range [date] date: "2026-01-02T00:00:01Z" is in the future (later than one day after the import, 2026-01-02T00:00:00Z)
              also out_of_range [duration_min] duration_min: 481 is outside the allowed range 1..=480
              also out_of_range [rating] rating: 0.9 is outside the allowed range 1..=5
              raw ["S4","Language","a@x.org","b@x.org","2026-01-02T00:00:01Z","481","0.9","",""]
            row 5 line 6: out_of_range [duration_min] duration_min: -5 is outside the allowed range 1..=480
              raw ["S5","Language","a@x.org","b@x.org","2026-01-02T00:00:00Z","-5","","",""]
            row 6 line 7: missing_field [session_type] session_type is required but empty
              also invalid_datetime [date] date: "2025-02-29" is not a valid timestamp (expected YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS[.fraction]] with an optional Z or ±HH:MM)
              raw ["S6","","a@x.org","b@x.org","2025-02-29","60","","",""]
            row 7 line 8: field_count [-] the record has 6 fields, the header has 9
              raw ["S7","Language","a@x.org","b@x.org","2025-01-01","60"]
            row 8 line 9: field_count [-] the record has 10 fields, the header has 9
              raw ["S8","Language","a@x.org","b@x.org","2025-01-01","60","","","","extra"]
        "#]],
    );
}

#[test]
fn long_values() {
    let feedback = "ж".repeat(5001);
    let id = "i".repeat(256);
    let email = format!("{}@example.com", "a".repeat(243));
    check_without_raw(
        &format!(
            "{KS}\n\
             {id},Language,a@x.org,b@x.org,2025-01-01,60,,\"{feedback}\",\n\
             S2,Language,{email},b@x.org,2025-01-01,60,,\"{}\",\n",
            "ж".repeat(5000)
        ),
        expect![[r#"
            format kintell-sessions delimiter , header line 1
            columns session_id session_type participant_email volunteer_email date duration_min rating feedback_text language_level
            row 1 line 2: too_long [session_id] session_id: 256 characters, more than the 255 allowed
              also too_long [feedback_text] feedback_text: 5001 characters, more than the 5000 allowed
            row 2 line 3: invalid_email [participant_email] participant_email: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"… is not a valid email: 255 characters, more than the 254 an address may have
        "#]],
    );
}

const MENTORS: &str = "session_id,participant_email,mentor_email,scheduled_at,completed_at,duration_minutes,rating,feedback_text,focus_area,goals_discussed";

#[test]
fn mentors_rows() {
    check(
        &format!(
            "{MENTORS}\n\
             M-1,a@x.org,m@x.org,2024-10-05T10:00:00+02:00,2024-10-05T11:00:00+02:00,60,0.8,Good,Career,\"CV, interview ,\"\n\
             M-2,a@x.org,m@x.org,2024-10-06T10:00,,,,,,\n\
             M-3,a@x.org,m@x.org,2024-10-06T10:00,2024-10-06T09:59,30,1.01,,,\n\
             M-4,a@x.org,m@x.org,2024-10-06T10:00,2024-10-07T09:59,30,0.995,,,\n"
        ),
        expect![[r#"
            format mentors-v1 delimiter , header line 1
            columns session_id participant_email mentor_email scheduled_at completed_at duration_minutes rating feedback_text focus_area goals_discussed
            row 1 line 2: session M-1 mentorship a@x.org -> m@x.org scheduled=2024-10-05T08:00:00Z completed=2024-10-05T09:00:00Z duration=60 rating=0.80 level=- topics=[CV|interview] metadata={"focus_area":"Career","goals_discussed":["CV","interview"]} program_ref=- feedback="Good"
            row 2 line 3: session M-2 mentorship a@x.org -> m@x.org scheduled=2024-10-06T10:00:00Z completed=- duration=- rating=- level=- topics=- metadata=- program_ref=- feedback=-
            row 3 line 4: completed_before_scheduled [completed_at] completed_at 2024-10-06T09:59:00Z is earlier than scheduled_at 2024-10-06T10:00:00Z
              also out_of_range [rating] rating: 1.01 is outside the allowed range 0..=1
              raw ["M-3","a@x.org","m@x.org","2024-10-06T10:00","2024-10-06T09:59","30","1.01","","",""]
            row 4 line 5: session M-4 mentorship a@x.org -> m@x.org scheduled=2024-10-06T10:00:00Z completed=2024-10-07T09:59:00Z duration=30 rating=1.00 level=- topics=- metadata=- program_ref=- feedback=-
        "#]],
    );
}

#[test]
fn mentors_alias_and_time_zone() {
    check_with(
        &opts().time_zone(TimeZoneOffset::parse("+02:00").unwrap()),
        b"Session ID;Participant Email;Volunteer-Email;Scheduled At;Focus Area\n\
          M-1;a@x.org;m@x.org;2024-10-05 10:00;Career\n\
          M-2;a@x.org;m@x.org;2024-10-05;\n",
        expect![[r#"
            format mentors-v1 delimiter ; header line 1
            columns "Session ID"=session_id "Participant Email"=participant_email "Volunteer-Email"=mentor_email "Scheduled At"=scheduled_at "Focus Area"=focus_area
            row 1 line 2: session M-1 mentorship a@x.org -> m@x.org scheduled=2024-10-05T08:00:00Z completed=- duration=- rating=- level=- topics=- metadata={"focus_area":"Career"} program_ref=- feedback=-
            row 2 line 3: session M-2 mentorship a@x.org -> m@x.org scheduled=2024-10-04T22:00:00Z completed=- duration=- rating=- level=- topics=- metadata=- program_ref=- feedback=-
        "#]],
    );
}

const LANGUAGE: &str = "session_id,participant_email,volunteer_email,scheduled_at,completed_at,duration_minutes,rating,feedback_text,language_level,topics";

#[test]
fn language_rows() {
    check(
        &format!(
            "{LANGUAGE}\n\
             L-1,a@x.org,v@x.org,2024-11-05T10:00:00Z,2024-11-05T11:00:00Z,60,1,Nice,c2,\"grammar, travel\"\n\
             L-2,a@x.org,v@x.org,2024-11-05T10:00:00Z,,,,,X1,\n"
        ),
        expect![[r#"
            format language-v1 delimiter , header line 1
            columns session_id participant_email volunteer_email scheduled_at completed_at duration_minutes rating feedback_text language_level topics
            row 1 line 2: session L-1 language a@x.org -> v@x.org scheduled=2024-11-05T10:00:00Z completed=2024-11-05T11:00:00Z duration=60 rating=1.00 level=C2 topics=[grammar|travel] metadata=- program_ref=- feedback="Nice"
            row 2 line 3: invalid_enum [language_level] language_level: "X1" is not one of the accepted values (A1, A2, B1, B2, C1, C2)
              raw ["L-2","a@x.org","v@x.org","2024-11-05T10:00:00Z","","","","","X1",""]
        "#]],
    );
    check(
        &format!(
            "{LANGUAGE},metadata,program_ref\n\
             L-1,a@x.org,v@x.org,2024-11-05T10:00:00Z,,,,,,,\"{{\"\"source\"\": \"\"app\"\"}}\",Language-Ukraine-2024-11\n\
             L-2,a@x.org,v@x.org,2024-11-05T10:00:00Z,,,,,,,[1],\n\
             L-3,a@x.org,v@x.org,2024-11-05T10:00:00Z,,,,,,,{{bad,bad slug\n"
        ),
        expect![[r#"
            format language-v1.1 delimiter , header line 1
            columns session_id participant_email volunteer_email scheduled_at completed_at duration_minutes rating feedback_text language_level topics metadata program_ref
            row 1 line 2: session L-1 language a@x.org -> v@x.org scheduled=2024-11-05T10:00:00Z completed=- duration=- rating=- level=- topics=- metadata={"source":"app"} program_ref=language-ukraine-2024-11 feedback=-
            row 2 line 3: invalid_json [metadata] metadata: "[1]" is JSON but not an object
              raw ["L-2","a@x.org","v@x.org","2024-11-05T10:00:00Z","","","","","","","[1]",""]
            row 3 line 4: invalid_json [metadata] metadata: "{bad" is not valid JSON (key must be a string at line 1 column 2)
              also unknown_program_instance [program_ref] program_ref: "bad slug" is not a programme-instance slug (letters, digits, '-', '_', '.')
              raw ["L-3","a@x.org","v@x.org","2024-11-05T10:00:00Z","","","","","","","{bad","bad slug"]
        "#]],
    );
}

#[test]
fn session_format_detection() {
    // Fits both mentors-v1 and language-v1 with no marker.
    let both = "session_id,participant_email,volunteer_email,scheduled_at,completed_at\nS,a@x.org,v@x.org,2024-11-05,\n";
    check(
        both,
        expect![[r#"
        file error ambiguous_format: the header fits both mentors-v1 and language-v1 and has none of their marker columns (mentor_email, focus_area, goals_discussed; language_level, topics); choose with the format option (mentors-v1 or language-v1) or the programme type (mentors_ukraine or language_ukraine)
    "#]],
    );
    check_with(
        &opts().program_type(ProgramType::LanguageUkraine),
        both.as_bytes(),
        expect![[r#"
            format language-v1 delimiter , header line 1
            columns session_id participant_email volunteer_email scheduled_at completed_at
            row 1 line 2: session S language a@x.org -> v@x.org scheduled=2024-11-05T00:00:00Z completed=- duration=- rating=- level=- topics=- metadata=- program_ref=- feedback=-
        "#]],
    );
    check_with(
        &opts().program_type(ProgramType::MentorsUkraine),
        both.as_bytes(),
        expect![[r#"
            format mentors-v1 delimiter , header line 1
            columns session_id participant_email "volunteer_email"=mentor_email scheduled_at completed_at
            row 1 line 2: session S mentorship a@x.org -> v@x.org scheduled=2024-11-05T00:00:00Z completed=- duration=- rating=- level=- topics=- metadata=- program_ref=- feedback=-
        "#]],
    );
    check_with(
        &opts().format(FormatId::LanguageV1_1),
        both.as_bytes(),
        expect![[r#"
        format language-v1.1 delimiter , header line 1
        columns session_id participant_email volunteer_email scheduled_at completed_at
        row 1 line 2: session S language a@x.org -> v@x.org scheduled=2024-11-05T00:00:00Z completed=- duration=- rating=- level=- topics=- metadata=- program_ref=- feedback=-
    "#]],
    );
    // Markers decide.
    check(
        "session_id,participant_email,volunteer_email,scheduled_at,topics\n",
        expect![[r#"
        format language-v1 delimiter , header line 1
        columns session_id participant_email volunteer_email scheduled_at topics
    "#]],
    );
    check(
        "session_id,participant_email,volunteer_email,scheduled_at,metadata,topics\n",
        expect![[r#"
        format language-v1.1 delimiter , header line 1
        columns session_id participant_email volunteer_email scheduled_at metadata topics
    "#]],
    );
    check(
        "session_id,participant_email,volunteer_email,scheduled_at,goals_discussed\n",
        expect![[r#"
        format mentors-v1 delimiter , header line 1
        columns session_id participant_email "volunteer_email"=mentor_email scheduled_at goals_discussed
    "#]],
    );
    check(
        "session_id,participant_email,mentor_email,scheduled_at\n",
        expect![[r#"
        format mentors-v1 delimiter , header line 1
        columns session_id participant_email mentor_email scheduled_at
    "#]],
    );
}

#[test]
fn file_errors() {
    check(
        "",
        expect![[r#"
        file error empty_file: the file holds no header line (it is empty or blank)
    "#]],
    );
    check(
        "\n  \r\n\t\n",
        expect![[r#"
        file error empty_file: the file holds no header line (it is empty or blank)
    "#]],
    );
    check(
        "# exported by buddy\n# nothing else\n",
        expect![[r#"
        file error empty_file: the file holds only comment lines, no header line
    "#]],
    );
    check(
        "foo,bar\n1,2\n",
        expect![[r#"
        file error unknown_format: no known format fits the header (found: foo, bar); tried kintell-sessions lacks session_id, session_type, participant_email, volunteer_email, date, duration_min; mentors-v1 lacks session_id, participant_email, mentor_email, scheduled_at; language-v1 lacks session_id, participant_email, volunteer_email, scheduled_at; language-v1.1 lacks session_id, participant_email, volunteer_email, scheduled_at; kintell-users lacks email; buddy-matches lacks participant_email, buddy_email, matched_at; course-completions lacks user_email, provider, course_id, completed_at
    "#]],
    );
    check(
        "email,name,Email\n",
        expect![[r#"
        file error duplicate_header: the header names column "email" twice (columns 1 and 3)
    "#]],
    );
    check(
        "session_id,participant_email,mentor_email,volunteer_email,scheduled_at\n",
        expect![[r#"
            file error duplicate_header: columns "mentor_email" and "volunteer_email" are both column mentor_email of format mentors-v1 (one is an alias of the other)
        "#]],
    );
    check_with(
        &opts().entity(EntityKind::KintellSessions),
        b"session_id,participant_email,volunteer_email,date,rating\n",
        expect![[r#"
            file error missing_columns: the header does not fit format kintell-sessions: missing columns session_type, duration_min (found: session_id, participant_email, volunteer_email, date, rating)
        "#]],
    );
    check_with(
        &opts().format(FormatId::BuddyMatches),
        b"participant_email,matched_at\n",
        expect![[r#"
            file error missing_columns: the header does not fit format buddy-matches: missing column buddy_email (found: participant_email, matched_at)
        "#]],
    );
    check_with(
        &opts()
            .entity(EntityKind::KintellUsers)
            .format(FormatId::BuddyMatches),
        b"participant_email,buddy_email,matched_at\n",
        expect![[r#"
            file error unknown_format: format buddy-matches holds buddy_matches rows, not kintell_users rows
        "#]],
    );
}

#[test]
fn header_only_and_entity_restriction() {
    check(
        &format!("{KS}\n"),
        expect![[r#"
        format kintell-sessions delimiter , header line 1
        columns session_id session_type participant_email volunteer_email date duration_min rating feedback_text language_level
    "#]],
    );
    check(
        KS,
        expect![[r#"
        format kintell-sessions delimiter , header line 1
        columns session_id session_type participant_email volunteer_email date duration_min rating feedback_text language_level
    "#]],
    );
    // `email` alone fits the users export; naming another entity refuses it.
    check_with(
        &opts().entity(EntityKind::CourseCompletions),
        b"email\na@x.org\n",
        expect![[r#"
            file error missing_columns: the header does not fit format course-completions: missing columns user_email, provider, course_id, completed_at (found: email)
        "#]],
    );
}

#[test]
fn transport_bom_delimiters_crlf_comments() {
    check(
        "\u{feff}# exported 2025-01-01\r\n#  second comment  \r\n\r\nParticipant_Email\tBuddy Email\tMatched-At\tInterests\r\n\
         a@x.org\tb@x.org\t2024-01-15T10:00:00Z\t\"hiking, cooking\"\r\n\
         \r\n   \r\n\
         c@x.org\td@x.org\t2024-01-16T10:00:00Z\t\r\n\r\n\r\n",
        expect![[r##"
            format buddy-matches delimiter tab header line 4
            columns "Participant_Email"=participant_email "Buddy Email"=buddy_email "Matched-At"=matched_at "Interests"=interests
            comments ["# exported 2025-01-01", "#  second comment"]
            row 1 line 5: match a@x.org + b@x.org matched=2024-01-15T10:00:00Z status=active language=- interests=[hiking|cooking] location=- id=- ended=- reason=-
            row 2 line 8: match c@x.org + d@x.org matched=2024-01-16T10:00:00Z status=active language=- interests=- location=- id=- ended=- reason=-
        "##]],
    );
    check_with(
        &opts().delimiter(Delimiter::Semicolon),
        b"user_email,provider;course_id;completed_at\n",
        expect![[r#"
            file error unknown_format: no known format fits the header (found: user_email,provider, course_id, completed_at); tried kintell-sessions lacks session_id, session_type, participant_email, volunteer_email, date, duration_min; mentors-v1 lacks session_id, participant_email, mentor_email, scheduled_at; language-v1 lacks session_id, participant_email, volunteer_email, scheduled_at; language-v1.1 lacks session_id, participant_email, volunteer_email, scheduled_at; kintell-users lacks email; buddy-matches lacks participant_email, buddy_email, matched_at; course-completions lacks user_email, provider
        "#]],
    );
}

#[test]
fn quoting_and_multiline_fields() {
    check(
        &format!(
            "{KS}\n\
             \"S-1\",\"Language\",\" a@x.org \",b@x.org,2025-01-01,60,,\"line one\nline \"\"two\"\"\r\nline three\",\n\
             S-2,Language,a@x.org,b@x.org,2025-01-01,60,,\"a, b\",\n"
        ),
        expect![[r#"
            format kintell-sessions delimiter , header line 1
            columns session_id session_type participant_email volunteer_email date duration_min rating feedback_text language_level
            row 1 line 2: session S-1 language a@x.org -> b@x.org scheduled=2025-01-01T00:00:00Z completed=2025-01-01T00:00:00Z duration=60 rating=- level=- topics=- metadata=- program_ref=- feedback="line one\nline \"two\"\r\nline three"
            row 2 line 5: session S-2 language a@x.org -> b@x.org scheduled=2025-01-01T00:00:00Z completed=2025-01-01T00:00:00Z duration=60 rating=- level=- topics=- metadata=- program_ref=- feedback="a, b"
        "#]],
    );
}

/// Found by the fuzzer: an empty value between the two halves of a broken character. A record that `csv-core`
/// splits (here because a quoted value spans two lines) has its values side by side with nothing between them,
/// where the halves make a valid character; the empty value's position then falls inside that character. It must
/// still read as empty (`missing_field`), as it does when the same line is split in place.
#[test]
fn empty_value_between_halves_of_a_character() {
    let mut input = format!("{KS}\n").into_bytes();
    input.extend_from_slice(b"S-1,\xd3,,\xac,2025-01-01,60,,\"two\nlines\",\n");
    input.extend_from_slice(b"S-2,\xd3,,\xac,2025-01-01,60,,one line,\n");
    check_with(
        &opts(),
        &input,
        expect![[r#"
            format kintell-sessions delimiter , header line 1
            columns session_id session_type participant_email volunteer_email date duration_min rating feedback_text language_level
            row 1 line 2: encoding [session_type] session_type holds bytes that are not valid UTF-8; re-export the file as UTF-8
              also encoding [volunteer_email] volunteer_email holds bytes that are not valid UTF-8; re-export the file as UTF-8
              also missing_field [participant_email] participant_email is required but empty
              raw ["S-1","�","","�","2025-01-01","60","","two\nlines",""]
            row 2 line 4: encoding [session_type] session_type holds bytes that are not valid UTF-8; re-export the file as UTF-8
              also encoding [volunteer_email] volunteer_email holds bytes that are not valid UTF-8; re-export the file as UTF-8
              also missing_field [participant_email] participant_email is required but empty
              raw ["S-2","�","","�","2025-01-01","60","","one line",""]
        "#]],
    );
}

#[test]
fn invalid_utf8_in_one_field() {
    let mut input = format!("{KS},notes\n").into_bytes();
    input.extend_from_slice(b"S-1,Language,a@x.org,b@x.org,2025-01-01,60,,caf\xe9 ok,,n\xff\n");
    input.extend_from_slice(b"S-2,Language,a@x.org,b@x.org,2025-01-01,60,9,,,\xc3\n");
    input.extend_from_slice(b"S-3,Language,a@x.org,b@x.org,2025-01-01,60,,,,,\xff\n");
    input.extend_from_slice(b"S-4,Language,a@x.org,b@x.org,2025-01-01,60,,,,\n");
    check_with(
        &opts(),
        &input,
        expect![[r#"
        format kintell-sessions delimiter , header line 1
        columns session_id session_type participant_email volunteer_email date duration_min rating feedback_text language_level "notes"=?
        unknown ["notes"]
        row 1 line 2: encoding [feedback_text] feedback_text holds bytes that are not valid UTF-8; re-export the file as UTF-8
          also encoding [notes] notes holds bytes that are not valid UTF-8; re-export the file as UTF-8
          raw ["S-1","Language","a@x.org","b@x.org","2025-01-01","60","","caf� ok","","n�"]
        row 2 line 3: encoding [notes] notes holds bytes that are not valid UTF-8; re-export the file as UTF-8
          also out_of_range [rating] rating: 9 is outside the allowed range 1..=5
          raw ["S-2","Language","a@x.org","b@x.org","2025-01-01","60","9","","","�"]
        row 3 line 4: encoding [-] a value beyond the header holds bytes that are not valid UTF-8; re-export the file as UTF-8
          also field_count [-] the record has 11 fields, the header has 10
          raw ["S-3","Language","a@x.org","b@x.org","2025-01-01","60","","","","","�"]
        row 4 line 5: session S-4 language a@x.org -> b@x.org scheduled=2025-01-01T00:00:00Z completed=2025-01-01T00:00:00Z duration=60 rating=- level=- topics=- metadata=- program_ref=- feedback=-
    "#]],
    );
}

#[test]
fn users_export() {
    check(
        "Email,Name,Linkedin_URL,Verification Status,Role when joined,Grant_Access,Joined_kg_at,company_slug,tags\n\
         Anna@Example.com,Anna Maria Svensson,https://linkedin.com/in/anna,verified,Mentor (Advisor),Yes,\"Dec 14, 2025\",acme,\"Refugees, ukrainian,refugees\"\n\
         bob@example.com,Bob,,,Job seeker,0,2025-01-02T03:04:05Z,,\n\
         carl@example.com,,,,,,,,\n\
         dora@example.com,,,,,maybe,Dec 14 2035,,\n",
        expect![[r#"
            format kintell-users delimiter , header line 1
            columns "Email"=email "Name"=name "Linkedin_URL"=linkedin_url "Verification Status"=verification_status "Role when joined"=role_when_joined "Grant_Access"=grant_access "Joined_kg_at"=joined_kg_at "company_slug"=company tags
            row 1 line 2: user anna@example.com name="Anna"/"Maria Svensson" linkedin=https://linkedin.com/in/anna verification=verified role_when_joined=Mentor (Advisor) role=volunteer grant_access=true joined=2025-12-14T00:00:00Z company=acme tags=[refugees|ukrainian]
            row 2 line 3: user bob@example.com name="Bob"/"-" linkedin=- verification=- role_when_joined=Job seeker role=participant grant_access=false joined=2025-01-02T03:04:05Z company=- tags=-
            row 3 line 4: user carl@example.com name=- linkedin=- verification=- role_when_joined=- role=- grant_access=- joined=- company=- tags=-
            row 4 line 5: invalid_enum [grant_access] grant_access: "maybe" is not one of the accepted values (true, yes, 1, false, no, 0)
              also out_of_range [joined_kg_at] joined_kg_at: "Dec 14 2035" is in the future (later than one day after the import, 2026-01-02T00:00:00Z)
              raw ["dora@example.com","","","","","maybe","Dec 14 2035","",""]
        "#]],
    );
    let long = "n".repeat(101);
    check(
        &format!("email,name\na@x.org,{long}\nb@x.org,Bo {long}\n"),
        expect![[r#"
            format kintell-users delimiter , header line 1
            columns email name
            row 1 line 2: too_long [name] name: 101 characters, more than the 100 allowed
              raw ["a@x.org","nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"]
            row 2 line 3: too_long [name] name: 101 characters, more than the 100 allowed
              raw ["b@x.org","Bo nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"]
        "#]],
    );
}

#[test]
fn buddy_matches() {
    check(
        "participant_email,buddy_email,matched_at,status,language,interests,location,match_id,ended_at,end_reason\n\
         a@x.org,b@x.org,2024-01-15T10:00:00Z,,English,\"hiking,cooking\",Oslo,BM-1,,\n\
         a@x.org,b@x.org,2024-01-15T10:00:00Z,Ended,,,,,2024-03-01,Mutual_Agreement\n\
         a@x.org,b@x.org,2024-01-15T10:00:00Z,ended,,,,,,\n\
         a@x.org,A@X.org,2024-01-15T10:00:00Z,paused,,,,,2024-01-14,bored\n",
        expect![[r#"
            format buddy-matches delimiter , header line 1
            columns participant_email buddy_email matched_at status language interests location match_id ended_at end_reason
            row 1 line 2: match a@x.org + b@x.org matched=2024-01-15T10:00:00Z status=active language=English interests=[hiking|cooking] location=Oslo id=BM-1 ended=- reason=-
            row 2 line 3: match a@x.org + b@x.org matched=2024-01-15T10:00:00Z status=ended language=- interests=- location=- id=- ended=2024-03-01T00:00:00Z reason=mutual_agreement
            row 3 line 4: missing_field [ended_at] ended_at is required when status is ended
              raw ["a@x.org","b@x.org","2024-01-15T10:00:00Z","ended","","","","","",""]
            row 4 line 5: same_person [buddy_email] buddy_email is the participant (a@x.org); a person cannot be their own buddy
              also invalid_enum [status] status: "paused" is not one of the accepted values (active, inactive, ended)
              also ended_before_matched [ended_at] ended_at 2024-01-14T00:00:00Z is earlier than matched_at 2024-01-15T10:00:00Z
              also invalid_enum [end_reason] end_reason: "bored" is not one of the accepted values (completed, participant_request, buddy_request, mutual_agreement, inactivity, violation, program_ended, other)
              raw ["a@x.org","A@X.org","2024-01-15T10:00:00Z","paused","","","","","2024-01-14","bored"]
        "#]],
    );
}

#[test]
fn course_completions() {
    check(
        "user_email,provider,course_id,course_name,completed_at,final_score,credential_ref\n\
         alice@example.com,eCornell,EXEC-101,Leadership,2025-10-15T14:30:00Z,92.555,CERT-1\n\
         bob@example.com,,DATA-201,,2025-10-20,100.01,\n\
         bob@example.com,x,DATA-201,,2025-10-20,1e2,\n\
         bob@example.com,x,DATA-201,,2027-10-20,-0,\n",
        expect![[r#"
            format course-completions delimiter , header line 1
            columns user_email provider course_id course_name completed_at final_score credential_ref
            row 1 line 2: completion alice@example.com ecornell/EXEC-101 name=Leadership completed=2025-10-15T14:30:00Z score=92.56 credential=CERT-1
            row 2 line 3: missing_field [provider] provider is required but empty
              also out_of_range [final_score] final_score: 100.01 is outside the allowed range 0..=100
              raw ["bob@example.com","","DATA-201","","2025-10-20","100.01",""]
            row 3 line 4: invalid_number [final_score] final_score: "1e2" is not a valid decimal
              raw ["bob@example.com","x","DATA-201","","2025-10-20","1e2",""]
            row 4 line 5: out_of_range [completed_at] completed_at: "2027-10-20" is in the future (later than one day after the import, 2026-01-02T00:00:00Z)
              raw ["bob@example.com","x","DATA-201","","2027-10-20","-0",""]
        "#]],
    );
}

#[test]
fn record_too_large_and_two_mib_field() {
    let big = "x".repeat(2 << 20);
    let input = format!(
        "{KS}\nS-1,Language,a@x.org,b@x.org,2025-01-01,60,,\"{big}\",B1\nS-2,Language,a@x.org,b@x.org,2025-01-01,60,,,\n"
    );
    let mut parser = Parser::open(input.as_bytes(), &opts()).expect("opens");
    let e = parser.next_record().unwrap().unwrap().unwrap_err();
    assert_eq!(
        (e.code, e.row_number, e.line_number),
        (ErrorCode::RecordTooLarge, 1, 2)
    );
    assert_eq!(e.field, None);
    assert_eq!(e.raw_record.len(), 9);
    assert_eq!(e.raw_record.get(0), Some("S-1"));
    let cut = e.raw_record.get(7).unwrap();
    assert_eq!(cut, format!("{}…[truncated]", "x".repeat(1024)));
    assert_eq!(e.raw_record.get(8), Some("B1"));
    let ok = parser.next_record().unwrap().unwrap().unwrap();
    assert_eq!((ok.row_number, ok.line_number), (2, 3));
    assert!(parser.next_record().unwrap().is_none());
}

#[test]
fn unclosed_quote_near_the_start_of_a_large_input() {
    let mut input =
        format!("{KS}\nS-0,Language,a@x.org,b@x.org,2025-01-01,60,,\"unclosed,\n").into_bytes();
    let mut rest = SessionsSpec::new(30_000).to_bytes();
    // No quote may close the one left open.
    rest.retain(|b| *b != b'"');
    input.extend_from_slice(&rest);
    assert!(input.len() > 2 << 20);
    let mut parser = Parser::open(&input[..], &opts()).expect("opens");
    let e = parser.next_record().unwrap().unwrap().unwrap_err();
    assert_eq!(e.code, ErrorCode::RecordTooLarge);
    assert_eq!(e.line_number, 2);
    // The quote swallows the rest of the file, so only the first KiB of that one value is kept.
    assert!(e.raw_record.get(7).unwrap().ends_with("…[truncated]"));
    assert!(serde_json::to_string(&e.raw_record).unwrap().len() < 4096);
    assert!(parser.next_record().unwrap().is_none());
}

#[test]
fn multibyte_values_are_cut_on_a_character_boundary() {
    let big = "é".repeat(700_000);
    let input = format!("{KS}\nS-1,Language,a@x.org,b@x.org,2025-01-01,60,,{big},\n");
    let mut parser = Parser::open(input.as_bytes(), &opts()).expect("opens");
    let e = parser.next_record().unwrap().unwrap().unwrap_err();
    assert_eq!(e.code, ErrorCode::RecordTooLarge);
    let cut = e.raw_record.get(7).unwrap();
    assert_eq!(cut, format!("{}…[truncated]", "é".repeat(512)));
}

#[test]
fn too_many_fields_is_too_large() {
    let input = format!(
        "{KS}\nS-1{}\nS-2,Language,a@x.org,b@x.org,2025-01-01,60,,,\n",
        ",".repeat(100_000)
    );
    let mut parser = Parser::open(input.as_bytes(), &opts()).expect("opens");
    let e = parser.next_record().unwrap().unwrap().unwrap_err();
    assert_eq!(e.code, ErrorCode::RecordTooLarge);
    assert!(e.raw_record.len() <= 1025);
    assert_eq!(e.raw_record.values().last(), Some("…[truncated]"));
    let ok = parser.next_record().unwrap().unwrap().unwrap();
    assert_eq!((ok.row_number, ok.line_number), (2, 3));
}

#[test]
fn skip_records_keeps_numbers_and_raw_records_are_available() {
    let spec = SessionsSpec::new(500).bad_every(7);
    let bytes = spec.to_bytes();
    let options = ParseOptions::new(latest_session_time());
    let all: Vec<Entry> = Parser::open(&bytes[..], &options)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(all.len(), 500);
    let bad = all.iter().filter(|e| e.is_err()).count();
    assert_eq!(bad, 500 / 7);
    for skip in [0, 1, 123, 499, 500, 600] {
        let mut p = Parser::open(&bytes[..], &options).unwrap();
        assert_eq!(p.skip_records(skip).unwrap(), skip.min(500));
        let rest: Vec<Entry> = p.map(|e| e.unwrap()).collect();
        assert_eq!(rest.as_slice(), &all[skip.min(500) as usize..]);
    }
    let mut p = Parser::open(&bytes[..], &options).unwrap();
    let first = p.next_record().unwrap().unwrap().unwrap();
    let raw = p.raw_record().to_owned_record();
    assert_eq!(raw.len(), 9);
    assert_eq!(raw.get(0), Some("KINTELL-00000001"));
    let e = kintell_ingest::formats::RowError::single(
        first.row_number,
        first.line_number,
        kintell_ingest::formats::Problem::new(
            ErrorCode::UnknownUser,
            Some("participant_email"),
            "participant_email names no user",
        ),
        raw,
    );
    assert_eq!(e.code, ErrorCode::UnknownUser);
    assert_eq!(e.details.len(), 1);
    assert_eq!(e.raw_record.to_json()[0], "KINTELL-00000001");
}

#[test]
fn synthetic_bad_rows_have_the_expected_codes() {
    let spec = SessionsSpec::new(400).bad_every(50);
    let options = ParseOptions::new(latest_session_time());
    let mut codes = Vec::new();
    for entry in Parser::open(spec.reader(), &options).unwrap() {
        if let Err(e) = entry.unwrap() {
            codes.push(format!(
                "{} {} {}",
                e.row_number,
                e.code,
                e.field.unwrap_or_default()
            ));
        }
    }
    expect![[r#"
        50 invalid_email participant_email
        100 out_of_range rating
        150 out_of_range duration_min
        200 invalid_datetime date
        250 invalid_email participant_email
        300 out_of_range rating
        350 out_of_range duration_min
        400 invalid_datetime date"#]]
    .assert_eq(&codes.join("\n"));
}

#[test]
fn parser_is_send() {
    fn send<T: Send>(_: &T) {}
    let p = Parser::open(SessionsSpec::new(1).reader(), &opts()).unwrap();
    send(&p);
}

#[test]
fn header_info_serialises_for_csv_metadata() {
    let p = Parser::open(
        &b"#c1\nEMAIL;Company;shoe size\na@x.org;acme;42\n"[..],
        &opts(),
    )
    .unwrap();
    expect![[r##"{"format":"kintell-users","delimiter":";","header":["EMAIL","Company","shoe size"],"columns":["email","company",null],"unknown_columns":["shoe size"],"comments":["#c1"],"header_line":2}"##]]
    .assert_eq(&serde_json::to_string(p.header()).unwrap());
}

#[test]
fn codes_and_ids_are_spelled_as_specified() {
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    expect!["missing_field invalid_email invalid_datetime out_of_range invalid_number invalid_enum invalid_json too_long unknown_session_type completed_before_scheduled ended_before_matched same_person field_count record_too_large encoding unknown_user unknown_company unknown_program_instance duplicate_in_file"]
    .assert_eq(&codes.join(" "));
    let ids: Vec<String> = FormatId::ALL
        .iter()
        .map(|f| format!("{f}:{}:{}", f.entity(), f.default_program_type()))
        .collect();
    expect!["kintell-sessions:kintell_sessions:kintell mentors-v1:kintell_sessions:mentors_ukraine language-v1:kintell_sessions:language_ukraine language-v1.1:kintell_sessions:language_ukraine kintell-users:kintell_users:kintell buddy-matches:buddy_matches:buddy course-completions:course_completions:upskilling"]
    .assert_eq(&ids.join(" "));
}

/// A valid session row and its CSV line in the language-v1.1 format.
fn arb_language_row() -> impl Strategy<Value = (String, String)> {
    (
        "[A-Za-z0-9][A-Za-z0-9 _.-]{0,30}[A-Za-z0-9]",
        "[a-z0-9.+'_-]{1,20}",
        "[a-z0-9-]{1,10}",
        0i64..800_000_000,
        proptest::option::of(0i64..100_000),
        proptest::option::of(1u32..=480),
        proptest::option::of(0u32..=100),
        proptest::option::of("[^\\x00]{0,40}"),
        proptest::option::of(0usize..6),
        proptest::collection::vec("[a-z ]{0,8}", 0..4),
    )
        .prop_map(
            |(id, local, domain, start, after, dur, rating, feedback, level, topics)| {
                let base = 946_684_800 + start;
                let sched = DateTime::from_timestamp(base, 0).unwrap();
                let done = after.map(|a| DateTime::from_timestamp(base + a, 0).unwrap());
                let mut line = Vec::new();
                let fields = [
                    id.clone(),
                    format!("{local}@{domain}.org"),
                    "v@x.org".to_owned(),
                    sched.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    done.map(|d| d.format("%Y-%m-%d %H:%M:%S+00:00").to_string())
                        .unwrap_or_default(),
                    dur.map(|d| d.to_string()).unwrap_or_default(),
                    rating
                        .map(|r| format!("{}.{:02}", r / 100, r % 100))
                        .unwrap_or_default(),
                    feedback.clone().unwrap_or_default(),
                    level
                        .map(|l| ["a1", "A2", "b1", "B2", "c1", "C2"][l].to_owned())
                        .unwrap_or_default(),
                    topics.join(","),
                ];
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        line.push(b',');
                    }
                    kintell_ingest::synthetic::write_field(&mut line, f);
                }
                (id, String::from_utf8(line).unwrap())
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn generated_rows_parse_back(rows in proptest::collection::vec(arb_language_row(), 1..8)) {
        let mut csv = format!("{LANGUAGE}\r\n");
        for (_, line) in &rows {
            csv.push_str(line);
            csv.push_str("\r\n");
        }
        let options = ParseOptions::new(Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap());
        let parser = Parser::open(csv.as_bytes(), &options).unwrap();
        prop_assert_eq!(parser.format(), FormatId::LanguageV1);
        let entries: Vec<Entry> = parser.map(|e| e.unwrap()).collect();
        prop_assert_eq!(entries.len(), rows.len());
        for (entry, (id, line)) in entries.iter().zip(&rows) {
            let record = entry.as_ref().map_err(|e| TestCaseError::fail(format!("{e} for {line:?}")))?;
            let DomainRow::Session(s) = &record.row else { return Err(TestCaseError::fail("not a session")) };
            prop_assert_eq!(s.session_id.as_str(), id.as_str());
            // Rendering the row back and parsing it again gives the same row.
            let again = render_language_row(s);
            let csv2 = format!("{LANGUAGE}\n{again}\n");
            let mut p2 = Parser::open(csv2.as_bytes(), &options).unwrap();
            let r2 = p2.next_record().unwrap().unwrap().map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&r2.row, &record.row);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), selector in 0usize..8) {
        let mut options = opts();
        if let Some(f) = FormatId::ALL.get(selector) {
            options = options.format(*f);
        }
        if let Ok(parser) = Parser::open(&bytes[..], &options) {
            for entry in parser {
                let _ = entry;
            }
        }
    }

    #[test]
    fn arbitrary_records_under_a_valid_header_never_panic(
        selector in 0usize..7,
        body in proptest::collection::vec(prop_oneof![
            Just(b','), Just(b';'), Just(b'"'), Just(b'\n'), Just(b'\r'), Just(b' '), Just(b'@'), Just(b'.'),
            Just(b'-'), Just(b':'), Just(b'T'), Just(b'Z'), any::<u8>(), 0x30u8..0x3a, 0x61u8..0x7b,
        ], 0..400),
    ) {
        let format = FormatId::ALL[selector];
        let header: Vec<&str> = format.columns().collect();
        let mut input = header.join(",").into_bytes();
        input.push(b'\n');
        input.extend_from_slice(&body);
        let parser = Parser::open(&input[..], &opts()).unwrap();
        prop_assert_eq!(parser.format(), format);
        let mut last_row = 0;
        for entry in parser {
            let n = match entry.unwrap() {
                Ok(r) => r.row_number,
                Err(e) => {
                    prop_assert!(!e.details.is_empty());
                    prop_assert_eq!(e.details[0].code, e.code);
                    prop_assert!(!e.message.contains('\n'));
                    e.row_number
                }
            };
            prop_assert_eq!(n, last_row + 1);
            last_row = n;
        }
    }
}

fn render_language_row(s: &kintell_ingest::domain::SessionRow) -> String {
    let fields = [
        s.session_id.to_string(),
        s.participant_email.to_string(),
        s.volunteer_email.to_string(),
        ts(s.scheduled_at),
        s.completed_at.map(ts).unwrap_or_default(),
        s.duration_minutes
            .map(|d| d.to_string())
            .unwrap_or_default(),
        s.rating.map(|r| r.to_string()).unwrap_or_default(),
        s.feedback_text.clone().unwrap_or_default(),
        s.language_level.map(|l| l.to_string()).unwrap_or_default(),
        s.topics.as_ref().map(|t| t.join(",")).unwrap_or_default(),
    ];
    let mut line = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        kintell_ingest::synthetic::write_field(&mut line, f);
    }
    String::from_utf8(line).unwrap()
}

#[test]
fn streaming_reader_reads_in_small_pieces() {
    /// Hands out at most 7 bytes per read, to cross every buffer boundary.
    struct Trickle<R>(R);
    impl<R: Read> Read for Trickle<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(7);
            self.0.read(&mut buf[..n])
        }
    }
    let spec = SessionsSpec::new(300).bad_every(11);
    let options = ParseOptions::new(latest_session_time());
    let whole: Vec<Entry> = Parser::open(&spec.to_bytes()[..], &options)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    let trickled: Vec<Entry> = Parser::open(Trickle(spec.reader()), &options)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(whole, trickled);
}

#[test]
fn program_ref_aliases() {
    check(
        &format!(
            "{KS},Cohort-Ref\nS-1,Language,a@x.org,b@x.org,2025-01-01,60,,,,Mentors-Ukraine-2024-Q4\n"
        ),
        expect![[r#"
            format kintell-sessions delimiter , header line 1
            columns session_id session_type participant_email volunteer_email date duration_min rating feedback_text language_level "Cohort-Ref"=program_ref
            row 1 line 2: session S-1 language a@x.org -> b@x.org scheduled=2025-01-01T00:00:00Z completed=2025-01-01T00:00:00Z duration=60 rating=- level=- topics=- metadata=- program_ref=mentors-ukraine-2024-q4 feedback=-
        "#]],
    );
    check(
        &format!("{KS},program_instance,program_ref\n"),
        expect![[r#"
        file error duplicate_header: columns "program_instance" and "program_ref" are both column program_ref of format kintell-sessions (one is an alias of the other)
    "#]],
    );
}
