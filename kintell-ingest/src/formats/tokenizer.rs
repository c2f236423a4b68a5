//! Record tokenising over `csv-core` with our own buffers, so a record's memory is bounded whatever the input.
//!
//! The input buffer has a fixed size; a record's field bytes grow up to [`MAX_RECORD_BYTES`]. A larger record is
//! still read to its end (an unclosed quote reads to the end of the file), but only the first
//! [`KEPT_FIELD_BYTES`] of each of its first [`MAX_KEPT_FIELDS`] fields are kept, for the error row.

use std::io::{self, Read};

use super::errors::{RawRecordRef, TRUNCATED_MARKER};

/// A record whose field bytes exceed this is `record_too_large`.
pub const MAX_RECORD_BYTES: usize = 1 << 20;
/// A record with more fields than this is treated as too large too: its field offsets alone would otherwise
/// outgrow the bound.
pub const MAX_FIELDS: usize = 1 << 16;
/// Bytes kept per field of a record that is too large.
pub const KEPT_FIELD_BYTES: usize = 1024;
/// Fields kept of a record that is too large.
pub const MAX_KEPT_FIELDS: usize = 1024;
/// Size of the input buffer.
const INPUT_BUFFER: usize = 64 * 1024;

/// What the tokenizer found next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// A record is in the buffers.
    Record,
    /// No more records.
    End,
}

/// A physical line looked at before the header.
pub(crate) enum Line<'a> {
    /// The line's bytes, without the `\n`.
    Text(&'a [u8]),
    /// Longer than allowed.
    TooLong,
    /// No more input.
    End,
}

/// The fields of a record that is too large, cut to their first KiB.
#[derive(Default)]
struct Kept {
    text: Vec<u8>,
    ends: Vec<usize>,
    current: Vec<u8>,
    current_cut: bool,
    dropped: bool,
}

impl Kept {
    fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
        self.current.clear();
        self.current_cut = false;
        self.dropped = false;
    }

    fn append(&mut self, bytes: &[u8]) {
        let room = KEPT_FIELD_BYTES.saturating_sub(self.current.len());
        if bytes.len() > room {
            self.current
                .extend_from_slice(bytes.get(..room).unwrap_or_default());
            self.current_cut = true;
        } else {
            self.current.extend_from_slice(bytes);
        }
    }

    fn finish_field(&mut self) {
        if self.ends.len() < MAX_KEPT_FIELDS {
            let mut keep = self.current.len();
            if self.current_cut {
                // Cut back to a character boundary so the kept prefix does not end in a broken character.
                if let Err(e) = std::str::from_utf8(&self.current)
                    && e.error_len().is_none()
                {
                    keep = e.valid_up_to();
                }
            }
            self.text
                .extend_from_slice(self.current.get(..keep).unwrap_or_default());
            if self.current_cut {
                self.text.extend_from_slice(TRUNCATED_MARKER.as_bytes());
            }
            self.ends.push(self.text.len());
        } else {
            self.dropped = true;
        }
        self.current.clear();
        self.current_cut = false;
    }

    /// Takes `segment`, whose first byte is at `offset` in the record, with the field ends (record offsets) that
    /// fall inside it.
    fn feed(&mut self, segment: &[u8], ends: &[usize], offset: usize) {
        let mut start = 0;
        for &end in ends {
            let local = end.saturating_sub(offset).min(segment.len());
            self.append(segment.get(start..local).unwrap_or_default());
            self.finish_field();
            start = local;
        }
        self.append(segment.get(start..).unwrap_or_default());
    }
}

/// Reads records from `R` with bounded memory, tracking physical line numbers.
pub(crate) struct Tokenizer<R> {
    reader: R,
    core: csv_core::Reader,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    eof: bool,
    bytes_read: u64,
    out: Vec<u8>,
    out_len: usize,
    /// Where the last fast-path record lies in `buf` (start, length); `None` when it is in `out`.
    line: Option<(usize, usize)>,
    ends: Vec<usize>,
    nends: usize,
    kept: Kept,
    too_large: bool,
    record_bytes: usize,
    start_line: u64,
    delimiter: u8,
}

impl<R: Read> Tokenizer<R> {
    /// A tokenizer over `reader`; the delimiter is set later with [`Tokenizer::set_delimiter`].
    pub(crate) fn new(reader: R) -> Self {
        Tokenizer {
            reader,
            core: csv_core::Reader::new(),
            buf: vec![0; INPUT_BUFFER],
            pos: 0,
            len: 0,
            eof: false,
            bytes_read: 0,
            out: vec![0; 4096],
            out_len: 0,
            line: None,
            ends: vec![0; 64],
            nends: 0,
            kept: Kept::default(),
            too_large: false,
            record_bytes: 0,
            start_line: 1,
            delimiter: b',',
        }
    }

