//! The FreeRADIUS dictionary file syntax: ATTRIBUTE, VALUE, VENDOR,
//! BEGIN-VENDOR/END-VENDOR, BEGIN-TLV/END-TLV and $INCLUDE.
//!
//! Written by hand: no crate parses this format. It must stay a loader —
//! every check here is about the file, never about packets.

use std::path::{Path, PathBuf};

use super::{AttributeDef, DataType, Dictionary, DictionaryError, Flags, VendorDef};

/// Deeper nesting than this is taken for an include loop.
const MAX_INCLUDE_DEPTH: usize = 16;

/// Reads one dictionary file's text (the shell's `std::fs::read_to_string`;
/// a map of texts in tests and fuzzers).
pub type ReadFile<'a> = &'a dyn Fn(&Path) -> std::io::Result<String>;

/// Loads `path` and its includes, each read with `read`, into a new
/// dictionary.
pub fn load(path: &Path, read: ReadFile<'_>) -> Result<Dictionary, DictionaryError> {
    let mut loader = Loader {
        dict: Dictionary::default(),
        pending_values: Vec::new(),
        read,
    };
    loader.file(path, 0)?;
    loader.resolve_values()?;
    Ok(loader.dict)
}

struct PendingValue {
    file: PathBuf,
    line: usize,
    attribute: String,
    name: String,
    number: u64,
}

struct Loader<'r> {
    dict: Dictionary,
    /// VALUE lines may come before their ATTRIBUTE (FreeRADIUS allows it),
    /// so they are resolved once every file is read.
    pending_values: Vec<PendingValue>,
    read: ReadFile<'r>,
}

/// Per-file state: BEGIN-VENDOR and BEGIN-TLV blocks do not cross files.
struct Block {
    vendor: Option<u32>,
    tlv: Vec<usize>,
}

fn parse_number(word: &str) -> Option<u64> {
    if let Some(hex) = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else {
        word.parse().ok()
    }
}

fn parse_oid(word: &str) -> Option<Vec<u32>> {
    word.split('.')
        .map(|part| parse_number(part).and_then(|n| u32::try_from(n).ok()))
        .collect()
}

