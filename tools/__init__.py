"""Development tooling of the project (not shipped in the wheel)."""
