"""Pipeline components (spaCy factories)."""
