//! A message codec driven by the `.api.json` files at run time: messages as JSON objects, encoded
//! and decoded field by field from the definitions. Written independently of the backend's
//! generated code, so the simulator cannot share its mistakes. Never panics on input.

use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, Clone)]
pub struct Field {
    pub ty: String,
    pub name: String,
    /// `Some(n)`: fixed array/string of n; `Some(0)`: variable (string, or counted by `count`).
    pub len: Option<usize>,
    pub count: Option<String>,
}

#[derive(Debug, Clone)]
pub struct MsgDef {
    pub name: String,
    /// 8 lowercase hex digits.
    pub crc: String,
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone)]
enum Ty {
    Int(&'static str),
    Bytes(usize),
    Struct(String),
    Union(String),
    Str,
}

/// Every definition of a set of `.api.json` files.
#[derive(Debug, Default)]
pub struct Api {
    pub messages: HashMap<String, MsgDef>,
    /// Module file stem → its messages in file order (message ids are given per module).
    pub modules: Vec<(String, Vec<String>)>,
    types: HashMap<String, Vec<Field>>,
    unions: HashMap<String, Vec<Field>>,
    enums: HashMap<String, &'static str>,
    aliases: HashMap<String, (String, Option<usize>)>,
}

fn int_name(s: &str) -> Option<&'static str> {
    Some(match s {
        "u8" => "u8",
        "i8" => "i8",
        "u16" => "u16",
        "i16" => "i16",
        "u32" => "u32",
        "i32" => "i32",
        "u64" => "u64",
        "i64" => "i64",
        "f64" => "f64",
        "bool" => "bool",
        _ => return None,
    })
}

fn int_size(s: &str) -> usize {
    match s {
        "u8" | "i8" | "bool" => 1,
        "u16" | "i16" => 2,
        "u32" | "i32" => 4,
        _ => 8,
    }
}

fn parse_fields(defn: &[Value]) -> Vec<Field> {
    defn.iter()
        .filter_map(|f| f.as_array())
        .filter_map(|f| {
            let ty = f.first()?.as_str()?.to_owned();
            let name = f.get(1)?.as_str()?.to_owned();
            let len = f.get(2).and_then(|v| v.as_u64()).map(|n| n as usize);
            let count = f.get(3).and_then(|v| v.as_str()).map(str::to_owned);
            Some(Field { ty, name, len, count })
        })
        .collect()
}

fn strip(t: &str) -> &str {
    t.strip_prefix("vl_api_").and_then(|t| t.strip_suffix("_t")).unwrap_or(t)
}

impl Api {
    /// Load every `*/*.api.json` under `dir` (the `core/` + `plugins/` layout of an install).
    pub fn load(dir: &Path) -> Result<Api, String> {
        let mut files = Vec::new();
        for sub in ["core", "plugins"] {
            let d = dir.join(sub);
            let rd = std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
            for e in rd.flatten() {
                let p = e.path();
                if p.to_string_lossy().ends_with(".api.json") {
                    files.push(p);
                }
            }
        }
        files.sort();
        let mut api = Api::default();
        for p in files {
            let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            let j: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
            let stem = p.file_name().and_then(|n| n.to_str()).unwrap_or("").trim_end_matches(".api.json").to_owned();
            let mut names = Vec::new();
            for m in j["messages"].as_array().into_iter().flatten() {
                let Some(arr) = m.as_array() else { continue };
                let Some(name) = arr.first().and_then(|v| v.as_str()) else { continue };
                let crc = arr
                    .last()
                    .and_then(|v| v.get("crc"))
                    .and_then(|v| v.as_str())
                    .and_then(|c| c.strip_prefix("0x"))
                    .unwrap_or("00000000")
                    .to_owned();
                names.push(name.to_owned());
                api.messages
                    .insert(name.to_owned(), MsgDef { name: name.to_owned(), crc, fields: parse_fields(&arr[1..]) });
            }
            api.modules.push((stem, names));
            for t in j["types"].as_array().into_iter().flatten() {
                if let Some(arr) = t.as_array() {
                    if let Some(n) = arr.first().and_then(|v| v.as_str()) {
                        api.types.insert(n.to_owned(), parse_fields(&arr[1..]));
                    }
                }
            }
            for u in j["unions"].as_array().into_iter().flatten() {
                if let Some(arr) = u.as_array() {
                    if let Some(n) = arr.first().and_then(|v| v.as_str()) {
                        api.unions.insert(n.to_owned(), parse_fields(&arr[1..]));
                    }
                }
            }
            for key in ["enums", "enumflags"] {
                for e in j[key].as_array().into_iter().flatten() {
                    let Some(arr) = e.as_array() else { continue };
                    let (Some(n), Some(t)) = (
                        arr.first().and_then(|v| v.as_str()),
                        arr.last().and_then(|v| v.get("enumtype")).and_then(|v| v.as_str()).and_then(int_name),
                    ) else {
                        continue;
                    };
                    api.enums.insert(n.to_owned(), t);
                }
            }
            if let Some(aliases) = j["aliases"].as_object() {
                for (n, a) in aliases {
                    let ty = a["type"].as_str().unwrap_or("u8").to_owned();
                    api.aliases.insert(n.clone(), (ty, a["length"].as_u64().map(|n| n as usize)));
                }
            }
        }
        Ok(api)
    }

