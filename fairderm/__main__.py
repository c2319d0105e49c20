"""``python -m fairderm``: the same command line as the ``fairderm`` script."""

from fairderm.cli import run

run()
