"""``python -m gtlomics``: the command line (also ``torchrun -m gtlomics ...``)."""

from gtlomics.cli import main

raise SystemExit(main())
