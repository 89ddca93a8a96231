//! The registry callback's altitude: the minifilter instance's `Altitude` value, which
//! `agentsh driver install --altitude` (or the INF) writes under the service key's
//! `Parameters\Instances\AgentSH Instance` and `Instances\AgentSH Instance`. Read once in
//! DriverEntry at PASSIVE_LEVEL; the built-in default applies when neither value is usable.

use crate::ffi::{self, UnicodeString};

/// The default of `agentsh driver install` and packaging/agentsh.inf.
pub const DEFAULT: &[u16] = &[
    b'3' as u16,
    b'7' as u16,
    b'6' as u16,
    b'3' as u16,
    b'0' as u16,
    b'0' as u16,
];

/// Longest altitude accepted (characters); the filter manager's are short decimal strings.
const MAX_CHARS: usize = 32;
/// Longest service key path the lookup builds (characters, suffix included).
const MAX_PATH: usize = 256;
const KEY_QUERY_VALUE: u32 = 0x0001;
const REG_SZ: u32 = 1;

/// `\Parameters\Instances\AgentSH Instance` and `\Instances\AgentSH Instance`, tried in order.
const SUFFIXES: [&str; 2] = [
    "\\Parameters\\Instances\\AgentSH Instance",
    "\\Instances\\AgentSH Instance",
];
const VALUE_NAME: &[u16] = &[
    b'A' as u16,
    b'l' as u16,
    b't' as u16,
    b'i' as u16,
    b't' as u16,
    b'u' as u16,
    b'd' as u16,
    b'e' as u16,
];

/// An altitude string (UTF-16, no terminator).
pub struct Altitude {
    chars: [u16; MAX_CHARS],
    len: usize,
    /// Read from the service's registry values (`false`: the built-in default).
    pub configured: bool,
}

impl Altitude {
    fn default_value() -> Self {
        let mut chars = [0u16; MAX_CHARS];
        chars[..DEFAULT.len()].copy_from_slice(DEFAULT);
        Altitude {
            chars,
            len: DEFAULT.len(),
            configured: false,
        }
    }

    pub fn as_slice(&self) -> &[u16] {
        &self.chars[..self.len]
    }
}

impl core::fmt::Display for Altitude {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Only ASCII digits and '.' pass `valid`, so each unit is one char.
        for &c in self.as_slice() {
            f.write_str(
                char::from_u32(u32::from(c))
                    .unwrap_or('?')
                    .encode_utf8(&mut [0; 4]),
            )?;
        }
        Ok(())
    }
}

/// Decimal digits with at most one decimal point, neither end a point (the filter manager's
/// syntax); trailing NULs of a REG_SZ are dropped first.
fn valid(chars: &[u16]) -> Option<&[u16]> {
    let end = chars.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
    let s = &chars[..end];
    let points = s.iter().filter(|&&c| c == u16::from(b'.')).count();
    let digits = s
        .iter()
        .all(|&c| c == u16::from(b'.') || (u16::from(b'0')..=u16::from(b'9')).contains(&c));
    let ends_ok = s.first() != Some(&u16::from(b'.')) && s.last() != Some(&u16::from(b'.'));
    (!s.is_empty() && s.len() <= MAX_CHARS && digits && points <= 1 && ends_ok).then_some(s)
}

