//! The CBOR (RFC 8949) subset of the Smithy RPC v2 CBOR protocol, converted to and
//! from the JSON values the CloudWatch handlers take and give.
//!
//! Decoding: integers, floats (half, single, double), text, byte strings (as
//! base64 text), arrays and maps with text keys (definite or indefinite length),
//! `true`/`false`/`null`/undefined, and tag 1 (epoch seconds: its number). Every
//! length is checked against the bytes left before anything is allocated, and
//! nesting is bounded by [`MAX_DEPTH`], so a hostile body costs at most its size.
//! Encoding: definite lengths; integers as integers, other numbers as doubles; a
//! number under a key of [`TIMESTAMP_KEYS`] (directly or in its array) as tag 1.

use serde_json::{Map, Number, Value};

/// Deepest nesting of arrays and maps accepted.
pub const MAX_DEPTH: usize = 32;

/// Output members that are timestamps (encoded with tag 1).
pub const TIMESTAMP_KEYS: &[&str] = &["Timestamps", "Timestamp"];

/// The decoded body, or why it is not CBOR this endpoint reads.
pub fn decode(bytes: &[u8]) -> Result<Value, String> {
    if bytes.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let mut d = Decoder { b: bytes, at: 0 };
    let v = d.item(0)?;
    if d.at != bytes.len() {
        return Err(format!(
            "{} bytes follow the body's CBOR item",
            bytes.len() - d.at
        ));
    }
    Ok(v)
}

/// `v` as CBOR.
pub fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    put(&mut out, v, false);
    out
}

struct Decoder<'a> {
    b: &'a [u8],
    at: usize,
}

/// An item, or the "break" that ends an indefinite-length one.
enum Item {
    Value(Value),
    Break,
}

impl Decoder<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self
            .b
            .get(self.at)
            .ok_or_else(|| "the CBOR body ends inside an item".to_string())?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> Result<&[u8], String> {
        let left = (self.b.len() - self.at) as u64;
        if n > left {
            return Err(format!(
                "a CBOR item claims {n} bytes where {left} are left"
            ));
        }
        let s = &self.b[self.at..self.at + n as usize];
        self.at += n as usize;
        Ok(s)
    }

    /// The argument of an initial byte's additional information; `None` for
    /// indefinite length (31).
    fn arg(&mut self, info: u8) -> Result<Option<u64>, String> {
        let n = match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.byte()?),
            25 => u64::from(u16::from_be_bytes(fixed(self.take(2)?))),
            26 => u64::from(u32::from_be_bytes(fixed(self.take(4)?))),
            27 => u64::from_be_bytes(fixed(self.take(8)?)),
            31 => return Ok(None),
            _ => return Err(format!("reserved CBOR additional information {info}")),
        };
        Ok(Some(n))
    }

    fn item(&mut self, depth: usize) -> Result<Value, String> {
        match self.any(depth)? {
            Item::Value(v) => Ok(v),
            Item::Break => Err("a CBOR break outside an indefinite-length item".into()),
        }
    }

    fn any(&mut self, depth: usize) -> Result<Item, String> {
        if depth > MAX_DEPTH {
            return Err(format!("the CBOR body nests deeper than {MAX_DEPTH}"));
        }
        let first = self.byte()?;
        let (major, info) = (first >> 5, first & 0x1f);
        let v = match major {
            0 => Value::from(self.definite(info)?),
            1 => {
                let n = self.definite(info)?;
                match i64::try_from(n) {
                    Ok(n) => Value::from(-1 - n),
                    Err(_) => return Err("a CBOR negative integer out of range".into()),
                }
            }
            2 | 3 => {
                let bytes = self.string(major, info)?;
                if major == 2 {
                    Value::String(crate::b64(&bytes))
                } else {
                    Value::String(
                        String::from_utf8(bytes)
                            .map_err(|_| "a CBOR text string is not UTF-8".to_string())?,
                    )
                }
            }
            4 => {
                let mut items = Vec::new();
                match self.arg(info)? {
                    Some(n) => {
                        // Each item takes at least one byte.
                        self.room(n)?;
                        for _ in 0..n {
                            items.push(self.item(depth + 1)?);
                        }
                    }
                    None => {
                        while let Item::Value(v) = self.any(depth + 1)? {
                            items.push(v);
                        }
                    }
                }
                Value::Array(items)
            }
            5 => {
                let mut map = Map::new();
                let mut entry = |d: &mut Self, key: Value| -> Result<(), String> {
                    let Value::String(k) = key else {
                        return Err("a CBOR map key is not text".into());
                    };
                    let v = d.item(depth + 1)?;
                    if map.insert(k.clone(), v).is_some() {
                        return Err(format!("the member {k} is given twice"));
                    }
                    Ok(())
                };
                match self.arg(info)? {
                    Some(n) => {
                        self.room(n.saturating_mul(2))?;
                        for _ in 0..n {
                            let k = self.item(depth + 1)?;
                            entry(self, k)?;
                        }
                    }
                    None => {
                        while let Item::Value(k) = self.any(depth + 1)? {
                            entry(self, k)?;
                        }
                    }
                }
                Value::Object(map)
            }
            6 => {
                let tag = self.definite(info)?;
                let v = self.item(depth + 1)?;
                if tag == 1 && !v.is_number() {
                    return Err("CBOR tag 1 (a timestamp) must tag a number".into());
                }
                v
            }
            _ => match info {
                20 => Value::Bool(false),
                21 => Value::Bool(true),
                22 | 23 => Value::Null,
                25 => float(half(u16::from_be_bytes(fixed(self.take(2)?))))?,
                26 => float(f64::from(f32::from_be_bytes(fixed(self.take(4)?))))?,
                27 => float(f64::from_be_bytes(fixed(self.take(8)?)))?,
                31 => return Ok(Item::Break),
                _ => return Err(format!("unsupported CBOR simple value {info}")),
            },
        };
        Ok(Item::Value(v))
    }

    fn definite(&mut self, info: u8) -> Result<u64, String> {
        self.arg(info)?
            .ok_or_else(|| "an indefinite length where a number is required".to_string())
    }

    fn room(&self, n: u64) -> Result<(), String> {
        if n > (self.b.len() - self.at) as u64 {
            return Err(format!(
                "a CBOR item claims {n} entries where {} bytes are left",
                self.b.len() - self.at
            ));
        }
        Ok(())
    }

    fn string(&mut self, major: u8, info: u8) -> Result<Vec<u8>, String> {
        match self.arg(info)? {
            Some(n) => Ok(self.take(n)?.to_vec()),
            None => {
                let mut out = Vec::new();
                loop {
                    let b = self.byte()?;
                    if b == 0xff {
                        return Ok(out);
                    }
                    if b >> 5 != major {
                        return Err("a CBOR string chunk of another type".into());
                    }
                    let n = self
                        .arg(b & 0x1f)?
                        .ok_or_else(|| "a nested indefinite CBOR string".to_string())?;
                    out.extend_from_slice(self.take(n)?);
                }
            }
        }
    }
}

