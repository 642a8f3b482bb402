"""Helpers shared by the Colorlight, NovaStar COEX and Brompton Tessera drivers."""
