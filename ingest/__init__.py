"""ingest: accept JUnit uploads from CI, store them durably, parse them."""
