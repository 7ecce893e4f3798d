"""`python -m argoplug`: the CLI."""

from argoplug.console import main

main()