    fn resolve(&self, t: &str) -> Result<Ty, String> {
        if let Some(i) = int_name(t) {
            return Ok(Ty::Int(i));
        }
        if t == "string" {
            return Ok(Ty::Str);
        }
        let n = strip(t);
        if let Some((ty, len)) = self.aliases.get(n) {
            return match len {
                Some(l) => Ok(Ty::Bytes(*l)),
                None => self.resolve(ty),
            };
        }
        if let Some(i) = self.enums.get(n) {
            return Ok(Ty::Int(i));
        }
        if self.types.contains_key(n) {
            return Ok(Ty::Struct(n.to_owned()));
        }
        if self.unions.contains_key(n) {
            return Ok(Ty::Union(n.to_owned()));
        }
        Err(format!("unknown type {t}"))
    }

    fn size(&self, ty: &Ty) -> Result<usize, String> {
        Ok(match ty {
            Ty::Int(i) => int_size(i),
            Ty::Bytes(n) => *n,
            Ty::Str => 0,
            Ty::Struct(n) => {
                let mut s = 0;
                for f in self.types.get(n).into_iter().flatten() {
                    s += self.size(&self.resolve(&f.ty)?)? * f.len.unwrap_or(1).max(1);
                }
                s
            }
            Ty::Union(n) => {
                let mut s = 0;
                for f in self.unions.get(n).into_iter().flatten() {
                    s = s.max(self.size(&self.resolve(&f.ty)?)? * f.len.unwrap_or(1).max(1));
                }
                s
            }
        })
    }

    /// Decode a whole message (its `_vl_msg_id` included) as a JSON object.
    pub fn decode(&self, name: &str, data: &[u8]) -> Result<Map<String, Value>, String> {
        let def = self.messages.get(name).ok_or_else(|| format!("no message {name}"))?;
        let mut r = Cursor { data, pos: 0 };
        self.decode_fields(&def.fields, &mut r)
    }

    fn decode_fields(&self, fields: &[Field], r: &mut Cursor<'_>) -> Result<Map<String, Value>, String> {
        let mut out = Map::new();
        for f in fields {
            let ty = self.resolve(&f.ty)?;
            let v = match (&ty, f.len, &f.count) {
                (Ty::Str, Some(0), _) | (Ty::Str, None, _) => {
                    let n = r.int("u32")?.as_u64().unwrap_or(0) as usize;
                    Value::String(r.text(n)?)
                }
                (Ty::Str, Some(n), _) => Value::String(r.text(n)?),
                (_, _, Some(count)) => {
                    let n = out.get(count).and_then(|v| v.as_u64()).unwrap_or(0);
                    let mut items = Vec::new();
                    for _ in 0..n {
                        items.push(self.decode_one(&ty, r)?);
                    }
                    Value::Array(items)
                }
                (Ty::Int("u8"), Some(n), None) if n > 0 => Value::Array(r.take(n)?.iter().map(|b| json!(b)).collect()),
                (_, Some(n), None) if n > 0 => {
                    let mut items = Vec::new();
                    for _ in 0..n {
                        items.push(self.decode_one(&ty, r)?);
                    }
                    Value::Array(items)
                }
                _ => self.decode_one(&ty, r)?,
            };
            out.insert(f.name.clone(), v);
        }
        Ok(out)
    }

    fn decode_one(&self, ty: &Ty, r: &mut Cursor<'_>) -> Result<Value, String> {
        match ty {
            Ty::Int(i) => r.int(i),
            Ty::Bytes(n) => Ok(Value::Array(r.take(*n)?.iter().map(|b| json!(b)).collect())),
            Ty::Union(_) => {
                let n = self.size(ty)?;
                Ok(Value::Array(r.take(n)?.iter().map(|b| json!(b)).collect()))
            }
            Ty::Struct(n) => {
                let fields = self.types.get(n).cloned().unwrap_or_default();
                Ok(Value::Object(self.decode_fields(&fields, r)?))
            }
            Ty::Str => Err("bare string".into()),
        }
    }

    /// Encode a message from a JSON object; absent fields are zero (as VPP's memset).
    pub fn encode(&self, name: &str, id: u16, v: &Map<String, Value>) -> Result<Vec<u8>, String> {
        let def = self.messages.get(name).ok_or_else(|| format!("no message {name}"))?;
        let mut v = v.clone();
        v.insert("_vl_msg_id".into(), json!(id));
        let mut out = Vec::new();
        self.encode_fields(&def.fields, &v, &mut out)?;
        Ok(out)
    }

