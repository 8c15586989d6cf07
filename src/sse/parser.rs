//! An incremental, bounded parser of the `text/event-stream` format (WHATWG HTML,
//! "Server-sent events", §9.2.6 "Interpreting an event stream").

use super::Event;
use std::{collections::VecDeque, time::Duration};

/// The event stream was bigger than the configured limit: one line, or one event's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLarge {
    pub(crate) limit: usize,
}

/// Parses bytes into [`Event`]s. Feed it chunks with [`push`](Parser::push); a chunk may
/// split a line, a `\r\n` pair, or a UTF-8 character anywhere.
#[derive(Debug)]
pub(crate) struct Parser {
    /// Bytes of the line being read (no terminator).
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a leading `\n` belongs to that line end.
    after_cr: bool,
    /// The first bytes of the stream are still to be checked for a BOM.
    at_start: bool,
    data: String,
    event_type: String,
    /// The last event ID *buffer*: set by `id` lines, committed at dispatch.
    id_buffer: String,
    /// The last event ID of the connection: the buffer as it was at the last dispatch.
    last_event_id: String,
    retry_in_block: Option<Duration>,
    /// The latest reconnection time the server asked for.
    retry: Option<Duration>,
    limit: usize,
}

impl Parser {
    /// A parser that refuses lines and events larger than `limit` bytes.
    pub(crate) fn new(limit: usize) -> Parser {
        Parser {
            line: Vec::new(),
            after_cr: false,
            at_start: true,
            data: String::new(),
            event_type: String::new(),
            id_buffer: String::new(),
            last_event_id: String::new(),
            retry_in_block: None,
            retry: None,
            limit,
        }
    }

    /// The last event ID committed by a dispatch (empty: none, or reset by the server).
    pub(crate) fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// Sets the last event ID, as if an event with that id had been dispatched.
    pub(crate) fn set_last_event_id(&mut self, id: String) {
        self.id_buffer.clone_from(&id);
        self.last_event_id = id;
    }

    /// Changes the size limit.
    pub(crate) fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// The latest `retry:` the server sent.
    pub(crate) fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// Starts a new connection: an event that was not complete is discarded, as is an `id`
    /// it carried (it was never dispatched), and a BOM is allowed again.
    pub(crate) fn reset(&mut self) {
        self.line.clear();
        self.after_cr = false;
        self.at_start = true;
        self.data.clear();
        self.event_type.clear();
        self.id_buffer.clone_from(&self.last_event_id);
        self.retry_in_block = None;
    }

    /// Parses `chunk`, appending every event it completes to `out`.
    pub(crate) fn push(
        &mut self,
        mut chunk: &[u8],
        out: &mut VecDeque<Event>,
    ) -> Result<(), TooLarge> {
        if self.at_start {
            // A UTF-8 BOM may start the stream; wait until three bytes are there to tell.
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            let have = self.line.len();
            let take = chunk.len().min(BOM.len() - have);
            self.line.extend_from_slice(&chunk[..take]);
            if BOM.starts_with(&self.line) && self.line.len() < BOM.len() {
                return Ok(()); // still a possible BOM prefix
            }
            chunk = &chunk[take..];
            self.at_start = false;
            let head = std::mem::take(&mut self.line);
            let head = head.strip_prefix(BOM).unwrap_or(&head);
            self.scan(head, out)?;
        }
        self.scan(chunk, out)
    }

    fn scan(&mut self, mut chunk: &[u8], out: &mut VecDeque<Event>) -> Result<(), TooLarge> {
        if self.after_cr && !chunk.is_empty() {
            self.after_cr = false;
            if chunk[0] == b'\n' {
                chunk = &chunk[1..];
            }
        }
        while let Some(pos) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (head, rest) = chunk.split_at(pos);
            self.extend_line(head)?;
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, out)?;
            self.line = line;
            self.line.clear();
            chunk = &rest[1..];
            if rest[0] == b'\r' {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.extend_line(chunk)
    }

