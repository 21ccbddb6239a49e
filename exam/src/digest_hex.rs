//! SHA-256 digests as 64 hex digits in human-readable formats (JSON, TOML), as everywhere
//! else in konvert, and as 32 raw bytes in binary ones (postcard: the sealed archive's
//! manifest, unchanged). A human-readable reader also takes the older array of integers.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Writes `digest` as hex when the format is human-readable.
pub(crate) fn serialize<S: Serializer>(digest: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.serialize_str(&hex::encode(digest))
    } else {
        digest.serialize(s)
    }
}

/// Reads hex (or the older array) when the format is human-readable, raw bytes otherwise.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Hex(String),
        Array([u8; 32]),
    }
    if !d.is_human_readable() {
        return <[u8; 32]>::deserialize(d);
    }
    match Written::deserialize(d)? {
        Written::Array(a) => Ok(a),
        Written::Hex(h) => {
            let mut out = [0u8; 32];
            hex::decode_to_slice(&h, &mut out)
                .map_err(|_| serde::de::Error::custom(format!("{h:?} is not a SHA-256 digest (64 hex digits)")))?;
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ManifestFile;

    fn file() -> ManifestFile {
        ManifestFile {
            name: "p1.tif".into(),
            size: 3,
            sha256: [0xab; 32],
        }
    }

    #[test]
    fn human_readable_formats_get_hex_and_the_archive_keeps_raw_bytes() {
        let text = toml::to_string(&file()).unwrap();
        assert!(text.contains(&format!("sha256 = \"{}\"", "ab".repeat(32))), "{text}");
        assert_eq!(toml::from_str::<ManifestFile>(&text).unwrap(), file());
        // What older builds wrote still reads.
        let array = format!(
            "name = \"p1.tif\"\nsize = 3\nsha256 = [{}]\n",
            vec!["171"; 32].join(", ")
        );
        assert_eq!(toml::from_str::<ManifestFile>(&array).unwrap(), file());
        // The sealed manifest (postcard) is byte for byte what it was: 32 raw bytes.
        let bytes = postcard::to_allocvec(&file()).unwrap();
        assert_eq!(bytes.len(), 1 + 6 + 1 + 32);
        assert_eq!(&bytes[8..], &[0xab; 32]);
        assert_eq!(postcard::from_bytes::<ManifestFile>(&bytes).unwrap(), file());
        assert!(toml::from_str::<ManifestFile>("name = \"a\"\nsize = 1\nsha256 = \"zz\"\n").is_err());
    }
}
