//! RFC 8785 (JCS) canonical JSON, written directly from a `serde_json::Value`.
//!
//! `serde_json_canonicalizer` is the reference, but it re-buffers every object; this
//! writer produces the same bytes several times faster, which is what sealing and
//! verification spend their CPU on. The rules: no whitespace; object members sorted by
//! the UTF-16 code units of their keys; strings escaped as serde_json escapes them (`"`
//! and `\`, control characters as `\b \t \n \f \r` or lowercase `\u00xx`, everything else
//! literal), which is exactly JCS's escaping; integers up to 2^53 in decimal; every other
//! number in ECMAScript form, delegated to `serde_json_canonicalizer`. A property test checks the
//! output against the reference on arbitrary JSON.

use serde_json::Value;

/// The largest integer a double represents exactly (2^53).
const MAX_EXACT: u64 = 1 << 53;

/// Appends the canonical form of `value` to `out`.
pub fn write(value: &Value, out: &mut Vec<u8>) -> serde_json::Result<()> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => match number.as_i64() {
            // JCS numbers are IEEE doubles: integers are exact (and print as themselves)
            // only up to 2^53; beyond that they take the ECMAScript path like any double.
            Some(i) if i.unsigned_abs() <= MAX_EXACT => {
                out.extend_from_slice(i.to_string().as_bytes());
            }
            _ => out.extend_from_slice(&serde_json_canonicalizer::to_vec(number)?),
        },
        Value::String(text) => serde_json::to_writer(&mut *out, text)?,
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(members) => {
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            if !sorted.iter().all(|(k, _)| k.is_ascii()) {
                sorted.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            } else {
                sorted.sort_by(|(a, _), (b, _)| a.as_bytes().cmp(b.as_bytes()));
            }
            out.push(b'{');
            for (i, (key, item)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key)?;
                out.push(b':');
                write(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// The canonical form of `value`.
pub fn to_vec(value: &Value) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    write(value, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            prop_oneof![
                Just(0.1f64),
                Just(1e21),
                Just(1e-7),
                Just(150.0),
                Just(-0.0),
                Just(5e-324)
            ]
            .prop_map(Value::from),
            ".*".prop_map(Value::String),
            "[\\u{0}-\\u{7f}]*".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(".{0,6}", inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn matches_the_reference_canonicaliser(value in json()) {
            let reference = serde_json_canonicalizer::to_vec(&value).expect("reference");
            let ours = to_vec(&value).expect("ours");
            prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&reference));
        }
    }

    #[test]
    fn keys_sort_by_utf16_code_units_not_bytes() {
        // U+FF61 sorts after U+1F600 in UTF-8 bytes but before it in UTF-16 units.
        let value = serde_json::json!({"\u{ff61}": 1, "😀": 2, "a": 3});
        let reference = serde_json_canonicalizer::to_vec(&value).expect("reference");
        assert_eq!(to_vec(&value).expect("ours"), reference);
    }
}
