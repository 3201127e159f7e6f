//! A small regular-expression subset, for pulling a number out of a file
//! (`regex` of a file sensor). A leaf: it imports nothing of ours.
//!
//! Why not a crate: `regex-lite`, the smallest, cost 38 KB of the armv6
//! binary (docs/PERFORMANCE.md); this costs a few KB and matches in linear
//! time (a Pike VM: every position is visited once per instruction, so no
//! pattern and no file can make it backtrack for long).
//!
//! The subset, matched on bytes:
//!
//! | syntax | meaning |
//! | --- | --- |
//! | `a`, `°`, `\.`, `\[`, `\\`, … | that character (escape any of `\.[]()*+?^$\|{}-`) |
//! | `.` | any byte but a newline |
//! | `[abc]`, `[a-z0-9_]`, `[^,]` | one of (or none of) these ASCII characters |
//! | `\d \s \w`, `\D \S \W` | an ASCII digit, space (` \t\n\r\v\f`), word character (`[A-Za-z0-9_]`), and their opposites; also inside `[…]` |
//! | `\t \n \r` | tab, newline, carriage return |
//! | `*`, `+`, `?` | after a character or class: any number, at least one, at most one; greedy |
//! | `^`, `$` | the start and the end of a line (of the file, or next to a newline) |
//! | `(…)` | the capture group, at most one, not nested, not repeated |
//!
//! Anything else (`|`, `{n,m}`, lazy `*?`, `\b`, backreferences, nested or
//! repeated groups) is refused with an error that says so, so that a
//! pattern never means something other than it seems.
//!
//! [`Pattern::extract`] gives the capture group of the leftmost match, or
//! the whole match when there is no group.

use std::fmt;

/// Patterns longer than this are refused (the matcher's recursion depth is
/// bounded by the program's length).
const MAX_LEN: usize = 1000;

/// A compiled pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    program: Vec<Inst>,
    has_group: bool,
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.source)
    }
}

/// What is wrong with a pattern, and where (in characters, from 0).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at character {at} of the regex: {what}")]
pub struct PatternError {
    pub at: usize,
    /// A fixed text: the position says which character it is about.
    pub what: &'static str,
}

/// A set of bytes.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct Set([u64; 4]);

impl Set {
    fn add(&mut self, byte: u8) {
        self.0[usize::from(byte >> 6)] |= 1 << (byte & 63);
    }

    fn add_range(&mut self, from: u8, to: u8) {
        for byte in from..=to {
            self.add(byte);
        }
    }

    fn add_set(&mut self, other: Set) {
        for (word, more) in self.0.iter_mut().zip(other.0) {
            *word |= more;
        }
    }

    fn contains(&self, byte: u8) -> bool {
        self.0[usize::from(byte >> 6)] & (1 << (byte & 63)) != 0
    }

    fn negated(mut self) -> Set {
        for word in &mut self.0 {
            *word = !*word;
        }
        self
    }

    fn one(byte: u8) -> Set {
        let mut set = Set::default();
        set.add(byte);
        set
    }

