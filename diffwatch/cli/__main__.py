"""``python -m diffwatch.cli``: the same command as the ``diffwatch`` console script."""

from diffwatch.cli import main

main()
