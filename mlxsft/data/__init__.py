"""mlxsft/data."""