    /// `\d`, `\s`, `\w` and their capitals.
    fn perl(letter: char) -> Option<Set> {
        let mut set = Set::default();
        match letter.to_ascii_lowercase() {
            'd' => set.add_range(b'0', b'9'),
            's' => [b' ', b'\t', b'\n', b'\r', 0x0b, 0x0c]
                .into_iter()
                .for_each(|b| set.add(b)),
            'w' => {
                set.add_range(b'a', b'z');
                set.add_range(b'A', b'Z');
                set.add_range(b'0', b'9');
                set.add(b'_');
            }
            _ => return None,
        }
        Some(if letter.is_ascii_uppercase() {
            set.negated()
        } else {
            set
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Inst {
    /// One byte out of the set.
    Byte(Set),
    /// Go on at both; the first is preferred (greed).
    Split(usize, usize),
    Jump(usize),
    /// Record the position in slot n: 0/1 the match, 2/3 the group.
    Save(usize),
    LineStart,
    LineEnd,
    Match,
}

/// Characters that mean something and must be escaped to be literal.
const SPECIAL: &str = r".[]()*+?^$\|{}-";

/// One element of a pattern, before compiling.
enum Item {
    Byte(Set),
    LineStart,
    LineEnd,
    GroupStart,
    GroupEnd,
}

impl Pattern {
    pub fn new(source: &str) -> Result<Pattern, PatternError> {
        if source.chars().count() > MAX_LEN {
            return Err(PatternError {
                at: MAX_LEN,
                what: "longer than 1000 characters",
            });
        }
        let mut items: Vec<(Item, Option<char>)> = Vec::new();
        let mut chars = source.chars().enumerate().peekable();
        let mut group = GroupState::None;
        while let Some((at, c)) = chars.next() {
            let error = |what: &'static str| PatternError { at, what };
            let item = match c {
                '.' => Item::Byte(Set::one(b'\n').negated()),
                '^' => Item::LineStart,
                '$' => Item::LineEnd,
                '(' => {
                    if chars.peek().is_some_and(|(_, next)| *next == '?') {
                        return Err(error("`(?` groups and flags are not supported"));
                    }
                    match group {
                        GroupState::None => group = GroupState::Open,
                        GroupState::Open => return Err(error("groups cannot be nested")),
                        GroupState::Closed => return Err(error("only one capture group is supported")),
                    }
                    Item::GroupStart
                }
                ')' => {
                    if group != GroupState::Open {
                        return Err(error("`)` without `(`"));
                    }
                    group = GroupState::Closed;
                    Item::GroupEnd
                }
                '[' => Item::Byte(class(&mut chars, at)?),
                '\\' => Item::Byte(escape(&mut chars, at, false)?),
                '*' | '+' | '?' => {
                    let what = match items.last() {
                        Some((Item::Byte(_), None)) => None,
                        Some((Item::Byte(_), Some(_))) => {
                            Some("a repetition after a repetition (lazy or stacked repetitions are not supported)")
                        }
                        Some((Item::GroupEnd, _)) => Some("a repetition after a group (a group cannot be repeated)"),
                        _ => Some("a repetition with nothing to repeat"),
                    };
                    if let Some(what) = what {
                        return Err(error(what));
                    }
                    if let Some((_, quantifier)) = items.last_mut() {
                        *quantifier = Some(c);
                    }
                    continue;
                }
                '|' => return Err(error("alternation `|` is not supported")),
                '{' | '}' => return Err(error("counted repetition `{n,m}` is not supported")),
                c => {
                    // A non-ASCII character is its UTF-8 bytes in a row.
                    let mut buffer = [0u8; 4];
                    let bytes = c.encode_utf8(&mut buffer).as_bytes();
                    let (last, first) = bytes.split_last().unwrap_or((&0, &[]));
                    items.extend(first.iter().map(|b| (Item::Byte(Set::one(*b)), None)));
                    Item::Byte(Set::one(*last))
                }
            };
            items.push((item, None));
        }
        if group == GroupState::Open {
            return Err(PatternError {
                at: source.chars().count(),
                what: "`(` is not closed",
            });
        }
        Ok(Pattern {
            source: source.to_owned(),
            program: compile(&items),
            has_group: group == GroupState::Closed,
        })
    }

    /// The text of the pattern.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The capture group of the leftmost match (the whole match without a
    /// group), or `None`.
    pub fn extract<'t>(&self, text: &'t [u8]) -> Option<&'t [u8]> {
        let slots = self.search(text)?;
        let range = if self.has_group {
            slots[2]?..slots[3]?
        } else {
            slots[0]?..slots[1]?
        };
        text.get(range)
    }

    /// The leftmost match's range, for tests.
    #[cfg(test)]
    fn find(&self, text: &[u8]) -> Option<std::ops::Range<usize>> {
        let slots = self.search(text)?;
        Some(slots[0]?..slots[1]?)
    }

    /// A Pike VM: all threads advance together over the text, in priority
    /// order; a new thread starts at each position until a match is found.
    fn search(&self, text: &[u8]) -> Option<Slots> {
        let mut current = Threads::new(self.program.len());
        let mut next = Threads::new(self.program.len());
        let mut matched: Option<Slots> = None;
        for at in 0..=text.len() {
            if matched.is_none() {
                self.add(&mut current, 0, at, text, [None; 4]);
            }
            if current.list.is_empty() && matched.is_some() {
                break;
            }
            for index in 0..current.list.len() {
                let (pc, slots) = current.list[index];
                match self.program[pc] {
                    Inst::Byte(set) => {
                        if text.get(at).is_some_and(|byte| set.contains(*byte)) {
                            self.add(&mut next, pc + 1, at + 1, text, slots);
                        }
                    }
                    Inst::Match => {
                        matched = Some(slots);
                        // Threads after this one have lower priority.
                        break;
                    }
                    // `add` follows these and never lists them.
                    Inst::Split(..) | Inst::Jump(_) | Inst::Save(_) | Inst::LineStart | Inst::LineEnd => {}
                }
            }
            std::mem::swap(&mut current, &mut next);
            next.clear();
        }
        matched
    }

    /// Adds the thread at `pc`, following jumps, splits, saves and
    /// assertions at position `at` (each pc at most once per position).
    fn add(&self, threads: &mut Threads, pc: usize, at: usize, text: &[u8], mut slots: Slots) {
        if threads.seen[pc] {
            return;
        }
        threads.seen[pc] = true;
        match self.program[pc] {
            Inst::Jump(to) => self.add(threads, to, at, text, slots),
            Inst::Split(first, second) => {
                self.add(threads, first, at, text, slots);
                self.add(threads, second, at, text, slots);
            }
            Inst::Save(slot) => {
                slots[slot] = Some(at);
                self.add(threads, pc + 1, at, text, slots);
            }
            Inst::LineStart => {
                if at == 0 || text.get(at - 1) == Some(&b'\n') {
                    self.add(threads, pc + 1, at, text, slots);
                }
            }
            Inst::LineEnd => {
                if at == text.len() || text.get(at) == Some(&b'\n') {
                    self.add(threads, pc + 1, at, text, slots);
                }
            }
            Inst::Byte(_) | Inst::Match => threads.list.push((pc, slots)),
        }
    }
}

type Slots = [Option<usize>; 4];

struct Threads {
    list: Vec<(usize, Slots)>,
    seen: Vec<bool>,
}

impl Threads {
    fn new(len: usize) -> Threads {
        Threads {
            list: Vec::with_capacity(len),
            seen: vec![false; len],
        }
    }

    fn clear(&mut self) {
        self.list.clear();
        self.seen.iter_mut().for_each(|seen| *seen = false);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum GroupState {
    None,
    Open,
    Closed,
}

fn compile(items: &[(Item, Option<char>)]) -> Vec<Inst> {
    let mut program = vec![Inst::Save(0)];
    for (item, quantifier) in items {
        let single = match item {
            Item::Byte(set) => Inst::Byte(*set),
            Item::LineStart => Inst::LineStart,
            Item::LineEnd => Inst::LineEnd,
            Item::GroupStart => Inst::Save(2),
            Item::GroupEnd => Inst::Save(3),
        };
        let here = program.len();
        match quantifier {
            None => program.push(single),
            // here: split → here+1 (the byte) or here+2 (past it).
            Some('?') => program.extend([Inst::Split(here + 1, here + 2), single]),
            // here: split → here+1 or past; here+1: byte; here+2: back.
            Some('*') => program.extend([Inst::Split(here + 1, here + 3), single, Inst::Jump(here)]),
            // here: byte; here+1: split → here (again) or past.
            _ => program.extend([single, Inst::Split(here, here + 2)]),
        }
    }
    program.extend([Inst::Save(1), Inst::Match]);
    program
}

type Chars<'a> = std::iter::Peekable<std::iter::Enumerate<std::str::Chars<'a>>>;

/// After a `\`: an escaped special character, `\d`-style classes, `\t\n\r`.
fn escape(chars: &mut Chars<'_>, at: usize, in_class: bool) -> Result<Set, PatternError> {
    let Some((_, c)) = chars.next() else {
        return Err(PatternError {
            at,
            what: "`\\` at the end",
        });
    };
    if let Some(set) = Set::perl(c) {
        return Ok(set);
    }
    match c {
        't' => Ok(Set::one(b'\t')),
        'n' => Ok(Set::one(b'\n')),
        'r' => Ok(Set::one(b'\r')),
        c if SPECIAL.contains(c) || (in_class && c == '^') => Ok(Set::one(c as u8)),
        _ => Err(PatternError {
            at,
            what: r"this escape is not supported (escape only .[]()*+?^$|{}-\, or use \d \s \w \t \n \r)",
        }),
    }
}

/// After a `[`: up to the closing `]`.
fn class(chars: &mut Chars<'_>, at: usize) -> Result<Set, PatternError> {
    let error = |what: &'static str| PatternError { at, what };
    let negate = chars.next_if(|(_, c)| *c == '^').is_some();
    let mut set = Set::default();
    let mut first = true;
    // The byte just added, when a `-` could make it a range's start.
    let mut previous: Option<u8> = None;
    loop {
        let Some((here, c)) = chars.next() else {
            return Err(error("`[` is not closed"));
        };
        match c {
            ']' if !first => break,
            '\\' => {
                let escaped = escape(chars, here, true)?;
                set.add_set(escaped);
                // A single escaped character may start a range.
                previous = (escaped.0.iter().map(|w| w.count_ones()).sum::<u32>() == 1)
                    .then(|| (0..=255u8).find(|b| escaped.contains(*b)))
                    .flatten();
            }
            '-' if previous.is_some() && chars.peek().is_some_and(|(_, next)| *next != ']') => {
                let from = previous.take().unwrap_or(0);
                let to = match chars.next() {
                    Some((_, '\\')) => {
                        let escaped = escape(chars, here, true)?;
                        (0..=255u8).find(|b| escaped.contains(*b)).unwrap_or(0)
                    }
                    Some((_, c)) if c.is_ascii() => c as u8,
                    _ => return Err(error("only ASCII characters can be used in `[…]`")),
                };
                if to < from {
                    return Err(PatternError {
                        at: here,
                        what: "a backwards range",
                    });
                }
                set.add_range(from, to);
            }
            c if c.is_ascii() => {
                set.add(c as u8);
                previous = Some(c as u8);
            }
            _ => return Err(error("only ASCII characters can be used in `[…]`")),
        }
        first = false;
    }
    Ok(if negate { set.negated() } else { set })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pattern` on `text` extracts `expected`.
    fn check(pattern: &str, text: &str, expected: Option<&str>) {
        let compiled = Pattern::new(pattern).unwrap_or_else(|e| panic!("{pattern:?}: {e}"));
        let got = compiled
            .extract(text.as_bytes())
            .map(|m| String::from_utf8_lossy(m).into_owned());
        assert_eq!(got.as_deref(), expected, "{pattern:?} on {text:?}");
    }

    fn refused(pattern: &str, at: usize, says: &str) {
        match Pattern::new(pattern) {
            Ok(_) => panic!("{pattern:?} accepted"),
            Err(error) => {
                assert_eq!(error.at, at, "{pattern:?}: {error}");
                assert!(error.what.contains(says), "{pattern:?}: {error}");
            }
        }
    }

    #[test]
    fn numbers_should_be_pulled_out_of_typical_files() {
        check(r"t=(-?\d+)", "72 01 4b 46 7f ff 0e 10 57 t=23125\n", Some("23125"));
        check(r"temp=([\d.]+)'C", "temp=48.3'C\n", Some("48.3"));
        check(
            r"^MemAvailable:\s+(\d+)",
            "MemTotal: 1 kB\nMemAvailable:   3713500 kB\n",
            Some("3713500"),
        );
        check(r"(\d+\.\d+)°C", "CPU: 41.2°C", Some("41.2"));
        check(r"\d+", "abc 42 17", Some("42"));
        check(r"^(\d+)$", "12\n345\n", Some("12"));
        check(r"^(\d+)$", "12a\n345\n", Some("345"));
        check(r"value: (\S+)", "value: 7.5e3 units", Some("7.5e3"));
        check(r"x", "abc", None);
    }

    #[test]
    fn repetitions_should_be_greedy_and_leftmost_first() {
        check("a*", "aaab", Some("aaa"));
        check("(a+)b", "xaaab", Some("aaa"));
        check("(a?)a", "aa", Some("a"));
    }

    #[test]
    fn classes_should_cover_ranges_negation_escapes_and_literal_edges() {
        check("([a-c]+)", "xxabcabd", Some("abcab"));
        check("([^,]+),", "12.5,13", Some("12.5"));
        check("([]a]+)", "x]a]y", Some("]a]"));
        check("([a-]+)", "b-a-c", Some("-a-"));
        check(r"([\d\-+.e]+)", "v=-1.5e+3;", Some("-1.5e+3"));
        check(r"([\]\\]+)", r"a]\]b", Some(r"]\]"));
        check(r"(\W+)", "ab, cd", Some(", "));
        check(r"(\D+)", "12ab34", Some("ab"));
        check(r"[\s]([0-9])", "a 5", Some("5"));
    }

    #[test]
    fn dot_should_not_cross_a_line_and_anchors_should_match_at_lines() {
        check("a.c", "a\nc abc", Some("abc"));
        check("^b", "ab\nb", Some("b"));
        check("a$", "ab\nca\n", Some("a"));
        assert_eq!(Pattern::new("a$").expect("ok").find(b"ab\nca\n"), Some(4..5));
        assert_eq!(Pattern::new("^$").expect("ok").find(b"x\n\ny"), Some(2..2));
        check(r"\.\[\(\)\*\+\?\^\$\|\{\}\\", r".[()*+?^$|{}\", Some(r".[()*+?^$|{}\"));
        check(r"a\tb", "a\tb", Some("a\tb"));
    }

    #[test]
    fn what_is_outside_the_subset_should_be_refused_where_it_is() {
        refused("a|b", 1, "alternation");
        refused("a{2}", 1, "counted repetition");
        refused("a*?", 2, "lazy");
        refused("a**", 2, "stacked");
        refused("*a", 0, "nothing to repeat");
        refused("^*", 1, "nothing to repeat");
        refused("(a)+", 3, "a group cannot be repeated");
        refused("((a))", 1, "nested");
        refused("(a)(b)", 3, "only one capture group");
        refused("(?i)a", 0, "not supported");
        refused("(a", 2, "not closed");
        refused("a)", 1, "without `(`");
        refused("[abc", 0, "not closed");
        refused("[z-a]", 2, "backwards");
        refused("[é]", 0, "only ASCII");
        refused(r"\b", 0, "this escape is not supported");
        refused(r"\1", 0, "not supported");
        refused("a\\", 1, "at the end");
        refused(&"a".repeat(MAX_LEN + 1), MAX_LEN, "longer than");
    }

    #[test]
    fn a_hostile_pattern_should_still_match_in_linear_time() {
        // Exponential for a backtracker; here each byte is one step of the
        // threads, so this finishes at once.
        let pattern = Pattern::new(&format!("{}{}", "a?".repeat(40), "a".repeat(40))).expect("ok");
        let text = "a".repeat(40);
        assert_eq!(pattern.find(text.as_bytes()), Some(0..40));
        let pattern = Pattern::new("(a*)*b").err();
        assert!(pattern.is_some(), "a repeated group is refused anyway");
        let pattern = Pattern::new("a*a*a*a*a*c").expect("ok");
        assert_eq!(pattern.find("a".repeat(20_000).as_bytes()), None);
    }

    /// Random patterns of the subset give the same leftmost match and group
    /// as `regex-lite` (in multi-line mode, where `^` and `$` are ours).
    #[test]
    fn matches_should_agree_with_regex_lite() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};

        let atom = prop_oneof![
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just(".".to_owned()),
            Just(r"\d".to_owned()),
            Just(r"\s".to_owned()),
            Just(r"\W".to_owned()),
            Just("[ab]".to_owned()),
            Just("[^a\n]".to_owned()),
            Just("[0-2]".to_owned()),
            Just(r"\.".to_owned()),
        ];
        let quantified = (atom, prop_oneof![Just(""), Just("*"), Just("+"), Just("?")])
            .prop_map(|(atom, quantifier)| format!("{atom}{quantifier}"));
        let anchor = prop_oneof![Just(""), Just("^"), Just("$")];
        let pattern = (
            anchor.clone(),
            proptest::collection::vec(quantified.clone(), 0..3),
            proptest::collection::vec(quantified.clone(), 0..3),
            proptest::collection::vec(quantified, 0..3),
            any::<bool>(),
            anchor,
        )
            .prop_map(|(start, before, group, after, grouped, end)| {
                let (open, close) = if grouped { ("(", ")") } else { ("", "") };
                format!(
                    "{start}{}{open}{}{close}{}{end}",
                    before.concat(),
                    group.concat(),
                    after.concat()
                )
            });
        let text = "[ab01 .\n]{0,12}";
        let mut runner = TestRunner::new(Config {
            cases: 2000,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&(pattern, text), |(pattern, text)| {
                let ours = Pattern::new(&pattern).expect("in the subset");
                let theirs = regex_lite::Regex::new(&format!("(?m){pattern}")).expect("valid for regex-lite");
                let expected = theirs.captures(&text).map(|caps| {
                    let m = if ours.has_group { caps.get(1) } else { caps.get(0) };
                    m.map(|m| m.as_str().to_owned())
                });
                let got = ours.search(text.as_bytes()).map(|_| {
                    ours.extract(text.as_bytes())
                        .map(|m| String::from_utf8_lossy(m).into_owned())
                });
                prop_assert_eq!(got, expected, "pattern {:?} on {:?}", pattern, text);
                Ok(())
            })
            .expect("agrees with regex-lite");
    }
}
