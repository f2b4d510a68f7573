"""`python -m metasearch` is the `metasearch` command."""

from metasearch.cli import main

main()
