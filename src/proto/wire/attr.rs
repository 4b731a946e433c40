//! Attribute numbers used by the server's own logic, taken from the `radius`
//! crate where it has them, plus what it lacks (Message-Authenticator and
//! EAP-Message are in RFC 3579, which it does not cover).
//!
//! Only numbers live here; names for logs and configuration come from the
//! loaded dictionaries.

pub use radius::core::rfc2865::{
    CALLED_STATION_ID_TYPE as CALLED_STATION_ID, CALLING_STATION_ID_TYPE as CALLING_STATION_ID,
    CLASS_TYPE as CLASS, FILTER_ID_TYPE as FILTER_ID, FRAMED_MTU_TYPE as FRAMED_MTU,
    NAS_IDENTIFIER_TYPE as NAS_IDENTIFIER, NAS_IP_ADDRESS_TYPE as NAS_IP_ADDRESS,
    PROXY_STATE_TYPE as PROXY_STATE, REPLY_MESSAGE_TYPE as REPLY_MESSAGE,
    SESSION_TIMEOUT_TYPE as SESSION_TIMEOUT, STATE_TYPE as STATE, USER_NAME_TYPE as USER_NAME,
    USER_PASSWORD_TYPE as USER_PASSWORD, VENDOR_SPECIFIC_TYPE as VENDOR_SPECIFIC,
};
pub use radius::core::rfc2866::ACCT_STATUS_TYPE_TYPE as ACCT_STATUS_TYPE;

/// RFC 3579 §3.1.
pub const EAP_MESSAGE: u8 = 79;
/// RFC 3579 §3.2.
pub const MESSAGE_AUTHENTICATOR: u8 = 80;
/// Length of a Message-Authenticator attribute including its header.
pub const MESSAGE_AUTHENTICATOR_LEN: usize = 18;
/// Largest value an attribute can carry (Length is one octet and counts the header).
pub const MAX_VALUE_LEN: usize = 253;
/// Microsoft's vendor id (RFC 2548).
pub const VENDOR_MICROSOFT: u32 = 311;
/// RFC 2548 §2.4.2 and §2.4.3.
pub const MS_MPPE_SEND_KEY: u8 = 16;
pub const MS_MPPE_RECV_KEY: u8 = 17;