    fn encode_fields(&self, fields: &[Field], v: &Map<String, Value>, out: &mut Vec<u8>) -> Result<(), String> {
        // Count fields follow the arrays they count.
        let counts: HashMap<&str, usize> = fields
            .iter()
            .filter_map(|f| {
                let c = f.count.as_deref()?;
                Some((c, v.get(&f.name).and_then(|a| a.as_array()).map(Vec::len).unwrap_or(0)))
            })
            .collect();
        for f in fields {
            let ty = self.resolve(&f.ty)?;
            let val = v.get(&f.name).cloned().unwrap_or(Value::Null);
            if let Some(n) = counts.get(f.name.as_str()) {
                put_int(
                    out,
                    match &ty {
                        Ty::Int(i) => i,
                        _ => "u32",
                    },
                    &json!(n),
                )?;
                continue;
            }
            match (&ty, f.len, &f.count) {
                (Ty::Str, Some(0), _) | (Ty::Str, None, _) => {
                    let s = val.as_str().unwrap_or("");
                    put_int(out, "u32", &json!(s.len()))?;
                    out.extend_from_slice(s.as_bytes());
                }
                (Ty::Str, Some(n), _) => {
                    let s = val.as_str().unwrap_or("").as_bytes();
                    let take = s.len().min(n.saturating_sub(1));
                    out.extend_from_slice(&s[..take]);
                    out.resize(out.len() + (n - take), 0);
                }
                (_, _, Some(_)) => {
                    for item in val.as_array().into_iter().flatten() {
                        self.encode_one(&ty, item, out)?;
                    }
                }
                (_, Some(n), None) if n > 0 => {
                    let items = val.as_array().cloned().unwrap_or_default();
                    for i in 0..n {
                        self.encode_one(&ty, items.get(i).unwrap_or(&Value::Null), out)?;
                    }
                }
                _ => self.encode_one(&ty, &val, out)?,
            }
        }
        Ok(())
    }

    fn encode_one(&self, ty: &Ty, v: &Value, out: &mut Vec<u8>) -> Result<(), String> {
        match ty {
            Ty::Int(i) => put_int(out, i, v),
            Ty::Bytes(_) | Ty::Union(_) => {
                let n = self.size(ty)?;
                let b: Vec<u8> = v.as_array().into_iter().flatten().map(|x| x.as_u64().unwrap_or(0) as u8).collect();
                for i in 0..n {
                    out.push(b.get(i).copied().unwrap_or(0));
                }
                Ok(())
            }
            Ty::Struct(n) => {
                let fields = self.types.get(n).cloned().unwrap_or_default();
                let empty = Map::new();
                self.encode_fields(&fields, v.as_object().unwrap_or(&empty), out)
            }
            Ty::Str => Err("bare string".into()),
        }
    }
}

fn put_int(out: &mut Vec<u8>, i: &str, v: &Value) -> Result<(), String> {
    let n = match v {
        Value::Bool(b) => *b as i64 as i128,
        Value::Number(n) => n.as_i64().map(i128::from).or(n.as_u64().map(i128::from)).unwrap_or(0),
        _ => 0,
    };
    match i {
        "u8" | "bool" => out.push(n as u8),
        "i8" => out.push(n as i8 as u8),
        "u16" | "i16" => out.extend_from_slice(&(n as u16).to_be_bytes()),
        "u32" | "i32" => out.extend_from_slice(&(n as u32).to_be_bytes()),
        "f64" => out.extend_from_slice(&(v.as_f64().unwrap_or(0.0)).to_bits().to_be_bytes()),
        _ => out.extend_from_slice(&(n as u64).to_be_bytes()),
    }
    Ok(())
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).ok_or("overflow")?;
        let s = self.data.get(self.pos..end).ok_or_else(|| format!("short message: need {n} at {}", self.pos))?;
        self.pos = end;
        Ok(s)
    }

    fn text(&mut self, n: usize) -> Result<String, String> {
        let raw = self.take(n)?;
        let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
        Ok(String::from_utf8_lossy(&raw[..end]).into_owned())
    }

    fn int(&mut self, i: &str) -> Result<Value, String> {
        let b = self.take(int_size(i))?;
        let mut be = [0u8; 8];
        be[8 - b.len()..].copy_from_slice(b);
        let u = u64::from_be_bytes(be);
        Ok(match i {
            "bool" => json!(u != 0),
            "i8" => json!(u as u8 as i8),
            "i16" => json!(u as u16 as i16),
            "i32" => json!(u as u32 as i32),
            "i64" => json!(u as i64),
            "f64" => json!(f64::from_bits(u)),
            _ => json!(u),
        })
    }
}
