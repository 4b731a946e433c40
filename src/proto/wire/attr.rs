//! The attribute numbers the server's own logic uses: the one table, taken
//! from the `radius` crate's RFC modules (which name every standard
//! attribute), plus lengths and the vendor numbers of RFC 2548.
//!
//! Only numbers live here; names for logs and configuration come from the
//! loaded dictionaries.

pub use radius::core::rfc2865::{
    CALLED_STATION_ID_TYPE as CALLED_STATION_ID, CALLING_STATION_ID_TYPE as CALLING_STATION_ID,
    CLASS_TYPE as CLASS, FILTER_ID_TYPE as FILTER_ID, FRAMED_IP_ADDRESS_TYPE as FRAMED_IP_ADDRESS,
    FRAMED_MTU_TYPE as FRAMED_MTU, NAS_IDENTIFIER_TYPE as NAS_IDENTIFIER,
    NAS_IP_ADDRESS_TYPE as NAS_IP_ADDRESS, PROXY_STATE_TYPE as PROXY_STATE,
    REPLY_MESSAGE_TYPE as REPLY_MESSAGE, SESSION_TIMEOUT_TYPE as SESSION_TIMEOUT,
    STATE_TYPE as STATE, USER_NAME_TYPE as USER_NAME, USER_PASSWORD_TYPE as USER_PASSWORD,
    VENDOR_SPECIFIC_TYPE as VENDOR_SPECIFIC,
};
pub use radius::core::rfc2866::{
    ACCT_DELAY_TIME_TYPE as ACCT_DELAY_TIME, ACCT_INPUT_OCTETS_TYPE as ACCT_INPUT_OCTETS,
    ACCT_INPUT_PACKETS_TYPE as ACCT_INPUT_PACKETS, ACCT_OUTPUT_OCTETS_TYPE as ACCT_OUTPUT_OCTETS,
    ACCT_OUTPUT_PACKETS_TYPE as ACCT_OUTPUT_PACKETS, ACCT_SESSION_ID_TYPE as ACCT_SESSION_ID,
    ACCT_SESSION_TIME_TYPE as ACCT_SESSION_TIME, ACCT_STATUS_TYPE_TYPE as ACCT_STATUS_TYPE,
    ACCT_TERMINATE_CAUSE_TYPE as ACCT_TERMINATE_CAUSE,
};
pub use radius::core::rfc2869::{
    ACCT_INPUT_GIGAWORDS_TYPE as ACCT_INPUT_GIGAWORDS,
    ACCT_OUTPUT_GIGAWORDS_TYPE as ACCT_OUTPUT_GIGAWORDS, EAP_MESSAGE_TYPE as EAP_MESSAGE,
    MESSAGE_AUTHENTICATOR_TYPE as MESSAGE_AUTHENTICATOR,
};
pub use radius::core::rfc4072::EAP_KEY_NAME_TYPE as EAP_KEY_NAME;

/// Length of a Message-Authenticator attribute including its header.
pub const MESSAGE_AUTHENTICATOR_LEN: usize = 18;
/// Largest value an attribute can carry (Length is one octet and counts the header).
pub const MAX_VALUE_LEN: usize = 253;
/// Microsoft's vendor id (RFC 2548).
pub const VENDOR_MICROSOFT: u32 = 311;
/// RFC 2548 §2.4.2 and §2.4.3.
pub const MS_MPPE_SEND_KEY: u8 = 16;
pub const MS_MPPE_RECV_KEY: u8 = 17;