fn fixed<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    a
}

fn half(h: u16) -> f64 {
    let exp = (h >> 10) & 0x1f;
    let mant = f64::from(h & 0x3ff);
    let v = match exp {
        0 => mant * 2f64.powi(-24),
        31 => {
            if mant == 0.0 {
                f64::INFINITY
            } else {
                f64::NAN
            }
        }
        e => (mant + 1024.0) * 2f64.powi(i32::from(e) - 25),
    };
    if h & 0x8000 != 0 { -v } else { v }
}

/// A float as JSON: non-finite numbers have no JSON form, so they are refused
/// (CloudWatch refuses them too).
fn float(f: f64) -> Result<Value, String> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| format!("the number {f} is not a finite value"))
}

fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn put(out: &mut Vec<u8>, v: &Value, timestamp: bool) {
    match v {
        Value::Null => out.push(0xf6),
        Value::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Value::Number(n) => {
            if timestamp {
                head(out, 6, 1);
            }
            if let Some(u) = n.as_u64() {
                head(out, 0, u);
            } else if let Some(i) = n.as_i64() {
                head(out, 1, (-1 - i) as u64);
            } else {
                out.push(0xfb);
                out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_be_bytes());
            }
        }
        Value::String(s) => {
            head(out, 3, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(a) => {
            head(out, 4, a.len() as u64);
            for x in a {
                put(out, x, timestamp);
            }
        }
        Value::Object(m) => {
            head(out, 5, m.len() as u64);
            for (k, x) in m {
                head(out, 3, k.len() as u64);
                out.extend_from_slice(k.as_bytes());
                put(out, x, TIMESTAMP_KEYS.contains(&k.as_str()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_and_tags_timestamps() {
        let v = json!({"A": [1, -2, 1.5, "x", true, null], "Timestamps": [1700000000], "M": {}});
        let b = encode(&v);
        assert_eq!(decode(&b).unwrap(), v);
        // Tag 1 precedes the timestamp (0xc1), not the other numbers.
        let at = b.windows(2).position(|w| w == [0xc1, 0x1a]).unwrap();
        assert!(at > 0);
        assert_eq!(b.iter().filter(|&&x| x == 0xc1).count(), 1);
    }

    #[test]
    fn reads_indefinite_lengths_halfs_and_refuses_lies() {
        // {_ "a": [_ 1.0(half), 2], "b": (_ "h" "i")}
        let b = [
            0xbf, 0x61, b'a', 0x9f, 0xf9, 0x3c, 0x00, 0x02, 0xff, 0x61, b'b', 0x7f, 0x61, b'h',
            0x61, b'i', 0xff, 0xff,
        ];
        assert_eq!(decode(&b).unwrap(), json!({"a": [1.0, 2], "b": "hi"}));
        // An array claiming 2^32 items in 5 bytes.
        assert!(decode(&[0x9a, 0xff, 0xff, 0xff, 0xff]).is_err());
        // A text string longer than the body.
        assert!(decode(&[0x78, 0x10, b'a']).is_err());
        // NaN is refused; trailing bytes are refused.
        assert!(decode(&[0xf9, 0x7e, 0x00]).is_err());
        assert!(decode(&[0x01, 0x01]).is_err());
        // Nesting is bounded.
        assert!(decode(&[0x81; 100]).is_err());
    }
}
