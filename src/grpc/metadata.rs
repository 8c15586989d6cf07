//! What a gRPC server sent besides its status: `grpc-status-details-bin` and custom metadata,
//! kept bounded and redacted, so that the `tonic::Status` a caller sees through the stack
//! carries them as plain tonic would.

use crate::text::Credentials;
use crate::text::redact::{REDACTED, is_secret_key, redact};
use base64::{
    Engine as _, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::borrow::Cow;

/// The most metadata entries kept from one gRPC error.
pub(crate) const MAX_ENTRIES: usize = 32;
/// The most bytes (names and values as sent, the details included) kept from one gRPC error.
pub(crate) const MAX_BYTES: usize = 16 * 1024;

const GRPC_STATUS_DETAILS_BIN: HeaderName = HeaderName::from_static("grpc-status-details-bin");

/// The details and metadata of one gRPC error. Boxed in [`ApiError`](crate::ApiError), and
/// only built for a gRPC status.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GrpcExtra {
    /// `grpc-status-details-bin`, base64-decoded: a serialized `google.rpc.Status`.
    pub(crate) details: Option<Bytes>,
    /// Every other entry but the reserved ones: text values redacted, `-bin` values as sent
    /// (base64).
    pub(crate) metadata: HeaderMap,
}

/// Headers that are gRPC's or HTTP's own, not the server's metadata (grpc-go's reserved
/// headers, plus HTTP framing).
fn reserved(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-type"
            | "content-length"
            | "transfer-encoding"
            | "connection"
            | "te"
            | "user-agent"
            | "grpc-status"
            | "grpc-message"
            | "grpc-status-details-bin"
            | "grpc-encoding"
            | "grpc-accept-encoding"
            | "grpc-message-type"
            | "grpc-timeout"
    )
}

impl GrpcExtra {
    /// What `headers` (the headers of a trailers-only response, or the trailers) hold besides
    /// the status, or `None` when that is nothing.
    ///
    /// Bounded: at most [`MAX_ENTRIES`] entries and [`MAX_BYTES`] bytes; an entry that does not
    /// fit is left out whole (a cut value would be a wrong one). Details that are not valid
    /// base64 are left out. A text value is redacted like every text the crate keeps; the
    /// value of an entry whose name says it is a credential (`authorization`, `x-api-key`,
    /// `set-cookie`, ...) is replaced, or for a `-bin` entry left out. A credential the request
    /// carried is scrubbed from text values; binary values and details that hold one are left
    /// out (bytes cannot be cut without breaking what they encode).
    pub(crate) fn capture(
        headers: &HeaderMap,
        credentials: &Credentials,
    ) -> Option<Box<GrpcExtra>> {
        let mut budget = MAX_BYTES;
        let mut details = None;
        if let Some(raw) = headers.get(GRPC_STATUS_DETAILS_BIN) {
            let size = GRPC_STATUS_DETAILS_BIN.as_str().len() + raw.len();
            if size <= budget
                && let Some(bytes) = decode_base64(raw.as_bytes())
                && !credentials.occurs_in(&bytes)
            {
                budget -= size;
                details = Some(Bytes::from(bytes));
            }
        }
        let mut metadata = HeaderMap::new();
        for (name, value) in headers {
            if reserved(name) {
                continue;
            }
            if metadata.len() >= MAX_ENTRIES {
                break;
            }
            let size = name.as_str().len() + value.len();
            if size > budget {
                continue;
            }
            let Some(value) = kept_value(name, value, credentials) else {
                continue;
            };
            budget -= size;
            metadata.append(name.clone(), value);
        }
        if details.is_none() && metadata.is_empty() {
            return None;
        }
        Some(Box::new(GrpcExtra { details, metadata }))
    }
}

/// The value kept for one entry: binary as sent, text redacted, a credential's replaced.
fn kept_value(
    name: &HeaderName,
    value: &HeaderValue,
    credentials: &Credentials,
) -> Option<HeaderValue> {
    let binary = name.as_str().ends_with("-bin");
    // `authorization`, `x-api-key`, `cookie`, `set-cookie` and their kin.
    if is_secret_key(name.as_str()) {
        return (!binary).then(|| HeaderValue::from_static(REDACTED));
    }
    if binary {
        let holds_credential = credentials.occurs_in(value.as_bytes())
            || decode_base64(value.as_bytes()).is_some_and(|b| credentials.occurs_in(&b));
        return (!holds_credential).then(|| value.clone());
    }
    let text = String::from_utf8_lossy(value.as_bytes());
    let redacted = redact(&text);
    match credentials.scrub(&redacted) {
        Cow::Borrowed(_) if matches!(redacted, Cow::Borrowed(_)) => Some(value.clone()),
        scrubbed => HeaderValue::from_str(&scrubbed).ok(),
    }
}

/// Standard base64 as gRPC's own implementations read it: bits past the last whole byte are
/// ignored. A padded value must be padded as base64 says (`Zg==`, not `Zg=`).
const PADDED: GeneralPurpose = engine(DecodePaddingMode::RequireCanonical);
/// The same, without padding (gRPC's `-bin` values may be sent either way).
const UNPADDED: GeneralPurpose = engine(DecodePaddingMode::RequireNone);

const fn engine(padding: DecodePaddingMode) -> GeneralPurpose {
    GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(padding)
            .with_decode_allow_trailing_bits(true),
    )
}