    /// Sets the delimiter; only before the first record is read.
    pub(crate) fn set_delimiter(&mut self, delimiter: u8) {
        let line = self.core.line();
        self.core = csv_core::ReaderBuilder::new()
            .delimiter(delimiter)
            .double_quote(true)
            .build();
        // A first read marks the start of the input as seen, so `csv-core` never strips a BOM-like prefix from a
        // later record: whether a record goes through it or through the fast path must not change its values.
        let _ = self
            .core
            .read_record(b"\n", &mut [0u8; 1], &mut [0usize; 1]);
        self.core.set_line(line);
        self.delimiter = delimiter;
    }

    /// Reads more input, keeping the unread part. Returns `false` at the end of the input.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.len, 0);
            self.len -= self.pos;
            self.pos = 0;
        }
        if self.len == self.buf.len() {
            return Ok(true);
        }
        loop {
            match self.reader.read(&mut self.buf[self.len..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.len += n;
                    self.bytes_read += n as u64;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The current physical line (1-based).
    pub(crate) fn line(&self) -> u64 {
        self.core.line()
    }

    /// Bytes taken from the reader and consumed so far.
    pub(crate) fn bytes_consumed(&self) -> u64 {
        self.bytes_read - (self.len - self.pos) as u64
    }

    /// Drops a leading UTF-8 byte-order mark.
    pub(crate) fn strip_bom(&mut self) -> io::Result<()> {
        while self.len - self.pos < 3 && self.fill()? {}
        if self
            .buf
            .get(self.pos..self.len)
            .is_some_and(|b| b.starts_with(b"\xEF\xBB\xBF"))
        {
            self.pos += 3;
        }
        Ok(())
    }

    /// The next physical line without its `\n`, without consuming it; it must fit in `max` bytes.
    pub(crate) fn peek_line(&mut self, max: usize) -> io::Result<Line<'_>> {
        let mut searched = 0;
        loop {
            let avail = self.buf.get(self.pos..self.len).unwrap_or_default();
            if let Some(i) = memchr(b'\n', avail.get(searched..).unwrap_or_default()) {
                let end = self.pos + searched + i;
                return Ok(Line::Text(self.buf.get(self.pos..end).unwrap_or_default()));
            }
            searched = avail.len();
            if searched > max {
                return Ok(Line::TooLong);
            }
            if self.len - self.pos == self.buf.len() {
                let grown = (self.buf.len() * 2).min(max + INPUT_BUFFER);
                if grown <= self.buf.len() {
                    return Ok(Line::TooLong);
                }
                self.buf.resize(grown, 0);
            }
            if !self.fill()? {
                let rest = self.buf.get(self.pos..self.len).unwrap_or_default();
                return Ok(if rest.is_empty() {
                    Line::End
                } else {
                    Line::Text(rest)
                });
            }
        }
    }

    /// Consumes the line [`Tokenizer::peek_line`] returned.
    pub(crate) fn consume_line(&mut self) {
        let avail = self.buf.get(self.pos..self.len).unwrap_or_default();
        match memchr(b'\n', avail) {
            Some(i) => {
                self.pos += i + 1;
                self.core.set_line(self.core.line() + 1);
            }
            None => self.pos = self.len,
        }
    }

    /// Reads the next record into the buffers. Line terminators between records are skipped here (and counted)
    /// so that the record's first physical line is known.
    pub(crate) fn next_record(&mut self) -> io::Result<Next> {
        loop {
            let mut newlines = 0;
            while let Some(&b) = self.buf.get(self.pos).filter(|_| self.pos < self.len) {
                match b {
                    b'\n' => newlines += 1,
                    b'\r' => {}
                    _ => break,
                }
                self.pos += 1;
            }
            if newlines > 0 {
                self.core.set_line(self.core.line() + newlines);
            }
            if self.pos < self.len || !self.fill()? {
                break;
            }
        }
        self.start_line = self.core.line();
        self.line = None;
        self.out_len = 0;
        self.nends = 0;
        self.too_large = false;
        self.record_bytes = 0;
        if self.fast_record() {
            return Ok(Next::Record);
        }
        loop {
            if self.pos == self.len {
                self.fill()?;
            }
            let input = self.buf.get(self.pos..self.len).unwrap_or_default();
            let at_end = input.is_empty();
            if self.too_large {
                let (res, nin, nout, nend) =
                    self.core.read_record(input, &mut self.out, &mut self.ends);
                self.pos += nin;
                let segment = self.out.get(..nout).unwrap_or_default();
                let ends = self.ends.get(..nend).unwrap_or_default();
                self.kept.feed(segment, ends, self.record_bytes);
                self.record_bytes += nout;
                match res {
                    csv_core::ReadRecordResult::Record => {
                        self.finish_too_large();
                        return Ok(Next::Record);
                    }
                    csv_core::ReadRecordResult::End => {
                        self.finish_too_large();
                        return Ok(Next::Record);
                    }
                    csv_core::ReadRecordResult::InputEmpty if at_end => {
                        self.finish_too_large();
                        return Ok(Next::Record);
                    }
                    _ => continue,
                }
            }
            let (res, nin, nout, nend) = self.core.read_record(
                input,
                self.out.get_mut(self.out_len..).unwrap_or_default(),
                self.ends.get_mut(self.nends..).unwrap_or_default(),
            );
            self.pos += nin;
            self.out_len += nout;
            self.nends += nend;
            match res {
                csv_core::ReadRecordResult::Record => {
                    self.record_bytes = self.out_len;
                    return Ok(Next::Record);
                }
                csv_core::ReadRecordResult::End => {
                    return Ok(if self.nends == 0 && self.out_len == 0 {
                        Next::End
                    } else {
                        Next::Record
                    });
                }
                csv_core::ReadRecordResult::InputEmpty => {
                    if at_end {
                        return Ok(if self.nends == 0 && self.out_len == 0 {
                            Next::End
                        } else {
                            Next::Record
                        });
                    }
                }
                csv_core::ReadRecordResult::OutputFull => {
                    if self.out.len() > MAX_RECORD_BYTES {
                        self.start_too_large();
                    } else {
                        let grown = (self.out.len() * 2).min(MAX_RECORD_BYTES + 1);
                        self.out.resize(grown, 0);
                    }
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    if self.ends.len() > MAX_FIELDS {
                        self.start_too_large();
                    } else {
                        let grown = (self.ends.len() * 2).min(MAX_FIELDS + 1);
                        self.ends.resize(grown, 0);
                    }
                }
            }
        }
    }

    /// Splits a record that is one buffered line with `memchr`, which is what almost every record is; `csv-core`
    /// gives the same fields, slower. A line without quotes stays in the input buffer (not touched before the next
    /// record is read); one with well-formed quoted fields is unquoted into `out`. Anything else (a quoted field
    /// running over the line end, text after a closing quote, a quote inside an unquoted field, a lone CR, a line
    /// not yet wholly buffered) returns `false` and is left to `csv-core`.
    fn fast_record(&mut self) -> bool {
        let avail = self.buf.get(self.pos..self.len).unwrap_or_default();
        let Some(nl) = memchr::memchr(b'\n', avail) else {
            return false;
        };
        let raw_line = avail.get(..nl).unwrap_or_default();
        let line = raw_line.strip_suffix(b"\r").unwrap_or(raw_line);
        if line.len() > MAX_RECORD_BYTES {
            return false;
        }
        let n = match split_plain(line, self.delimiter, &mut self.ends) {
            Plain::Fields(n) => {
                self.line = Some((self.pos, line.len()));
                self.record_bytes = line.len() + 1 - n;
                n
            }
            Plain::TooMany => return false,
            Plain::QuoteOrCr => {
                if memchr::memchr(b'\r', line).is_some() {
                    return false;
                }
                match split_quoted(line, self.delimiter, &mut self.out, &mut self.ends) {
                    Some((n, written)) => {
                        self.out_len = written;
                        self.record_bytes = written;
                        n
                    }
                    None => return false,
                }
            }
        };
        self.nends = n;
        self.pos += nl + 1;
        self.core.set_line(self.core.line() + 1);
        true
    }

    fn start_too_large(&mut self) {
        self.too_large = true;
        self.kept.clear();
        let segment = self.out.get(..self.out_len).unwrap_or_default();
        let ends = self.ends.get(..self.nends).unwrap_or_default();
        self.kept.feed(segment, ends, 0);
        self.record_bytes = self.out_len;
    }

    fn finish_too_large(&mut self) {
        if !self.kept.current.is_empty() || self.kept.current_cut {
            self.kept.finish_field();
        }
        if self.kept.dropped {
            self.kept
                .text
                .extend_from_slice(TRUNCATED_MARKER.as_bytes());
            self.kept.ends.push(self.kept.text.len());
        }
        if self.out.len() < self.kept.text.len() {
            self.out.resize(self.kept.text.len(), 0);
        }
        if self.ends.len() < self.kept.ends.len() {
            self.ends.resize(self.kept.ends.len(), 0);
        }
        self.out_len = self.kept.text.len();
        self.nends = self.kept.ends.len();
        if let Some(dst) = self.out.get_mut(..self.out_len) {
            dst.copy_from_slice(&self.kept.text);
        }
        if let Some(dst) = self.ends.get_mut(..self.nends) {
            dst.copy_from_slice(&self.kept.ends);
        }
        // Release the memory a huge record made the buffers take.
        self.kept = Kept::default();
    }

    /// Whether the last record was larger than the limit (its values are then cut).
    pub(crate) fn too_large(&self) -> bool {
        self.too_large
    }

    /// The number of field bytes of the last record (all of them, also when it was too large).
    pub(crate) fn record_bytes(&self) -> usize {
        self.record_bytes
    }

    /// The physical line where the last record starts.
    pub(crate) fn start_line(&self) -> u64 {
        self.start_line
    }

    /// The last record's field bytes and field ends.
    pub(crate) fn record(&self) -> RawRecordRef<'_> {
        let (bytes, gap) = match self.line {
            Some((start, len)) => (self.buf.get(start..start + len).unwrap_or_default(), 1),
            None => (self.out.get(..self.out_len).unwrap_or_default(), 0),
        };
        RawRecordRef {
            bytes,
            gap,
            ends: self.ends.get(..self.nends).unwrap_or_default(),
        }
    }
}

