"""mlxsft/data/bundled."""