impl Loader<'_> {
    fn file(&mut self, path: &Path, depth: usize) -> Result<(), DictionaryError> {
        if depth > MAX_INCLUDE_DEPTH {
            return Err(DictionaryError::syntax(
                path,
                0,
                "$INCLUDE nested too deep (a loop?)",
            ));
        }
        let text = (self.read)(path).map_err(|source| DictionaryError::Io {
            file: path.to_path_buf(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut block = Block {
            vendor: None,
            tlv: Vec::new(),
        };
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = raw.split('#').next().unwrap_or("");
            let words: Vec<&str> = content.split_whitespace().collect();
            let Some(&keyword) = words.first() else {
                continue;
            };
            let err = |m: String| DictionaryError::syntax(path, line, m);
            match keyword {
                "$INCLUDE" | "$INCLUDE-" => {
                    let target = words
                        .get(1)
                        .ok_or_else(|| err("$INCLUDE without a file name".into()))?;
                    let target = dir.join(target);
                    if keyword == "$INCLUDE-" && !target.exists() {
                        continue;
                    }
                    self.file(&target, depth + 1)?;
                }
                "ATTRIBUTE" => self.attribute(&words, &block).map_err(err)?,
                "VALUE" => {
                    let [_, attribute, name, number, ..] = words[..] else {
                        return Err(err("VALUE needs an attribute, a name and a number".into()));
                    };
                    let number = parse_number(number)
                        .ok_or_else(|| err(format!("VALUE number {number:?} is not a number")))?;
                    self.pending_values.push(PendingValue {
                        file: path.to_path_buf(),
                        line,
                        attribute: attribute.to_string(),
                        name: name.to_string(),
                        number,
                    });
                }
                "VENDOR" => self.vendor(&words).map_err(err)?,
                "BEGIN-VENDOR" => {
                    let name = words
                        .get(1)
                        .ok_or_else(|| err("BEGIN-VENDOR without a vendor".into()))?;
                    let id = self
                        .dict
                        .vendor_by_name
                        .get(&name.to_ascii_lowercase())
                        .copied()
                        .ok_or_else(|| err(format!("BEGIN-VENDOR of unknown vendor {name:?}")))?;
                    if let Some(format) = words.get(2)
                        && !format.starts_with("format=Extended-Vendor-Specific-")
                    {
                        return Err(err(format!(
                            "BEGIN-VENDOR option {format:?} is not understood"
                        )));
                    }
                    block.vendor = Some(id);
                }
                "END-VENDOR" => {
                    if block.vendor.take().is_none() {
                        return Err(err("END-VENDOR without BEGIN-VENDOR".into()));
                    }
                }
                "BEGIN-TLV" => {
                    let name = words
                        .get(1)
                        .ok_or_else(|| err("BEGIN-TLV without an attribute".into()))?;
                    let idx = *self
                        .dict
                        .by_name
                        .get(&name.to_ascii_lowercase())
                        .ok_or_else(|| err(format!("BEGIN-TLV of unknown attribute {name:?}")))?;
                    if self.dict.attributes[idx].data_type != DataType::Tlv {
                        return Err(err(format!(
                            "BEGIN-TLV of {name:?}, which is not of type tlv"
                        )));
                    }
                    block.tlv.push(idx);
                }
                "END-TLV" => {
                    if block.tlv.pop().is_none() {
                        return Err(err("END-TLV without BEGIN-TLV".into()));
                    }
                }
                other => return Err(err(format!("unknown keyword {other:?}"))),
            }
        }
        if block.vendor.is_some() {
            return Err(DictionaryError::syntax(
                path,
                0,
                "BEGIN-VENDOR without END-VENDOR at end of file",
            ));
        }
        Ok(())
    }

    fn vendor(&mut self, words: &[&str]) -> Result<(), String> {
        let [_, name, number, ..] = words[..] else {
            return Err("VENDOR needs a name and a number".into());
        };
        let id = parse_number(number)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("VENDOR number {number:?} is not a 32-bit number"))?;
        let (mut type_size, mut length_size) = (1u8, 1u8);
        if let Some(format) = words.get(3) {
            let spec = format
                .strip_prefix("format=")
                .ok_or_else(|| format!("VENDOR option {format:?} is not understood"))?;
            let mut parts = spec.split(',');
            type_size = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            length_size = parts.next().and_then(|p| p.parse().ok()).unwrap_or(9);
            let continuation = parts.next();
            if ![1, 2, 4].contains(&type_size)
                || length_size > 2
                || continuation.is_some_and(|c| c != "c")
            {
                return Err(format!(
                    "VENDOR format {spec:?} is not t,l[,c] with t in 1,2,4 and l in 0,1,2"
                ));
            }
        }
        let def = VendorDef {
            name: name.to_string(),
            id,
            type_size,
            length_size,
        };
        if let Some(old) = self.dict.vendors.get(&id) {
            if !old.name.eq_ignore_ascii_case(name) {
                // Aliases for one number are allowed; the first name is the one logs use.
                self.dict
                    .vendor_by_name
                    .insert(name.to_ascii_lowercase(), id);
            }
            return Ok(());
        }
        if let Some(&other) = self.dict.vendor_by_name.get(&name.to_ascii_lowercase())
            && other != id
        {
            return Err(format!("VENDOR {name:?} already has number {other}"));
        }
        self.dict
            .vendor_by_name
            .insert(name.to_ascii_lowercase(), id);
        self.dict.vendors.insert(id, def);
        Ok(())
    }

    fn attribute(&mut self, words: &[&str], block: &Block) -> Result<(), String> {
        let [_, name, number, type_word, ..] = words[..] else {
            return Err("ATTRIBUTE needs a name, a number and a type".into());
        };
        let mut oid = parse_oid(number)
            .ok_or_else(|| format!("ATTRIBUTE number {number:?} is not a number"))?;
        let (data_type, fixed_len) = DataType::parse(type_word)
            .ok_or_else(|| format!("ATTRIBUTE type {type_word:?} is not known"))?;
        let mut vendor = block.vendor.unwrap_or(0);
        if let Some(&parent) = block.tlv.last() {
            let parent = &self.dict.attributes[parent];
            vendor = parent.vendor;
            let mut full = parent.oid.clone();
            full.extend_from_slice(&oid);
            oid = full;
        }
        let mut flags = Flags {
            fixed_len,
            ..Flags::default()
        };
        for word in words.iter().skip(4) {
            for flag in word.split(',') {
                match flag {
                    "has_tag" => flags.has_tag = true,
                    "array" => flags.array = true,
                    "concat" => flags.concat = true,
                    "virtual" => flags.is_virtual = true,
                    "secret" => flags.secret = true,
                    f if f.starts_with("encrypt=") => {
                        flags.encrypt = match &f["encrypt=".len()..] {
                            "1" => 1,
                            "2" => 2,
                            "3" => 3,
                            other => return Err(format!("encrypt={other} is not 1, 2 or 3")),
                        }
                    }
                    // The old form names the vendor in the flags column.
                    f => match self.dict.vendor_by_name.get(&f.to_ascii_lowercase()) {
                        Some(&id) => vendor = id,
                        None => return Err(format!("ATTRIBUTE flag {f:?} is not known")),
                    },
                }
            }
        }
        if vendor != 0 && !self.dict.vendors.contains_key(&vendor) {
            return Err(format!("vendor {vendor} of {name:?} is not defined"));
        }
        if flags.has_tag
            && !matches!(
                data_type,
                DataType::String | DataType::Integer | DataType::Octets
            )
        {
            return Err(format!(
                "has_tag on type {type_word:?}, which cannot carry a tag"
            ));
        }
        let def = AttributeDef {
            name: name.to_string(),
            vendor,
            oid,
            data_type,
            flags,
        };
        let key = name.to_ascii_lowercase();
        if let Some(&existing) = self.dict.by_name.get(&key) {
            let old = &self.dict.attributes[existing];
            if old.vendor != def.vendor || old.oid != def.oid || old.data_type != def.data_type {
                return Err(format!(
                    "ATTRIBUTE {name:?} redefined with another number or type (was {}.{:?} {:?})",
                    old.vendor, old.oid, old.data_type
                ));
            }
            return Ok(());
        }
        let idx = self.dict.attributes.len();
        if def.oid.len() == 1 {
            // The first name for a number is the one decoding shows; later
            // ones (compatibility aliases) only resolve by name.
            self.dict
                .by_number
                .entry((def.vendor, def.number()))
                .or_insert(idx);
        }
        self.dict.by_name.insert(key, idx);
        self.dict.attributes.push(def);
        Ok(())
    }

    fn resolve_values(&mut self) -> Result<(), DictionaryError> {
        for v in std::mem::take(&mut self.pending_values) {
            let Some(&idx) = self.dict.by_name.get(&v.attribute.to_ascii_lowercase()) else {
                return Err(DictionaryError::syntax(
                    &v.file,
                    v.line,
                    format!("VALUE for unknown attribute {:?}", v.attribute),
                ));
            };
            // FreeRADIUS accepts VALUE on any type (CableLabs names octets
            // values), so the type is not checked here.
            let list = self.dict.values.entry(idx).or_default();
            match list.iter().find(|(n, _)| n.eq_ignore_ascii_case(&v.name)) {
                // Redefinitions of a name keep the first number, as FreeRADIUS does.
                Some(_) => {}
                None => list.push((v.name, v.number)),
            }
        }
        Ok(())
    }
}
