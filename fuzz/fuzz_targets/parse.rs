//! Arbitrary bytes through `formats::Parser`, for every format and every option: the parser must never panic, and
//! reading the same bytes in small pieces must give exactly what reading them at once gives.
//!
//! The first five bytes choose the options, the rest is the file:
//!
//! | byte | bits | meaning |
//! |---|---|---|
//! | 0 | 0–2 | forced format `FormatId::ALL[n]`; 7 detects |
//! | 0 | 3–5 | entity `EntityKind::ALL[n]`; 4–7 none |
//! | 0 | 6–7 | delimiter: 0 sniffs, else `Delimiter::ALL[n - 1]` |
//! | 1 | 0–2 | programme type `ProgramType::ALL[n]`; 5–7 none |
//! | 1 | 3–4 | records skipped with `skip_records` before the rest is read |
//! | 1 | 5   | ingest time 2024-06-01 instead of 2026-01-01 (more dates in the future) |
//! | 2 |     | time zone of naive timestamps: the byte as `i8`, in quarter hours (within ±23:45) |
//! | 3 |     | the second read hands out `n + 1` bytes per `read` call |
//! | 4 | 0–2 | prepends the header of `FormatId::ALL[n]`; 7 prepends nothing |
//! | 4 | 3–4 | delimiter of that header, `Delimiter::ALL[n % 3]` |
//!
//! The seeds (`corpus/parse/seed-*`) start with `? 07 00 06 07`: detect everything, UTC, 7-byte reads, no header
//! added.

#![no_main]

use std::io::Read;

use chrono::{DateTime, TimeZone, Utc};
use kintell_ingest::domain::{EntityKind, ProgramType, TimeZoneOffset};
use kintell_ingest::formats::{
    Delimiter, Entry, FileError, FormatId, HeaderInfo, OpenError, ParseOptions, Parser, RawRecord,
};
use libfuzzer_sys::fuzz_target;

/// Hands out at most `chunk` bytes per read, so that records cross the parser's buffer boundaries.
struct Trickle<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        buf[..n].copy_from_slice(head);
        self.data = rest;
        Ok(n)
    }
}

/// Everything one parse gave.
#[derive(Debug, PartialEq)]
enum Outcome {
    Refused(FileError),
    Parsed {
        header: HeaderInfo,
        skipped: u64,
        entries: Vec<(Entry, RawRecord)>,
    },
}

fn options(control: &[u8; 5]) -> ParseOptions {
    let [b0, b1, b2, ..] = *control;
    let ingest = if b1 & 0x20 == 0 {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
    } else {
        Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0)
    };
    let ingest: DateTime<Utc> = ingest.single().unwrap_or(DateTime::UNIX_EPOCH);
    let mut options = ParseOptions::new(ingest);
    if let Some(&f) = FormatId::ALL.get(usize::from(b0 & 7)) {
        options = options.format(f);
    }
    if let Some(&e) = EntityKind::ALL.get(usize::from((b0 >> 3) & 7)) {
        options = options.entity(e);
    }
    if let Some(&d) = usize::from(b0 >> 6)
        .checked_sub(1)
        .and_then(|i| Delimiter::ALL.get(i))
    {
        options = options.delimiter(d);
    }
    if let Some(&p) = ProgramType::ALL.get(usize::from(b1 & 7)) {
        options = options.program_type(p);
    }
    // Through the parser of the option's spelling, which the CLI and the HTTP server use too.
    let quarters = i32::from(b2 as i8) % 96;
    let minutes = quarters.abs() * 15;
    let sign = if quarters < 0 { '-' } else { '+' };
    let spelled = format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60);
    let zone = TimeZoneOffset::parse(&spelled).expect("a quarter-hour offset within ±23:45 parses");
    assert_eq!(zone.to_string(), spelled);
    options.time_zone(zone)
}

/// The file: the body, after the header of a format when the control byte asks for one.
fn file(control: &[u8; 5], body: &[u8]) -> Vec<u8> {
    let b4 = control[4];
    let mut out = Vec::with_capacity(body.len() + 256);
    if let Some(&f) = FormatId::ALL.get(usize::from(b4 & 7)) {
        let d = Delimiter::ALL[usize::from((b4 >> 3) & 3) % 3].byte();
        for (i, c) in f.columns().enumerate() {
            if i > 0 {
                out.push(d);
            }
            out.extend_from_slice(c.as_bytes());
        }
        out.push(b'\n');
    }
    out.extend_from_slice(body);
    out
}

fn run<R: Read>(reader: R, len: usize, options: &ParseOptions, skip: u64) -> Outcome {
    let mut parser = match Parser::open(reader, options) {
        Ok(p) => p,
        Err(OpenError::File(e)) => {
            assert!(!e.message.is_empty());
            return Outcome::Refused(e);
        }
        Err(OpenError::Io(e)) => panic!("an in-memory reader cannot fail: {e}"),
    };
    let header = parser.header().clone();
    assert_eq!(header.header.len(), header.columns.len());
    if let Some(f) = options.format {
        assert_eq!(header.format, f);
    }
    if let Some(d) = options.delimiter {
        assert_eq!(header.delimiter, d);
    }
    let skipped = parser
        .skip_records(skip)
        .expect("in-memory reads cannot fail");
    assert!(skipped <= skip);
    assert_eq!(parser.row_number(), skipped);
    let mut last_line = header.header_line;
    let mut entries = Vec::new();
    while let Some(entry) = parser.next_record().expect("in-memory reads cannot fail") {
        let raw = parser.raw_record().to_owned_record();
        let (row_number, line_number) = match &entry {
            Ok(r) => {
                assert_eq!(r.row.entity(), header.format.entity());
                (r.row_number, r.line_number)
            }
            Err(e) => {
                assert_eq!(e.raw_record, raw);
                let first = e.details.first().expect("a rejected row names its problem");
                assert_eq!((first.code, &first.field), (e.code, &e.field));
                assert!(e.details.iter().all(|p| !p.message.is_empty()));
                let _ = (e.to_string(), e.details_json());
                (e.row_number, e.line_number)
            }
        };
        assert_eq!(row_number, skipped + entries.len() as u64 + 1);
        assert_eq!(parser.row_number(), row_number);
        // A lone CR ends a record (as in `csv-core`) but not a physical line: two records may share a line.
        assert!(
            line_number >= last_line,
            "line {line_number} after line {last_line}"
        );
        assert!(line_number >= header.header_line);
        last_line = line_number;
        let json = raw.to_json();
        let back: RawRecord = serde_json::from_value(json).expect("a raw record reads back");
        assert_eq!(back, raw);
        entries.push((entry, raw));
        assert!(parser.bytes_consumed() <= len as u64);
    }
    assert!(
        parser
            .next_record()
            .expect("in-memory reads cannot fail")
            .is_none()
    );
    assert_eq!(parser.bytes_consumed(), len as u64);
    Outcome::Parsed {
        header,
        skipped,
        entries,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((control, body)) = data.split_first_chunk::<5>() else {
        return;
    };
    let options = options(control);
    let skip = u64::from((control[1] >> 3) & 3);
    let input = file(control, body);
    let whole = run(&input[..], input.len(), &options, skip);
    let chunk = usize::from(control[3]) + 1;
    let trickled = run(
        Trickle {
            data: &input,
            chunk,
        },
        input.len(),
        &options,
        skip,
    );
    assert_eq!(
        whole, trickled,
        "reading {chunk} bytes at a time changed the result"
    );
});
