"""LockN Gen domain logic: catalog, planner, residency policy, workflow tools, downloads, API client.

Nothing in this package imports ComfyUI: it is used by the nodes (inside ComfyUI) and by the
`lockn-gen` command line (outside it).
"""
__version__ = "0.1.0"
