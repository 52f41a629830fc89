"""``python3 -m comfyq.config`` prints or writes .env.example and the README's settings table."""
import sys

from .render import main

sys.exit(main())
