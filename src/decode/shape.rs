//! The JSON body shapes of both pages, decoded in one pass without an intermediate `Value`
//! for the parts the crate understands.

use super::Credentials;
use crate::{
    code::ErrorCode,
    error::{ApiError, Assembly, BodyShape},
    retry_after::Hint,
    text::{
        redact::{redact_member, redact_value},
        safe::{MAX_TEXT_CHARS, safe_string, safe_text},
    },
};
use http::StatusCode;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use std::{borrow::Cow, fmt};

/// One JSON error object: the top level of a body, or the object under `"error"`.
///
/// The members the crate reads as text are borrowed from the body when they have no escapes;
/// only `details`, `data` and unknown members become a `Value`, because
/// [`ApiError::details`] and [`ApiError::field`] hand them out as one.
#[derive(Default)]
pub(super) struct Obj<'de> {
    detail: Option<Member<'de>>,
    /// A string (`"agent_connected"`), an object (MCP, JSON-RPC), or junk.
    error: Option<Member<'de>>,
    code: Option<Member<'de>>,
    message: Option<Member<'de>>,
    fix: Option<Member<'de>>,
    details: Option<Value>,
    data: Option<Value>,
    jsonrpc: bool,
    others: Vec<(Box<str>, Value)>,
}

/// A member's value: a string (borrowed when it has no escapes), an error object (only
/// under `"error"`), or any other value.
enum Member<'de> {
    Str(Cow<'de, str>),
    Obj(Box<Obj<'de>>),
    Other(Value),
}

impl Member<'_> {
    fn into_value(self) -> Value {
        match self {
            Member::Str(s) => Value::String(s.into_owned()),
            // Only `"error"` reads an object as an `Obj`, and it is never turned back.
            Member::Obj(_) => Value::Null,
            Member::Other(v) => v,
        }
    }
}

/// Reads a [`Member`]: an object as an [`Obj`] when `objects`, else as a `Value`.
#[derive(Clone, Copy)]
struct MemberSeed {
    objects: bool,
}

impl<'de> de::Deserialize<'de> for Member<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        MemberSeed { objects: false }.deserialize(d)
    }
}

