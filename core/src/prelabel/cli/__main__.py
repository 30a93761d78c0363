"""``python -m prelabel.cli``."""

from prelabel.cli import main

main()
