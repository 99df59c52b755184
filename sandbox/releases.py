"""Which Debian release carries which Python: the base images the sandbox can build."""

RELEASES: dict[str, str] = {"3.9": "bullseye", "3.11": "bookworm", "3.13": "trixie"}
