"""Which Debian release carries which Python (the base images the sandbox can build), and when each
Python was first released: nothing installed for it should be older than the tools that run on it."""

RELEASES: dict[str, str] = {"3.9": "bullseye", "3.11": "bookworm", "3.13": "trixie"}
RELEASED: dict[str, str] = {"3.9": "2020-10-05T00:00:00Z", "3.10": "2021-10-04T00:00:00Z",
                            "3.11": "2022-10-24T00:00:00Z", "3.12": "2023-10-02T00:00:00Z",
                            "3.13": "2024-10-07T00:00:00Z", "3.14": "2025-10-07T00:00:00Z"}
