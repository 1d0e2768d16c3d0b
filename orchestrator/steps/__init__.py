"""See README.md, architecture section."""
