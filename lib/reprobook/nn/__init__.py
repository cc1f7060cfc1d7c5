"""Shared neural-network building blocks, imported by more than one method."""
