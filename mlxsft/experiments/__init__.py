"""``mlxsft experiment``: the claims SFT practice rests on, measured (curation, methods, distill, reasoning)."""