/// Stores `end` as field `n`'s end, growing `ends` up to the field limit; `false` past it.
fn push_end(ends: &mut Vec<usize>, n: usize, end: usize) -> bool {
    if n >= ends.len() {
        if n > MAX_FIELDS {
            return false;
        }
        ends.resize((2 * n).clamp(64, MAX_FIELDS + 1), 0);
    }
    if let Some(e) = ends.get_mut(n) {
        *e = end;
    }
    true
}

/// What [`split_plain`] found.
#[derive(Debug, PartialEq, Eq)]
enum Plain {
    /// A line without quote or CR, of this many fields.
    Fields(usize),
    /// The line holds a quote or a CR: another path must split it.
    QuoteOrCr,
    /// More fields than [`MAX_FIELDS`].
    TooMany,
}

/// Eight copies of `b`.
const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

/// The high bit of each byte of `x` that is zero, and no other bit (exact, unlike the shorter borrow trick).
const fn zero_bytes(x: u64) -> u64 {
    let low7 = splat(0x7F);
    !(((x & low7) + low7) | x | low7)
}

/// Records the field ends of a line that holds no quote and no CR (each field ends at a delimiter or the line's
/// end). One `memchr2` rules out quotes and CRs; then one pass, eight bytes at a time, finds the delimiters: this is
/// the parser's innermost loop, and a `memchr` per field cost more than the search itself on short fields.
fn split_plain(line: &[u8], delimiter: u8, ends: &mut Vec<usize>) -> Plain {
    if memchr::memchr2(b'"', b'\r', line).is_some() {
        return Plain::QuoteOrCr;
    }
    let delims = splat(delimiter);
    let mut n = 0;
    let mut chunks = line.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let mut found = zero_bytes(w ^ delims);
        while found != 0 {
            if !push_end(ends, n, base + (found.trailing_zeros() / 8) as usize) {
                return Plain::TooMany;
            }
            n += 1;
            found &= found - 1;
        }
        base += 8;
    }
    for (i, &b) in chunks.remainder().iter().enumerate() {
        if b == delimiter {
            if !push_end(ends, n, base + i) {
                return Plain::TooMany;
            }
            n += 1;
        }
    }
    if !push_end(ends, n, line.len()) {
        return Plain::TooMany;
    }
    Plain::Fields(n + 1)
}

