//! RADIUS dictionaries in FreeRADIUS format: names, numbers, data types and
//! named values of attributes, loaded once at start-up (and on reload).
//!
//! Reads files and answers look-ups; it must not touch packets beyond mapping
//! names to numbers. A malformed line stops loading with `file:line: problem`.

mod parse;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

pub use parse::ReadFile;

#[derive(Debug, Error)]
pub enum DictionaryError {
    #[error("{file}: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: {message}")]
    Syntax {
        file: PathBuf,
        line: usize,
        message: String,
    },
}

impl DictionaryError {
    fn syntax(file: &Path, line: usize, message: impl Into<String>) -> Self {
        DictionaryError::Syntax {
            file: file.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

/// Value types of FreeRADIUS dictionaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    String,
    Octets,
    IpAddr,
    Ipv4Prefix,
    Ipv6Addr,
    Ipv6Prefix,
    ComboIp,
    IfId,
    Ether,
    ABinary,
    Byte,
    Short,
    Integer,
    Integer64,
    Signed,
    Date,
    Tlv,
    Extended,
    LongExtended,
    Evs,
    Vsa,
}

impl DataType {
    fn parse(word: &str) -> Option<(DataType, Option<usize>)> {
        let lower = word.to_ascii_lowercase();
        if let Some(n) = lower
            .strip_prefix("octets[")
            .and_then(|r| r.strip_suffix(']'))
        {
            return n.parse().ok().map(|n| (DataType::Octets, Some(n)));
        }
        let t = match lower.as_str() {
            "string" => DataType::String,
            "octets" => DataType::Octets,
            "ipaddr" | "ipv4addr" => DataType::IpAddr,
            "ipv4prefix" => DataType::Ipv4Prefix,
            "ipv6addr" => DataType::Ipv6Addr,
            "ipv6prefix" => DataType::Ipv6Prefix,
            "combo-ip" => DataType::ComboIp,
            "ifid" => DataType::IfId,
            "ether" => DataType::Ether,
            "abinary" => DataType::ABinary,
            "byte" | "uint8" => DataType::Byte,
            "short" | "uint16" => DataType::Short,
            "integer" | "uint32" => DataType::Integer,
            "integer64" | "uint64" => DataType::Integer64,
            "signed" | "int32" => DataType::Signed,
            "date" => DataType::Date,
            "tlv" => DataType::Tlv,
            "extended" => DataType::Extended,
            "long-extended" => DataType::LongExtended,
            "evs" => DataType::Evs,
            "vsa" => DataType::Vsa,
            _ => return None,
        };
        Some((t, None))
    }

    /// Whether VALUE names make sense for this type.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            DataType::Byte
                | DataType::Short
                | DataType::Integer
                | DataType::Integer64
                | DataType::Signed
        )
    }
}

/// Attribute flags from the fourth column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    pub has_tag: bool,
    /// 1 = User-Password style, 2 = Tunnel-Password style, 3 = Ascend secret.
    pub encrypt: u8,
    pub array: bool,
    pub concat: bool,
    pub is_virtual: bool,
    pub secret: bool,
    pub fixed_len: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeDef {
    pub name: String,
    /// 0 for standard attributes.
    pub vendor: u32,
    /// The number, with more than one element for TLV children and
    /// extended attributes (`241.1`).
    pub oid: Vec<u32>,
    pub data_type: DataType,
    pub flags: Flags,
}

impl AttributeDef {
    /// The top-level number: the RADIUS type, or the vendor sub-type.
    pub fn number(&self) -> u32 {
        self.oid.first().copied().unwrap_or(0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorDef {
    pub name: String,
    pub id: u32,
    /// Octets of the sub-attribute type and length fields (1,1 by default).
    pub type_size: u8,
    pub length_size: u8,
}

/// Every loaded definition, indexed for look-ups both ways.
#[derive(Debug, Default)]
pub struct Dictionary {
    attributes: Vec<AttributeDef>,
    by_name: HashMap<String, usize>,
    by_number: HashMap<(u32, u32), usize>,
    vendors: HashMap<u32, VendorDef>,
    vendor_by_name: HashMap<String, u32>,
    /// attribute index → (value name, number), in file order.
    values: HashMap<usize, Vec<(String, u64)>>,
}

impl Dictionary {
    /// Loads `path` and everything it includes, reading each file with
    /// `read` (the configuration passes `std::fs::read_to_string`).
    pub fn load(path: &Path, read: ReadFile<'_>) -> Result<Self, DictionaryError> {
        parse::load(path, read)
    }

    /// Looks an attribute up by name, case-insensitively as FreeRADIUS does.
    pub fn attribute(&self, name: &str) -> Option<&AttributeDef> {
        self.by_name
            .get(&name.to_ascii_lowercase())
            .map(|&i| &self.attributes[i])
    }

    /// Looks a top-level attribute up by vendor (0 for standard) and number.
    pub fn attribute_by_number(&self, vendor: u32, number: u32) -> Option<&AttributeDef> {
        self.by_number
            .get(&(vendor, number))
            .map(|&i| &self.attributes[i])
    }

    pub fn vendor(&self, id: u32) -> Option<&VendorDef> {
        self.vendors.get(&id)
    }

    pub fn vendor_by_name(&self, name: &str) -> Option<&VendorDef> {
        self.vendor_by_name
            .get(&name.to_ascii_lowercase())
            .and_then(|id| self.vendors.get(id))
    }

    /// The number a named value of `attribute` stands for.
    pub fn value(&self, attribute: &str, name: &str) -> Option<u64> {
        let i = *self.by_name.get(&attribute.to_ascii_lowercase())?;
        self.values
            .get(&i)?
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// The first name given to `number` for `attribute`.
    pub fn value_name(&self, attribute: &AttributeDef, number: u64) -> Option<&str> {
        // By number when it is a top-level attribute: no lower-cased copy of
        // the name on the accounting path.
        let by_number = match attribute.oid.as_slice() {
            [n] => self
                .by_number
                .get(&(attribute.vendor, *n))
                .filter(|&&i| self.attributes[i].name == attribute.name),
            _ => None,
        };
        let i = match by_number {
            Some(&i) => i,
            None => *self.by_name.get(&attribute.name.to_ascii_lowercase())?,
        };
        self.values
            .get(&i)?
            .iter()
            .find(|(_, v)| *v == number)
            .map(|(n, _)| n.as_str())
    }

    pub fn attribute_count(&self) -> usize {
        self.attributes.len()
    }

    pub fn vendor_count(&self) -> usize {
        self.vendors.len()
    }
}

#[cfg(test)]
impl Dictionary {
    /// Loads `path` from disk, for unit tests.
    pub fn from_file(path: &Path) -> Result<Self, DictionaryError> {
        parse::load(path, &|p| std::fs::read_to_string(p))
    }

    /// The dictionaries shipped in `dictionaries/`, for unit tests.
    pub fn shipped() -> Dictionary {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dictionaries/dictionary");
        Dictionary::from_file(&path).expect("the shipped dictionaries load")
    }
}

#[cfg(test)]
mod tests;
