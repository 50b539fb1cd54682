"""Private infrastructure shared across the pipeline: open registries keyed by name
(:mod:`.registry`), config validators (:mod:`.validate`), how the engine runs around the
user's model (:mod:`.runtime`) and float64 linear-algebra helpers (:mod:`.linalg`). Not a
public API: import from the packages that use them."""