/// The installed altitude for the service at `registry_path` (DriverEntry's RegistryPath), or the
/// default. PASSIVE_LEVEL.
///
/// # Safety
/// `registry_path` is null or DriverEntry's valid UNICODE_STRING.
pub unsafe fn read(registry_path: *const UnicodeString) -> Altitude {
    if registry_path.is_null() {
        return Altitude::default_value();
    }
    // SAFETY: DriverEntry's RegistryPath is a valid UNICODE_STRING for the call's duration.
    let path = unsafe { &*registry_path };
    let units = usize::from(path.length / 2);
    if path.buffer.is_null() || units == 0 {
        return Altitude::default_value();
    }
    // SAFETY: `buffer` holds `length` bytes (the UNICODE_STRING contract).
    let service = unsafe { core::slice::from_raw_parts(path.buffer, units) };
    let service = &service[..service.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1)];
    for suffix in SUFFIXES {
        let mut key = [0u16; MAX_PATH];
        if service.len() + suffix.len() > MAX_PATH {
            break;
        }
        key[..service.len()].copy_from_slice(service);
        for (slot, b) in key[service.len()..].iter_mut().zip(suffix.bytes()) {
            *slot = u16::from(b);
        }
        if let Some(found) = query(&key[..service.len() + suffix.len()]) {
            return found;
        }
    }
    Altitude::default_value()
}

/// `Altitude` (REG_SZ) of one key, when present and valid.
fn query(key_path: &[u16]) -> Option<Altitude> {
    let bytes = u16::try_from(key_path.len() * 2).ok()?;
    let name = UnicodeString {
        length: bytes,
        maximum_length: bytes,
        buffer: key_path.as_ptr().cast_mut(),
    };
    let attrs = ffi::ObjectAttributes {
        length: core::mem::size_of::<ffi::ObjectAttributes>() as u32,
        root_directory: core::ptr::null_mut(),
        object_name: &name,
        attributes: ffi::OBJ_CASE_INSENSITIVE | ffi::OBJ_KERNEL_HANDLE,
        security_descriptor: core::ptr::null_mut(),
        security_quality_of_service: core::ptr::null_mut(),
    };
    let mut handle: ffi::Handle = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; `attrs` and `name` outlive the call; kernel handle.
    let status = unsafe { ffi::ZwOpenKey(&mut handle, KEY_QUERY_VALUE, &attrs) };
    if !ffi::nt_success(status) {
        return None;
    }
    let value_name = UnicodeString::from_static(VALUE_NAME);
    // Header plus MAX_CHARS characters and a terminator, 4-byte aligned.
    let mut info = [0u32; 4 + (MAX_CHARS * 2 + 2).div_ceil(4)];
    let capacity = core::mem::size_of_val(&info) as u32;
    let mut written = 0u32;
    // SAFETY: PASSIVE_LEVEL; `handle` is open; `info` is writable for `capacity` bytes.
    let status = unsafe {
        ffi::ZwQueryValueKey(
            handle,
            &value_name,
            ffi::KEY_VALUE_PARTIAL_INFORMATION_CLASS,
            info.as_mut_ptr().cast(),
            capacity,
            &mut written,
        )
    };
    // SAFETY: PASSIVE_LEVEL; `handle` was opened above and is closed once.
    unsafe { ffi::ZwClose(handle) };
    if !ffi::nt_success(status) {
        return None;
    }
    let header = info.as_ptr().cast::<ffi::KeyValuePartialInformation>();
    // SAFETY: the call succeeded, so the header is initialised; `info` is 4-byte aligned.
    let kind = unsafe { (*header).r#type };
    // SAFETY: as above.
    let data_length = unsafe { (*header).data_length };
    let offset = core::mem::offset_of!(ffi::KeyValuePartialInformation, data);
    let data_length = usize::try_from(data_length).ok()?;
    if kind != REG_SZ || offset + data_length > capacity as usize {
        return None;
    }
    let mut chars = [0u16; MAX_CHARS + 1];
    let units = (data_length / 2).min(chars.len());
    // SAFETY: `offset + data_length` bytes of `info` are initialised (checked against capacity);
    // the copy stays within `chars` (`units` is clamped to its length).
    unsafe {
        core::ptr::copy_nonoverlapping(
            info.as_ptr().cast::<u8>().add(offset),
            chars.as_mut_ptr().cast::<u8>(),
            units * 2,
        )
    };
    let s = valid(&chars[..units])?;
    let mut out = Altitude::default_value();
    out.chars[..s.len()].copy_from_slice(s);
    out.len = s.len();
    out.configured = true;
    Some(out)
}
