"""Portico's Python package: only there so that `python -m portico` runs the
`portico` command installed beside this interpreter (see __main__.py)."""
