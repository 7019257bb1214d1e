"""Analyses of models and perturbations (SPEC §2–6): pure functions returning tensors, arrays and dicts."""
