"""Distilling a prepared dataset into a few images per class, and tracking it."""
