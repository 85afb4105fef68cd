import sys

from mmaml.cli.main import main

sys.exit(main())