/// Unquotes a line whose quoted fields all close on it, each followed by a delimiter or the line's end, into
/// `out`; returns the number of fields and bytes written, or `None` for anything `csv-core` must judge.
fn split_quoted(
    line: &[u8],
    delimiter: u8,
    out: &mut Vec<u8>,
    ends: &mut Vec<usize>,
) -> Option<(usize, usize)> {
    if out.len() < line.len() {
        out.resize(line.len().next_power_of_two(), 0);
    }
    let mut written = 0;
    let copy = |out: &mut Vec<u8>, bytes: &[u8], written: &mut usize| {
        if let Some(dst) = out.get_mut(*written..*written + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        *written += bytes.len();
    };
    let mut p = 0;
    let mut n = 0;
    loop {
        let rest = line.get(p..).unwrap_or_default();
        let more = if rest.first() == Some(&b'"') {
            p += 1;
            loop {
                let inner = line.get(p..).unwrap_or_default();
                let q = memchr::memchr(b'"', inner)?;
                copy(out, inner.get(..q).unwrap_or_default(), &mut written);
                p += q + 1;
                if line.get(p) == Some(&b'"') {
                    copy(out, b"\"", &mut written);
                    p += 1;
                } else {
                    break;
                }
            }
            match line.get(p) {
                None => false,
                Some(&d) if d == delimiter => {
                    p += 1;
                    true
                }
                Some(_) => return None,
            }
        } else {
            match memchr::memchr2(delimiter, b'"', rest) {
                None => {
                    copy(out, rest, &mut written);
                    p = line.len();
                    false
                }
                Some(k) if rest.get(k) == Some(&delimiter) => {
                    copy(out, rest.get(..k).unwrap_or_default(), &mut written);
                    p += k + 1;
                    true
                }
                Some(_) => return None,
            }
        };
        if !push_end(ends, n, written) {
            return None;
        }
        n += 1;
        if !more {
            return Some((n, written));
        }
    }
}

/// Splits one line into fields with `delimiter` (RFC 4180 quoting); used to sniff the delimiter.
pub(crate) fn split_line(line: &[u8], delimiter: u8) -> Vec<Vec<u8>> {
    let mut core = csv_core::ReaderBuilder::new().delimiter(delimiter).build();
    let mut fields = Vec::new();
    let mut field = Vec::new();
    let mut out = [0u8; 1024];
    let mut input = line;
    loop {
        let (res, nin, nout) = core.read_field(input, &mut out);
        input = input.get(nin..).unwrap_or_default();
        field.extend_from_slice(out.get(..nout).unwrap_or_default());
        match res {
            csv_core::ReadFieldResult::Field { record_end } => {
                fields.push(std::mem::take(&mut field));
                if record_end {
                    break;
                }
            }
            csv_core::ReadFieldResult::End => break,
            csv_core::ReadFieldResult::InputEmpty | csv_core::ReadFieldResult::OutputFull => {}
        }
    }
    fields
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fields(bytes: &[u8], ends: &[usize], gap: usize) -> Vec<Vec<u8>> {
        let r = RawRecordRef { bytes, ends, gap };
        (0..ends.len())
            .map(|i| r.get_bytes(i).unwrap_or_default().to_vec())
            .collect()
    }

    proptest! {
        /// Whenever the fast paths accept a line, they split it exactly as `csv-core` does.
        #[test]
        fn fast_paths_agree_with_csv_core(
            line in proptest::collection::vec(
                prop_oneof![
                    Just(b','), Just(b';'), Just(b'"'), Just(b' '), Just(b'a'), Just(b'\xd0'), Just(b'\xb4'), Just(b'\r'),
                    Just(b'\xac'), Just(b'\x2c' ^ 0x80),
                ],
                0..40,
            ),
            semicolon in any::<bool>(),
        ) {
            prop_assume!(!line.is_empty());
            let d = if semicolon { b';' } else { b',' };
            let expected = split_line(&line, d);
            let mut ends = Vec::new();
            let mut out = Vec::new();
            match split_plain(&line, d, &mut ends) {
                Plain::Fields(n) => {
                    prop_assert!(!line.contains(&b'"') && !line.contains(&b'\r'));
                    prop_assert_eq!(fields(&line, &ends[..n], 1), expected);
                }
                Plain::QuoteOrCr => {
                    prop_assert!(line.contains(&b'"') || line.contains(&b'\r'));
                    if !line.contains(&b'\r')
                        && let Some((n, written)) = split_quoted(&line, d, &mut out, &mut ends)
                    {
                        prop_assert_eq!(fields(&out[..written], &ends[..n], 0), expected);
                    }
                }
                Plain::TooMany => prop_assert!(false, "40 bytes cannot hold too many fields"),
            }
        }
    }

    #[test]
    fn quoted_lines_take_the_fast_path_only_when_simple() {
        let mut ends = Vec::new();
        let mut out = Vec::new();
        assert!(split_quoted(b"a,\"b,\"\"c\"\"\",", b',', &mut out, &mut ends).is_some());
        assert_eq!(
            fields(&out[..7], &ends[..3], 0),
            vec![b"a".to_vec(), b"b,\"c\"".to_vec(), Vec::new()]
        );
        for hard in [&b"\"open"[..], b"\"a\"b", b"a\"b", b"x,\"a\" "] {
            assert!(
                split_quoted(hard, b',', &mut out, &mut ends).is_none(),
                "{hard:?}"
            );
        }
    }
}