    fn extend_line(&mut self, bytes: &[u8]) -> Result<(), TooLarge> {
        if self.line.len() + bytes.len() > self.limit {
            return Err(TooLarge { limit: self.limit });
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn process_line(&mut self, line: &[u8], out: &mut VecDeque<Event>) -> Result<(), TooLarge> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(()); // a comment
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"event" => self.event_type = String::from_utf8_lossy(value).into_owned(),
            b"data" => {
                if self.data.len() + value.len() + 1 > self.limit {
                    return Err(TooLarge { limit: self.limit });
                }
                self.data.push_str(&String::from_utf8_lossy(value));
                self.data.push('\n');
            }
            b"id" if !value.contains(&0) => {
                self.id_buffer = String::from_utf8_lossy(value).into_owned();
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                // Saturates instead of overflowing on absurd values.
                let ms = std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(u64::MAX);
                let retry = Duration::from_millis(ms);
                self.retry = Some(retry);
                self.retry_in_block = Some(retry);
            }
            // Unknown fields, an `id` with NUL and a `retry` that is not digits are ignored.
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut VecDeque<Event>) {
        self.last_event_id.clone_from(&self.id_buffer);
        let retry = self.retry_in_block.take();
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        if self.data.ends_with('\n') {
            self.data.pop();
        }
        let event = std::mem::take(&mut self.event_type);
        out.push_back(Event {
            id: (!self.last_event_id.is_empty()).then(|| self.last_event_id.clone()),
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data: std::mem::take(&mut self.data),
            retry,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chunks(chunks: &[&[u8]]) -> (Vec<Event>, Parser) {
        let mut p = Parser::new(1024);
        let mut out = VecDeque::new();
        for c in chunks {
            p.push(c, &mut out).unwrap();
        }
        (out.into(), p)
    }

    fn parse(s: &str) -> Vec<Event> {
        parse_chunks(&[s.as_bytes()]).0
    }

    fn ev(id: Option<&str>, event: &str, data: &str) -> Event {
        Event {
            id: id.map(str::to_owned),
            event: event.to_owned(),
            data: data.to_owned(),
            retry: None,
        }
    }

    #[test]
    fn spec_examples() {
        // WHATWG examples: multi-line data, comments, ids, event types, `data` without colon.
        assert_eq!(
            parse("data: YHOO\ndata: +2\ndata: 10\n\n"),
            [ev(None, "message", "YHOO\n+2\n10")]
        );
        assert_eq!(
            parse(
                ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n"
            ),
            [
                ev(Some("1"), "message", "first event"),
                ev(None, "message", "second event"),
                ev(None, "message", " third event"),
            ]
        );
        assert_eq!(
            parse("data\n\ndata\ndata\n\ndata:"),
            [ev(None, "message", ""), ev(None, "message", "\n")]
        );
        assert_eq!(
            parse("event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\n"),
            [ev(None, "add", "73857293"), ev(None, "remove", "2153")]
        );
    }

    #[test]
    fn every_line_ending_and_any_split() {
        let text = "id: 7\r\nevent: x\rdata: a\r\ndata: b\n\r\n";
        let want = [ev(Some("7"), "x", "a\nb")];
        for i in 0..=text.len() {
            for j in i..=text.len() {
                let b = text.as_bytes();
                let (events, _) = parse_chunks(&[&b[..i], &b[i..j], &b[j..]]);
                assert_eq!(events, want, "split at {i}, {j}");
            }
        }
    }

    #[test]
    fn bom_is_skipped_once_even_when_split() {
        let text = "\u{FEFF}data: x\n\n";
        for i in 0..=text.len() {
            let b = text.as_bytes();
            let (events, _) = parse_chunks(&[&b[..i], &b[i..]]);
            assert_eq!(events, [ev(None, "message", "x")], "split at {i}");
        }
        // A second BOM is not a BOM: the line becomes an unknown field.
        assert_eq!(parse("\u{FEFF}\u{FEFF}data: x\n\ndata: y\n\n").len(), 1);
    }

    #[test]
    fn ids_persist_nul_is_ignored_and_empty_resets() {
        let events = parse("id: 1\ndata: a\n\ndata: b\n\nid: 2\0\ndata: c\n\nid\ndata: d\n\n");
        let ids: Vec<_> = events.iter().map(|e| e.id.as_deref()).collect();
        assert_eq!(ids, [Some("1"), Some("1"), Some("1"), None]);
    }

    #[test]
    fn retry_is_digits_only_and_remembered() {
        let (events, p) =
            parse_chunks(&[b"retry: 1500\ndata: a\n\nretry: 12x\nretry: -1\nretry:\ndata: b\n\n"]);
        assert_eq!(events[0].retry, Some(Duration::from_millis(1500)));
        assert_eq!(events[1].retry, None);
        assert_eq!(p.retry(), Some(Duration::from_millis(1500)));
        let (_, p) = parse_chunks(&[b"retry: 99999999999999999999999\n\n"]);
        assert_eq!(p.retry(), Some(Duration::from_millis(u64::MAX)));
    }

    #[test]
    fn incomplete_event_is_discarded_with_its_id() {
        let (events, mut p) = parse_chunks(&[b"id: 1\ndata: a\n\nid: 2\ndata: half"]);
        assert_eq!(events.len(), 1);
        assert_eq!(p.last_event_id(), "1");
        p.reset();
        let mut out = VecDeque::new();
        p.push(b"data: next\n\n", &mut out).unwrap();
        assert_eq!(out[0], ev(Some("1"), "message", "next"));
    }

    #[test]
    fn id_only_block_moves_the_cursor() {
        let (events, p) = parse_chunks(&[b"id: 5\n\n"]);
        assert!(events.is_empty());
        assert_eq!(p.last_event_id(), "5");
    }

    #[test]
    fn utf8_split_across_chunks_and_invalid_bytes() {
        let text = "data: żółw\n\n".as_bytes();
        for i in 0..text.len() {
            let (events, _) = parse_chunks(&[&text[..i], &text[i..]]);
            assert_eq!(events[0].data, "żółw");
        }
        let (events, _) = parse_chunks(&[b"data: \xFF\n\n"]);
        assert_eq!(events[0].data, "\u{FFFD}");
    }

    #[test]
    fn limits_bound_lines_and_events() {
        let mut p = Parser::new(16);
        let mut out = VecDeque::new();
        assert!(p.push(&[b'x'; 17], &mut out).is_err());
        let mut p = Parser::new(16);
        // Each line fits, the event does not.
        let err = p.push(b"data: 0123456\ndata: 0123456\ndata: 0123456\n", &mut out);
        assert_eq!(err, Err(TooLarge { limit: 16 }));
        let mut p = Parser::new(16);
        assert!(p.push(&[b'\n'; 10_000], &mut out).is_ok());
        assert!(out.is_empty());
    }
}

#[cfg(test)]
mod props {
    use super::Parser;
    use std::collections::VecDeque;

    proptest::proptest! {
        #![proptest_config(crate::props::config(256))]

        /// Hostile bytes never panic, and however they are chunked the result is the same.
        #[test]
        fn any_bytes_any_chunking(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(b"\r\n:data id event retry 0123\0\xEF\xBB\xBF".to_vec()),
                    proptest::num::u8::ANY,
                ],
                0..400,
            ),
            cuts in proptest::collection::vec(0usize..400, 0..8),
        ) {
            let whole = {
                let mut p = Parser::new(64);
                let mut out = VecDeque::new();
                let r = p.push(&bytes, &mut out);
                (r.is_ok(), out, p.last_event_id().to_owned(), p.retry())
            };
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut p = Parser::new(64);
            let mut out = VecDeque::new();
            let mut ok = true;
            let mut at = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                if ok {
                    ok = p.push(&bytes[at..cut], &mut out).is_ok();
                }
                at = cut;
            }
            if whole.0 {
                proptest::prop_assert!(ok);
                proptest::prop_assert_eq!(out, whole.1);
                proptest::prop_assert_eq!(p.last_event_id(), whole.2.as_str());
                proptest::prop_assert_eq!(p.retry(), whole.3);
            }
        }
    }
}
