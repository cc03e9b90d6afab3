"""The reconciler: desired state (from the database) − observed state (from Synapse) = plan.

`build_desired` → `observe` → `compute_plan` (pure, deterministic) → `apply`.
"""
