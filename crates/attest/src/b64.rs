//! Base64 (RFC 4648 standard alphabet, padded), as BusyBox `base64` and the host print tokens.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Encodes `data`.
pub fn encode(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Decodes `text` (whitespace is ignored); `None` if it is not base64.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(clean).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_refusal() {
        assert_eq!(super::encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(super::decode("Zm9v\nYmE="), Some(b"fooba".to_vec()));
        assert_eq!(super::decode("Zm9v!"), None);
        assert_eq!(super::decode("Zg"), None, "padding is required");
    }
}
