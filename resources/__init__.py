"""Bundled resources: stylesheets, profiles (a package so installs carry the files)."""
