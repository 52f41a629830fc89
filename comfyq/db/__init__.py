"""The database: extensions, models, migrations, and timestamps that always carry their offset."""
