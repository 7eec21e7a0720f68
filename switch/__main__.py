"""python -m switch runs the softswitch command."""
import sys

from .cli import main

sys.exit(main())
