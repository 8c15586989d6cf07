use super::*;

const S: fn(u64) -> Duration = Duration::from_secs;
const MS: fn(u64) -> Duration = Duration::from_millis;

/// 2025-08-21T12:40:00Z, the minute of Anthropic's sample response.
const NOW_SECS: u64 = 1_755_780_000;

fn now() -> SystemTime {
    UNIX_EPOCH + S(NOW_SECS)
}

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    h
}

fn read(pairs: &[(&str, &str)], conventions: RateLimitHeaders) -> Option<Quota> {
    Quota::read(&map(pairs), conventions, now())
}

fn q(
    remaining: Option<u64>,
    limit: Option<u64>,
    window: Option<u64>,
    reset: Option<Duration>,
) -> Quota {
    Quota {
        remaining,
        limit,
        window: window.map(S),
        reset,
    }
}

/// Every example of draft-ietf-httpapi-ratelimit-headers (the working group's current text)
/// that carries a quota.
#[test]
fn ietf_draft_examples() {
    let d = RateLimitHeaders::DEFAULT;
    type Case<'a> = (&'a [(&'a str, &'a str)], Option<Quota>);
    let table: &[Case<'_>] = &[
        (
            &[("ratelimit", r#""default";r=50;t=30"#)],
            Some(q(Some(50), None, None, Some(S(30)))),
        ),
        (
            &[("ratelimit-policy", r#""default";q=100;w=10"#)],
            Some(q(None, Some(100), Some(10), None)),
        ),
        (
            &[("ratelimit", r#""problemPolicy";r=0;t=10"#)],
            Some(q(Some(0), None, None, Some(S(10)))),
        ),
        (
            &[
                ("ratelimit-policy", r#""somepolicy";q=10000;w=1000"#),
                ("ratelimit", r#""somepolicy";r=10000;t=10"#),
            ],
            Some(q(Some(10000), Some(10000), Some(1000), Some(S(10)))),
        ),
        (
            &[
                ("ratelimit-policy", r#""basic";q=100;w=60"#),
                ("ratelimit", r#""basic";r=60;t=58"#),
            ],
            Some(q(Some(60), Some(100), Some(60), Some(S(58)))),
        ),
        (
            &[
                ("ratelimit-policy", r#""dynamic";q=15;w=20"#),
                ("ratelimit", r#""dynamic";r=0;t=20"#),
            ],
            Some(q(Some(0), Some(15), Some(20), Some(S(20)))),
        ),
        // Token names are accepted too.
        (
            &[
                ("ratelimit-policy", "quota;q=100;w=1"),
                ("ratelimit", "quota;t=1"),
            ],
            Some(q(None, Some(100), Some(1), Some(S(1)))),
        ),
        // Two policies, one reported: its remaining count wins over the unreported one.
        (
            &[
                (
                    "ratelimit-policy",
                    r#""hour";q=1000;w=3600, "day";q=5000;w=86400"#,
                ),
                ("ratelimit", r#""day";r=100;t=36000"#),
            ],
            Some(q(Some(100), Some(5000), Some(86400), Some(S(36000)))),
        ),
        (
            &[(
                "ratelimit-policy",
                r#""permin";q=50;w=60,"perhr";q=1000;w=3600"#,
            )],
            Some(q(None, Some(50), Some(60), None)),
        ),
        (
            &[
                ("ratelimit-policy", r#""sliding";q=100;w=60;burst=1000"#),
                ("ratelimit-policy", r#""fixed";q=5000;w=3600;burst=0"#),
                ("ratelimit", r#""sliding";r=50;t=44"#),
            ],
            Some(q(Some(50), Some(100), Some(60), Some(S(44)))),
        ),
        (
            &[(
                "ratelimit-policy",
                r#""peruser";q=100;w=60;pk=:cHsdsRa894==:"#,
            )],
            Some(q(None, Some(100), Some(60), None)),
        ),
        (
            &[("ratelimit", r#""default";r=999;pk=:dHJpYWwxMjEzMjM=:"#)],
            Some(q(Some(999), None, None, None)),
        ),
        // A quota of content bytes says nothing about requests until it is exhausted.
        (
            &[
                (
                    "ratelimit-policy",
                    r#""peruser";q=65535;qu="content-bytes";w=10;pk=:sdfjLJUOUH==:"#,
                ),
                ("ratelimit", r#""peruser";r=300;t=10"#),
            ],
            None,
        ),
        (
            &[
                (
                    "ratelimit-policy",
                    r#""peruser";q=65535;qu="content-bytes";w=10"#,
                ),
                ("ratelimit", r#""peruser";r=0;t=10"#),
            ],
            Some(q(Some(0), None, None, Some(S(10)))),
        ),
        // The earlier drafts.
        (
            &[
                ("ratelimit-limit", "100"),
                ("ratelimit-remaining", "25"),
                ("ratelimit-reset", "60"),
            ],
            Some(q(Some(25), Some(100), None, Some(S(60)))),
        ),
        (
            &[
                ("ratelimit-limit", "10, 10;w=1, 50;w=60"),
                ("ratelimit-remaining", "5"),
            ],
            Some(q(Some(5), Some(10), None, None)),
        ),
        (
            &[
                ("ratelimit", "limit=100, remaining=25, reset=60"),
                ("ratelimit-policy", "100;w=60"),
            ],
            Some(q(Some(25), Some(100), None, Some(S(60)))),
        ),
        (
            &[("ratelimit-policy", "100;w=60")],
            Some(q(None, Some(100), Some(60), None)),
        ),
    ];
    for (pairs, want) in table {
        assert_eq!(read(pairs, d), *want, "{pairs:?}");
    }
}

#[test]
fn ietf_several_items_merge_to_the_least_remaining() {
    let got = read(
        &[
            (
                "ratelimit-policy",
                r#""burst";q=100;w=60,"daily";q=1000;w=86400"#,
            ),
            ("ratelimit", r#""burst";r=40;t=30, "daily";r=3;t=7200"#),
        ],
        RateLimitHeaders::IETF,
    );
    assert_eq!(
        got,
        Some(q(Some(3), Some(1000), Some(86400), Some(S(7200))))
    );
    // Equally few: the later reset.
    let got = read(
        &[("ratelimit", r#""a";r=0;t=5, "b";r=0;t=50, "c";r=0;t=20"#)],
        RateLimitHeaders::IETF,
    );
    assert_eq!(got, Some(q(Some(0), None, None, Some(S(50)))));
}

#[test]
fn invalid_structured_fields_are_ignored_whole() {
    for bad in [
        r#""default";r=50;t=30,"#,
        r#""default";r=50;t="#,
        "default;r=5 0",
        r#""unterminated;r=1"#,
        "\u{7f}",
    ] {
        let Ok(v) = HeaderValue::from_str(bad) else {
            continue;
        };
        let mut h = HeaderMap::new();
        h.insert("ratelimit", v);
        assert_eq!(
            Quota::read(&h, RateLimitHeaders::IETF, now()),
            None,
            "{bad:?}"
        );
    }
    // One bad line spoils the field, not the other families.
    let got = read(
        &[
            ("ratelimit", r#""a";r=5"#),
            ("ratelimit", "((("),
            ("x-ratelimit-remaining", "9"),
        ],
        RateLimitHeaders::DEFAULT,
    );
    assert_eq!(got, Some(q(Some(9), None, None, None)));
    // Wrong types and negatives leave a parameter unset.
    let got = read(
        &[("ratelimit", r#""a";r=-1;t="soon", "b";r=?1;t=1.5"#)],
        RateLimitHeaders::IETF,
    );
    assert_eq!(got, None);
    // A repeated parameter: the last one counts.
    let got = read(&[("ratelimit", r#""a";r=9;r=2"#)], RateLimitHeaders::IETF);
    assert_eq!(got, Some(q(Some(2), None, None, None)));
    // An inner list is no policy; a zero window is none.
    let got = read(
        &[("ratelimit-policy", r#"("a" "b");q=1, "c";q=7;w=0"#)],
        RateLimitHeaders::IETF,
    );
    assert_eq!(got, Some(q(None, Some(7), None, None)));
}

/// GitHub's documented example (an epoch reset) and the delta-seconds form.
#[test]
fn x_ratelimit_delta_and_epoch() {
    let d = RateLimitHeaders::DEFAULT;
    let github = [
        ("x-ratelimit-limit", "5000"),
        ("x-ratelimit-remaining", "4999"),
        ("x-ratelimit-used", "1"),
        ("x-ratelimit-reset", "1372700873"),
        ("x-ratelimit-resource", "core"),
    ];
    let at = UNIX_EPOCH + S(1_372_700_000);
    let got = Quota::read(&map(&github), d, at);
    assert_eq!(got, Some(q(Some(4999), Some(5000), None, Some(S(873)))));
    // The same epoch read years later: in the past, so zero.
    assert_eq!(read(&github, d).unwrap().reset, Some(Duration::ZERO));
    let delta = [
        ("X-RateLimit-Limit", "60"),
        ("X-RateLimit-Remaining", "0"),
        ("X-RateLimit-Reset", "42"),
    ];
    assert_eq!(
        read(&delta, d),
        Some(q(Some(0), Some(60), None, Some(S(42))))
    );
    // Discord: an epoch with a fraction.
    let at = UNIX_EPOCH + S(1_470_173_022);
    let got = Quota::read(&map(&[("x-ratelimit-reset", "1470173023.123")]), d, at);
    assert_eq!(got.unwrap().reset, Some(MS(1123)));
    // The threshold: below it a delay (saturated at a year), from it on an epoch time.
    let got = read(&[("x-ratelimit-reset", "999999999")], d).unwrap();
    assert_eq!(got.reset, Some(MAX_HINT));
    let got = read(&[("x-ratelimit-reset", "1000000000")], d).unwrap();
    assert_eq!(got.reset, Some(Duration::ZERO));
    let far = (NOW_SECS + 10 * 365 * 86_400).to_string();
    assert_eq!(
        read(&[("x-ratelimit-reset", &far)], d).unwrap().reset,
        Some(MAX_HINT)
    );
    let huge = "99999999999999999999999999";
    assert_eq!(
        read(&[("x-ratelimit-reset", huge)], d).unwrap().reset,
        Some(MAX_HINT)
    );
    assert_eq!(
        read(&[("x-ratelimit-remaining", huge)], d)
            .unwrap()
            .remaining,
        Some(u64::MAX)
    );
}

#[test]
fn garbage_values_are_ignored() {
    let d = RateLimitHeaders::DEFAULT;
    for bad in [
        "", " ", "-1", "+5", "1e3", "five", "0x10", "1 2", "1.", ".5", "1.5.5",
    ] {
        for name in [
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
            "ratelimit-remaining",
            "ratelimit-reset",
        ] {
            assert_eq!(read(&[(name, bad)], d), None, "{name}: {bad:?}");
        }
    }
    let bin = HeaderValue::from_bytes(b"\xff\xfe").unwrap();
    let mut h = HeaderMap::new();
    h.insert("x-ratelimit-remaining", bin.clone());
    h.insert("ratelimit", bin.clone());
    h.insert("anthropic-ratelimit-requests-reset", bin);
    assert_eq!(
        Quota::read(
            &h,
            RateLimitHeaders::DEFAULT | RateLimitHeaders::ANTHROPIC,
            now()
        ),
        None
    );
    // Surrounding white space is fine.
    assert_eq!(
        read(&[("x-ratelimit-remaining", " 7\t")], d)
            .unwrap()
            .remaining,
        Some(7)
    );
}

/// OpenAI's documented sample values.
#[test]
fn openai_headers() {
    let o = RateLimitHeaders::OPENAI;
    let sample = [
        ("x-ratelimit-limit-requests", "60"),
        ("x-ratelimit-limit-tokens", "150000"),
        ("x-ratelimit-remaining-requests", "59"),
        ("x-ratelimit-remaining-tokens", "149984"),
        ("x-ratelimit-reset-requests", "1s"),
        ("x-ratelimit-reset-tokens", "6m0s"),
    ];
    assert_eq!(
        read(&sample, o),
        Some(q(Some(59), Some(60), None, Some(S(1))))
    );
    // Not read unless asked for.
    assert_eq!(read(&sample, RateLimitHeaders::DEFAULT), None);
    // No tokens left: no request can be served either, until the tokens reset.
    let mut dry = sample;
    dry[3].1 = "0";
    assert_eq!(read(&dry, o), Some(q(Some(0), None, None, Some(S(360)))));
}

#[test]
fn go_durations() {
    let d = |s: &str| parse_go_duration(&HeaderValue::from_str(s).unwrap());
    let table: &[(&str, Option<Duration>)] = &[
        ("1s", Some(S(1))),
        ("6m0s", Some(S(360))),
        ("250ms", Some(MS(250))),
        ("12ms", Some(MS(12))),
        ("1h2m3.5s", Some(S(3723) + MS(500))),
        ("7.66s", Some(MS(7660))),
        ("2m59.56s", Some(S(179) + MS(560))),
        ("1.5h", Some(S(5400))),
        ("0", Some(Duration::ZERO)),
        ("0s", Some(Duration::ZERO)),
        ("500us", Some(Duration::from_micros(500))),
        ("500µs", Some(Duration::from_micros(500))),
        ("3ns", Some(Duration::from_nanos(3))),
        (".5s", Some(MS(500))),
        ("99999999999999999999h", Some(MAX_HINT)),
        ("9000h", Some(MAX_HINT)),
        ("", None),
        ("s", None),
        ("5", None),
        ("-1s", None),
        ("1d", None),
        ("1.s", None),
        ("1 s", None),
        ("soon", None),
    ];
    for (text, want) in table {
        assert_eq!(d(text), *want, "{text:?}");
    }
}

/// Anthropic's headers, as its API sent them.
#[test]
fn anthropic_headers() {
    let a = RateLimitHeaders::ANTHROPIC;
    let sample = [
        ("anthropic-ratelimit-input-tokens-limit", "80000"),
        ("anthropic-ratelimit-input-tokens-remaining", "80000"),
        (
            "anthropic-ratelimit-input-tokens-reset",
            "2025-08-21T12:40:59Z",
        ),
        ("anthropic-ratelimit-output-tokens-limit", "16000"),
        ("anthropic-ratelimit-output-tokens-remaining", "16000"),
        (
            "anthropic-ratelimit-output-tokens-reset",
            "2025-08-21T12:41:00Z",
        ),
        ("anthropic-ratelimit-requests-limit", "1000"),
        ("anthropic-ratelimit-requests-remaining", "999"),
        ("anthropic-ratelimit-requests-reset", "2025-08-21T12:40:59Z"),
        ("anthropic-ratelimit-tokens-limit", "96000"),
        ("anthropic-ratelimit-tokens-remaining", "96000"),
        ("anthropic-ratelimit-tokens-reset", "2025-08-21T12:40:59Z"),
    ];
    assert_eq!(
        read(&sample, a),
        Some(q(Some(999), Some(1000), None, Some(S(59))))
    );
    assert_eq!(read(&sample, RateLimitHeaders::DEFAULT), None);
    let mut dry = sample;
    dry[4].1 = "0"; // no output tokens left
    assert_eq!(read(&dry, a), Some(q(Some(0), None, None, Some(S(60)))));
}

#[test]
fn rfc3339_timestamps() {
    let r = |s: &str| parse_rfc3339_reset(&HeaderValue::from_str(s).unwrap(), now());
    let table: &[(&str, Option<Duration>)] = &[
        ("2025-08-21T12:40:59Z", Some(S(59))),
        ("2025-08-21t12:40:59z", Some(S(59))),
        ("2025-08-21 12:40:59Z", Some(S(59))),
        ("2025-08-21T12:40:59.5Z", Some(S(59) + MS(500))),
        ("2025-08-21T14:40:59+02:00", Some(S(59))),
        ("2025-08-21T11:40:59-01:00", Some(S(59))),
        ("2025-08-21T12:39:00Z", Some(Duration::ZERO)),
        ("1969-12-31T23:59:59Z", Some(Duration::ZERO)),
        ("9999-12-31T23:59:59Z", Some(MAX_HINT)),
        ("2024-02-29T00:00:00Z", Some(Duration::ZERO)),
        ("2025-02-29T00:00:00Z", None),
        ("2025-13-01T00:00:00Z", None),
        ("2025-08-21T24:00:00Z", None),
        ("2025-08-21T12:40:59", None),
        ("2025-08-21T12:40:59+0200", None),
        ("2025-08-21", None),
        ("Thu, 21 Aug 2025 12:40:59 GMT", None),
        ("2025-08-21T12:40:59.Z", None),
        ("+025-08-21T12:40:59Z", None),
    ];
    for (text, want) in table {
        assert_eq!(r(text), *want, "{text:?}");
    }
}

/// Families that contradict each other: the fewest remaining wins, and among exhausted ones
/// the latest reset; every reset at most a year.
#[test]
fn contradicting_families_give_the_most_conservative_answer() {
    let all = RateLimitHeaders::DEFAULT | RateLimitHeaders::OPENAI | RateLimitHeaders::ANTHROPIC;
    let got = read(
        &[
            ("ratelimit", r#""default";r=50;t=30"#),
            ("x-ratelimit-remaining", "10"),
            ("x-ratelimit-reset", "5"),
            ("x-ratelimit-remaining-requests", "20"),
        ],
        all,
    );
    assert_eq!(got, Some(q(Some(10), None, None, Some(S(5)))));
    let got = read(
        &[
            ("ratelimit", r#""default";r=0;t=30"#),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "5"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "1m"),
            ("anthropic-ratelimit-requests-remaining", "3"),
        ],
        all,
    );
    assert_eq!(got, Some(q(Some(0), None, None, Some(S(60)))));
    // A lying reset a decade away is bounded here; the gate bounds it further.
    let got = read(
        &[
            ("ratelimit", r#""default";r=0;t=999999999999999"#),
            ("x-ratelimit-remaining", "0"),
        ],
        all,
    );
    assert_eq!(got, Some(q(Some(0), None, None, Some(MAX_HINT))));
}

#[test]
fn no_headers_no_quota_and_none_reads_nothing() {
    let ordinary = map(&[
        ("content-type", "application/json"),
        ("x-request-id", "req_1"),
        ("retry-after", "3"),
        ("x-ratelimit", "5"),
        ("ratelimits", "5"),
        ("anthropic-version", "2023-06-01"),
    ]);
    let all = RateLimitHeaders::DEFAULT | RateLimitHeaders::OPENAI | RateLimitHeaders::ANTHROPIC;
    assert_eq!(Quota::read(&ordinary, all, now()), None);
    let announced = map(&[("x-ratelimit-remaining", "1")]);
    assert_eq!(Quota::read(&announced, RateLimitHeaders::NONE, now()), None);
    assert_eq!(Quota::read(&announced, RateLimitHeaders::IETF, now()), None);
}

/// 10,000 copies of each header: only the first value (or the first lines of a structured
/// field) are read.
#[test]
fn ten_thousand_copies_are_read_in_bounded_time() {
    let mut h = HeaderMap::new();
    for i in 0..10_000 {
        let v = HeaderValue::from_str(&i.to_string()).unwrap();
        h.append("x-ratelimit-remaining", v);
        let item = HeaderValue::from_str(&format!(r#""p{i}";r={i};t=1"#)).unwrap();
        h.append("ratelimit", item);
    }
    let got = Quota::read(&h, RateLimitHeaders::DEFAULT, now()).unwrap();
    // The first value of X-RateLimit-Remaining is 0.
    assert_eq!(got.remaining, Some(0));
    let mut h = HeaderMap::new();
    for i in 1..10_000 {
        let item = HeaderValue::from_str(&format!(r#""p{i}";r={i};t=1"#)).unwrap();
        h.append("ratelimit", item);
    }
    // Only the first MAX_FIELD_LINES lines, of at most MAX_ITEMS items.
    let got = Quota::read(&h, RateLimitHeaders::IETF, now()).unwrap();
    assert_eq!(got.remaining, Some(1));
}

#[test]
fn conventions_are_flags() {
    let mut c = RateLimitHeaders::NONE;
    assert!(c.is_empty());
    c |= RateLimitHeaders::OPENAI;
    assert!(c.contains(RateLimitHeaders::OPENAI) && !c.contains(RateLimitHeaders::IETF));
    assert_eq!(RateLimitHeaders::default(), RateLimitHeaders::DEFAULT);
    assert_eq!(
        format!("{:?}", RateLimitHeaders::NONE),
        "RateLimitHeaders()"
    );
    assert_eq!(
        format!(
            "{:?}",
            RateLimitHeaders::OPENAI | RateLimitHeaders::ANTHROPIC
        ),
        "RateLimitHeaders(OPENAI | ANTHROPIC)"
    );
}

#[test]
fn an_epoch_reset_is_measured_on_the_servers_clock_when_it_sends_its_date() {
    let epoch = (NOW_SECS + 30).to_string();
    let x = |date: Option<SystemTime>| {
        let mut pairs = vec![
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", epoch.as_str()),
        ];
        let date = date.map(httpdate::fmt_http_date);
        if let Some(date) = &date {
            pairs.push(("date", date));
        }
        read(&pairs, RateLimitHeaders::DEFAULT).unwrap().reset
    };
    // The local clock stands in without a `Date`.
    assert_eq!(x(None), Some(S(30)));
    // A server clock 10 s behind this one: its window ends 40 s from its now, not 30.
    assert_eq!(x(Some(now() - S(10))), Some(S(40)));
    // Ahead by 500 ms: its `Date` says so, rounded down to the second.
    assert_eq!(x(Some(now() + MS(500))), Some(S(30)));
    // A delta is a delta, whatever the date; a `Date` that is not one is ignored.
    let delta = read(
        &[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "7"),
            ("date", "Thu, 01 Jan 1970 00:00:00 GMT"),
        ],
        RateLimitHeaders::DEFAULT,
    );
    assert_eq!(delta.unwrap().reset, Some(S(7)));
    let junk = read(
        &[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", epoch.as_str()),
            ("date", "yesterday"),
        ],
        RateLimitHeaders::DEFAULT,
    );
    assert_eq!(junk.unwrap().reset, Some(S(30)));
}

#[test]
fn every_family_of_the_table_is_read_only_when_chosen() {
    for (i, family) in FAMILIES.iter().enumerate() {
        for (at, field) in ["limit", "remaining", "reset"].into_iter().enumerate() {
            let name = format!("{}{field}{}", family.prefix, family.suffix);
            assert_eq!(place(&name, family.set), Some(Err((i, at))), "{name}");
            let others = RateLimitHeaders(RateLimitHeaders::ALL.bits() & !family.set.bits());
            assert_eq!(place(&name, others), None, "{name}");
        }
    }
    assert_eq!(place("ratelimit", RateLimitHeaders::IETF), Some(Ok(0)));
    assert_eq!(
        place("ratelimit-policy", RateLimitHeaders::IETF),
        Some(Ok(1))
    );
    assert_eq!(place("ratelimit", RateLimitHeaders::X_RATELIMIT), None);
    assert_eq!(place("authorization", RateLimitHeaders::ALL), None);
}

/// An earlier draft's `RateLimit-Limit` counts only an Integer as its first member.
#[test]
fn an_earlier_drafts_limit_is_its_first_integer() {
    let limit = |value: &'static str| parse_sf_limit(&HeaderValue::from_static(value));
    assert_eq!(limit("100"), Some(100));
    assert_eq!(limit("100;q=5;w=60, 7"), Some(100));
    for none in [
        r#""default";q=5"#,
        "tok;q=5, 100",
        "(100 200), 100",
        "1.5",
        "-3",
        "?1",
        "100, (",
    ] {
        assert_eq!(limit(none), None, "{none}");
    }
    // Past the most items that count, the field is still parsed whole.
    assert_eq!(limit("1, 2, 3, 4, 5, 6, 7, 8, 9, 10"), Some(1));
    assert_eq!(limit("1, 2, 3, 4, 5, 6, 7, 8, 9, 10, ("), None);
}
