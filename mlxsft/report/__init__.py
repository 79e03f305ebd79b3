"""Self-contained HTML pages for runs and curation reports (``mlxsft report``)."""
