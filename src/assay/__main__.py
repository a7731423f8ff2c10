"""``python -m assay``: the same command as the ``assay`` script."""

from assay.cli import main

main()
