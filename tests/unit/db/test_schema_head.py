"""The newest migration, read without alembic, is alembic's own head."""
from __future__ import annotations

from alembic.config import Config
from alembic.script import ScriptDirectory

from comfyq.db.extensions import MIGRATIONS
from comfyq.db.schema import head


def test_the_head_read_from_the_scripts_is_alembics() -> None:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    assert head() == ScriptDirectory.from_config(config).get_current_head() is not None