impl<'de> DeserializeSeed<'de> for MemberSeed {
    type Value = Member<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Member<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MemberSeed {
    type Value = Member<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Member<'de>, E> {
        Ok(Member::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Member<'de>, E> {
        Ok(Member::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Member<'de>, E> {
        Ok(Member::Str(Cow::Owned(s)))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Member<'de>, A::Error> {
        if self.objects {
            let mut obj = Obj::default();
            fill(&mut obj, map)?;
            return Ok(Member::Obj(Box::new(obj)));
        }
        let v = de::Deserialize::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Member::Other(v))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Member<'de>, A::Error> {
        let v = de::Deserialize::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Member::Other(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Member<'de>, E> {
        Ok(Member::Other(Value::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Member<'de>, E> {
        Ok(Member::Other(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Member<'de>, E> {
        Ok(Member::Other(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Member<'de>, E> {
        Ok(Member::Other(v.into()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Member<'de>, E> {
        Ok(Member::Other(Value::Null))
    }
}

enum Key {
    Detail,
    Error,
    Code,
    Message,
    Fix,
    Details,
    Data,
    JsonRpc,
    Id,
    Other(Box<str>),
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
                Ok(match s {
                    "detail" => Key::Detail,
                    "error" => Key::Error,
                    "code" => Key::Code,
                    "message" => Key::Message,
                    "fix" => Key::Fix,
                    "details" => Key::Details,
                    "data" => Key::Data,
                    "jsonrpc" => Key::JsonRpc,
                    "id" => Key::Id,
                    other => Key::Other(other.into()),
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// Fills a caller's [`Obj`] in place (the top level is not moved around: it is large).
struct ObjSeed<'a, 'de>(&'a mut Obj<'de>);

impl<'de> DeserializeSeed<'de> for ObjSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjSeed<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an error object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        fill(self.0, map)
    }
}

fn fill<'de, A: MapAccess<'de>>(obj: &mut Obj<'de>, mut map: A) -> Result<(), A::Error> {
    while let Some(key) = map.next_key::<Key>()? {
        match key {
            Key::Detail => obj.detail = Some(map.next_value()?),
            Key::Error => obj.error = Some(map.next_value_seed(MemberSeed { objects: true })?),
            Key::Code => obj.code = Some(map.next_value()?),
            Key::Message => obj.message = Some(map.next_value()?),
            Key::Fix => obj.fix = Some(map.next_value()?),
            Key::Details => obj.details = Some(map.next_value()?),
            Key::Data => obj.data = Some(map.next_value()?),
            Key::JsonRpc => {
                map.next_value::<IgnoredAny>()?;
                obj.jsonrpc = true;
            }
            Key::Id => {
                map.next_value::<IgnoredAny>()?;
            }
            Key::Other(name) => {
                let value = map.next_value()?;
                match obj.others.iter_mut().find(|(k, _)| *k == name) {
                    Some(slot) => slot.1 = value, // duplicate key: the last wins, as in `Value`
                    None => obj.others.push((name, value)),
                }
            }
        }
    }
    Ok(())
}

/// Parses a body as one of the JSON shapes into `obj`; `false` when it is not a JSON object
/// (then `obj` may hold part of it and is to be dropped).
pub(super) fn parse<'de>(body: &'de [u8], obj: &mut Obj<'de>) -> bool {
    // Only an object can be a documented shape: skip the parser (and its error) for HTML,
    // text and empty bodies.
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        _ => return false,
    }
    // One UTF-8 check for the whole body (vectorised), rather than one per string inside
    // the parser. A body that is not UTF-8 is parsed as bytes: the parser skips
    // the members it ignores without checking them.
    match std::str::from_utf8(body) {
        Ok(text) => {
            let mut de = serde_json::Deserializer::from_str(text);
            ObjSeed(obj).deserialize(&mut de).is_ok() && de.end().is_ok()
        }
        Err(_) => {
            let mut de = serde_json::Deserializer::from_slice(body);
            ObjSeed(obj).deserialize(&mut de).is_ok() && de.end().is_ok()
        }
    }
}

impl Obj<'_> {
    /// Builds the [`ApiError`] for `status`, falling back to `excerpt` for the message.
    pub(super) fn take_api_error(
        &mut self,
        status: StatusCode,
        hint: Hint,
        body: &[u8],
        credentials: &Credentials,
    ) -> ApiError {
        let top = self;
        let mut fields = std::mem::take(&mut top.others);
        let (mut message, mut fix) = (top.message.take(), top.fix.take());
        let mut details = top.details.take();
        let mut numeric = None;
        let (shape, code) = match top.error.take() {
            Some(Member::Obj(inner)) => {
                // MCP `{"error": {code, message, fix, details}}`, or a JSON-RPC envelope.
                let mut inner = *inner;
                let (code, n) = code_of(inner.code.take(), status, credentials);
                numeric = n;
                (message, fix) = (inner.message.take(), inner.fix.take());
                details = inner.details.take().or(inner.data.take());
                fields.append(&mut inner.others);
                match top.jsonrpc || numeric.is_some() {
                    true => (BodyShape::JsonRpc, code),
                    false => (BodyShape::Mcp, code),
                }
            }
            // The structured 409: {"error": "agent_connected", "message", "agent_id"}.
            Some(Member::Str(text)) => (
                BodyShape::Structured,
                parse_code(&text, status, credentials),
            ),
            other => {
                if let Some(Member::Other(v)) = other {
                    fields.push(("error".into(), v));
                }
                if top.code.is_some() {
                    let (code, n) = code_of(top.code.take(), status, credentials);
                    numeric = n;
                    (BodyShape::Envelope, code)
                } else if let Some(detail) = top.detail.take() {
                    match detail {
                        Member::Str(s) => message = Some(Member::Str(s)),
                        // FastAPI-style validation errors: a list of {loc, msg, type}.
                        other => {
                            let other = other.into_value();
                            let first = other
                                .as_array()
                                .and_then(|a| a.first())
                                .and_then(|e| e.get("msg"))
                                .and_then(Value::as_str)
                                .map(|s| Member::Str(Cow::Owned(s.to_owned())));
                            message = message.or(first);
                            details = details.or(Some(other));
                        }
                    }
                    (BodyShape::Detail, ErrorCode::from_status(status))
                } else {
                    (BodyShape::Unrecognized, ErrorCode::from_status(status))
                }
            }
        };
        if top.detail.is_some() && shape != BodyShape::Detail {
            let detail = top
                .detail
                .take()
                .map(Member::into_value)
                .unwrap_or_default();
            fields.push(("detail".into(), detail));
        }

        let message = match message.take() {
            Some(Member::Str(s)) => safe_string(s, MAX_TEXT_CHARS, credentials),
            Some(Member::Other(Value::Null)) | None if shape == BodyShape::Unrecognized => {
                super::excerpt(body, credentials)
            }
            Some(Member::Other(Value::Null)) | None => String::new(),
            Some(other) => super::excerpt(other.into_value().to_string().as_bytes(), credentials),
        };
        let message = if message.is_empty() {
            super::default_message(status, &code)
        } else {
            message
        };
        let fix = match fix.take() {
            Some(Member::Str(s)) => Some(safe_string(s, MAX_TEXT_CHARS, credentials).into()),
            Some(Member::Other(Value::Null)) | None => None,
            Some(other) => Some(
                super::excerpt(other.into_value().to_string().as_bytes(), credentials)
                    .into_boxed_str(),
            ),
        };
        if let Some(d) = details.as_mut() {
            redact_value(d, credentials);
        }
        for (k, v) in fields.iter_mut() {
            if let Cow::Owned(name) = credentials.scrub(k) {
                *k = name.into();
            }
            redact_member(k, v, credentials);
        }
        ApiError::assemble(Assembly {
            message,
            fix,
            details,
            fields,
            hint,
            numeric_code: numeric,
            ..Assembly::new(status, code, shape)
        })
    }
}

/// A `code` member: a string, or a number (JSON-RPC `-32602`; anything else numeric keeps
/// its number and takes its code from the status).
fn code_of(
    code: Option<Member<'_>>,
    status: StatusCode,
    credentials: &Credentials,
) -> (ErrorCode, Option<i64>) {
    match code {
        Some(Member::Str(s)) => (parse_code(&s, status, credentials), None),
        Some(Member::Other(Value::Number(n))) => match n.as_i64() {
            Some(n) if n < 0 => (ErrorCode::from_jsonrpc(n), Some(n)),
            Some(n) => (ErrorCode::from_status(status), Some(n)),
            None => (ErrorCode::from_status(status), None),
        },
        _ => (ErrorCode::from_status(status), None),
    }
}

/// The longest code kept, in chars: real codes are short identifiers.
const MAX_CODE_CHARS: usize = 128;

/// A code string, kept verbatim unless it carries a credential, control characters or is
/// absurdly long (then it is made safe like a message: a code is shown by `Display`). A blank
/// code is no code: the status decides.
fn parse_code(s: &str, status: StatusCode, credentials: &Credentials) -> ErrorCode {
    // A code of the table is a fixed identifier, with nothing to clean or redact (unless the
    // request's own credential is that very text).
    if let Some(code) = ErrorCode::known(s)
        && matches!(credentials.scrub(s), Cow::Borrowed(_))
    {
        return code;
    }
    if s.trim().is_empty() {
        return ErrorCode::from_status(status);
    }
    ErrorCode::parse(&safe_text(s, MAX_CODE_CHARS, credentials))
}
