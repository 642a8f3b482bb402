"""Byte-level codecs for LED controller families, and device emulators that speak them."""
