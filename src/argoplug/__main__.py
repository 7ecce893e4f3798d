"""`python -m argoplug`: the CLI."""

from argoplug.cli import main

main()