/// Decodes standard base64, padded or not, around ASCII whitespace. `None` for anything
/// else. The callers bound the input before decoding it.
pub(crate) fn decode_base64(input: &[u8]) -> Option<Vec<u8>> {
    let input = input.trim_ascii();
    let engine = if input.ends_with(b"=") {
        &PADDED
    } else {
        &UNPADDED
    };
    engine.decode(input).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_padded_unpadded_and_invalid() {
        let table: &[(&[u8], Option<&[u8]>)] = &[
            (b"", Some(b"")),
            (b"Zg", Some(b"f")),
            (b"Zg==", Some(b"f")),
            (b"Zm8", Some(b"fo")),
            (b"Zm8=", Some(b"fo")),
            (b"Zm9v", Some(b"foo")),
            (b"Zm9vYmFy", Some(b"foobar")),
            (b"+/+/", Some(&[0xfb, 0xff, 0xbf])),
            (b"Z", None),
            (b"Zg=", None),
            (b"Zm9v=", None),
            (b"Zm9v!", None),
            (b"Zm-_", None),
            (b"Zm9 v", None),
            (b"===", None),
            (b" Zm9v\t", Some(b"foo")),
            // Bits past the last whole byte are ignored, as by gRPC's implementations.
            (b"Zh", Some(b"f")),
            (b"Zh==", Some(b"f")),
        ];
        for (input, want) in table {
            assert_eq!(
                decode_base64(input).as_deref(),
                *want,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    fn headers(entries: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in entries {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn keeps_details_and_custom_metadata_but_not_reserved_headers() {
        let h = headers(&[
            ("content-type", "application/grpc"),
            ("grpc-status", "8"),
            ("grpc-message", "slow down"),
            ("grpc-status-details-bin", "CAgSBHF1b3Rh"),
            ("grpc-retry-pushback-ms", "800"),
            ("x-debug-id", "dbg-42"),
            ("trace-bin", "AAEC"),
        ]);
        let extra = GrpcExtra::capture(&h, &Credentials::new()).unwrap();
        assert_eq!(
            extra.details.as_deref(),
            Some(&b"\x08\x08\x12\x04quota"[..])
        );
        let names: Vec<_> = extra.metadata.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["grpc-retry-pushback-ms", "x-debug-id", "trace-bin"]);
        assert_eq!(extra.metadata["trace-bin"], "AAEC");
        assert!(
            GrpcExtra::capture(&headers(&[("grpc-status", "14")]), &Credentials::new()).is_none()
        );
    }

    #[test]
    fn text_is_redacted_and_credentials_replaced() {
        let h = headers(&[
            ("x-echo", "got Bearer convo_SECRET123"),
            ("authorization", "Basic c2VjcmV0"),
            ("x-session-token", "abc"),
            ("auth-token-bin", "AAEC"),
            ("x-fine", "ok"),
        ]);
        let extra = GrpcExtra::capture(&h, &Credentials::new()).unwrap();
        let m = &extra.metadata;
        assert!(!format!("{m:?}").contains("SECRET"), "{m:?}");
        assert!(!format!("{m:?}").contains("c2VjcmV0"), "{m:?}");
        assert_eq!(m["authorization"], REDACTED);
        assert_eq!(m["x-session-token"], REDACTED);
        assert!(!m.contains_key("auth-token-bin"));
        assert_eq!(m["x-fine"], "ok");
    }

    #[test]
    fn bounded_in_entries_and_bytes() {
        let mut h = HeaderMap::new();
        for i in 0..100 {
            h.insert(
                HeaderName::from_bytes(format!("x-m{i}").as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        assert_eq!(
            GrpcExtra::capture(&h, &Credentials::new())
                .unwrap()
                .metadata
                .len(),
            MAX_ENTRIES
        );

        let big = "a".repeat(MAX_BYTES / 3);
        let h = headers(&[
            ("x-a", &big),
            ("x-b", &big),
            ("x-c", &big),
            ("x-d", "small"),
        ]);
        let m = GrpcExtra::capture(&h, &Credentials::new())
            .unwrap()
            .metadata;
        assert!(m.contains_key("x-a") && m.contains_key("x-b") && !m.contains_key("x-c"));
        assert_eq!(m["x-d"], "small", "a small entry still fits");
        let kept: usize = m.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
        assert!(kept <= MAX_BYTES);

        // Details over the bound are left out, not cut.
        let h = headers(&[("grpc-status-details-bin", &"A".repeat(MAX_BYTES + 4))]);
        assert!(GrpcExtra::capture(&h, &Credentials::new()).is_none());
    }

    #[test]
    fn credentials_the_request_carried_never_reach_the_metadata_or_details() {
        let key = "mk_live_S3cr3tApiKey0003";
        let credentials = Credentials::new().secret(key);
        let mut h = headers(&[
            ("grpc-status", "16"),
            ("x-echo", &format!("you sent {key}")),
            ("x-debug-id", "dbg-42"),
        ]);
        let encoded = encode_base64(format!("bin {key}").as_bytes());
        h.insert("x-echo-bin", HeaderValue::from_str(&encoded).unwrap());
        h.insert(
            "grpc-status-details-bin",
            HeaderValue::from_str(&encode_base64(format!("details {key}").as_bytes())).unwrap(),
        );
        let extra = GrpcExtra::capture(&h, &credentials).unwrap();
        assert_eq!(extra.metadata["x-echo"], "you sent [REDACTED]");
        assert_eq!(extra.metadata["x-debug-id"], "dbg-42");
        assert!(extra.metadata.get("x-echo-bin").is_none());
        assert_eq!(extra.details, None);
        assert!(!format!("{extra:?}").contains(key));
    }

    fn encode_base64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }
}
