"""Offline data sources: images, speech, text and knowledge graphs.

Everything here comes from installed packages or is synthesised; nothing touches the network
unless a reader opts in to a real dataset through :mod:`reprobook.data.download`.
Import the submodule you need (``from reprobook.data import images``): each pulls in only its
own dependencies.
"""
