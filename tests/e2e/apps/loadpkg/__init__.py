"""A package for `--module loadpkg.wsgi` tests (a dotted module, as Django's mysite.wsgi)."""
