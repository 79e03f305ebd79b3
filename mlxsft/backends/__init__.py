"""mlxsft/backends."""
