"""Alleycat's stream processors: Lambda handlers around pure domain functions (no Django here)."""
