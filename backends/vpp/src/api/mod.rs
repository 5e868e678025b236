//! VPP's binary API over its unix socket: the message traits, the generated messages, the wire
//! layout and the client. Never hard-codes a message id outside memclnt's fixed ones.

pub mod client;
pub mod error;
#[rustfmt::skip]
pub mod messages;
pub mod wire;

pub use client::Client;
pub use error::VppError;

use wire::{Reader, WireError, Writer};

/// A message whose layout comes from an `.api.json` definition. The body is everything after
/// `_vl_msg_id`, which the client writes from VPP's message table.
pub trait Message: Sized {
    const NAME: &'static str;
    /// 8 lowercase hex digits, as VPP prints it in `name_crc`.
    const CRC: &'static str;

    fn encode_body(&self, w: &mut Writer) -> Result<(), WireError>;
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, WireError>;

    /// The key of VPP's message table: `name_crc`.
    fn name_crc() -> String {
        format!("{}_{}", Self::NAME, Self::CRC)
    }

    /// The whole message with its id (no frame header).
    fn encode(&self, msg_id: u16) -> Result<Vec<u8>, WireError> {
        let mut w = Writer::new();
        w.u16(msg_id);
        self.encode_body(&mut w)?;
        Ok(w.buf)
    }

    /// Decode a whole message (id included). Trailing bytes are accepted, as VPP does.
    fn decode(msg: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(msg);
        r.u16("_vl_msg_id")?;
        Self::decode_body(&mut r)
    }
}

/// A message a client sends: `client_index` and `context` follow the id.
pub trait Request: Message {
    fn set_header(&mut self, client_index: u32, context: u32);
}

/// A message VPP sends back: `context` follows the id; `retval` (or `response`) when it has one.
pub trait Reply: Message {
    fn retval(&self) -> i32;
}

/// The `VNET_API_ERROR_*` names of the return values the backend meets (src/vnet/api_errno.h),
/// so an error message says more than a number.
pub fn vnet_error_name(rv: i32) -> &'static str {
    match rv {
        -1 => "UNSPECIFIED",
        -2 => "INVALID_SW_IF_INDEX",
        -6 => "NO_SUCH_ENTRY",
        -7 => "INVALID_VALUE",
        -11 => "SYSCALL_ERROR_1",
        -12 => "SYSCALL_ERROR_2",
        -13 => "SYSCALL_ERROR_3",
        -14 => "SYSCALL_ERROR_4",
        -18 => "SYSCALL_ERROR_8",
        -60 => "ADDRESS_NOT_FOUND_FOR_INTERFACE",
        -68 => "SUBIF_ALREADY_EXISTS",
        -73 => "INVALID_ARGUMENT",
        -74 => "UNEXPECTED_INTF_STATE",
        -79 => "IF_ALREADY_EXISTS",
        -81 => "VALUE_EXIST",
        -105 => "ADDRESS_IN_USE",
        -116 => "ENTRY_ALREADY_EXISTS",
        -119 => "BD_ALREADY_EXISTS",
        -120 => "BD_IN_USE",
        -121 => "BD_NOT_MODIFIABLE",
        -122 => "BD_ID_EXCEED_MAX",
        -127 => "DUPLICATE_IF_ADDRESS",
        _ => "error",
    }
}

/// VNET return values the steps act on.
pub mod rv {
    pub const INVALID_SW_IF_INDEX: i32 = -2;
    pub const NO_SUCH_ENTRY: i32 = -6;
    pub const ADDRESS_NOT_FOUND_FOR_INTERFACE: i32 = -60;
    pub const INVALID_ARGUMENT: i32 = -73;
    pub const UNEXPECTED_INTF_STATE: i32 = -74;
    pub const ADDRESS_IN_USE: i32 = -105;
    pub const BD_ALREADY_EXISTS: i32 = -119;
    pub const BD_IN_USE: i32 = -120;
}
