"""Image handling: magic-byte sniffing, base64 and data URLs, SSRF-safe URL fetching, re-hosting."""
