"""A throwaway PostgreSQL server for tests, from the Debian package (scripts/test.sh installs it)."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

from comfyq.sim.process import free_port


class PostgresServer:
    """initdb + pg_ctl in a temporary folder, on a free loopback port, trusting local connections."""

    def __init__(self, base: Path) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise RuntimeError("no PostgreSQL server binaries: install Debian's postgresql package "
                               "(scripts/test.sh does)")
        self.bin = Path(found[-1]).parent
        self.base, self.port = base, free_port()
        self.data = base / "data"
        # initdb refuses to run as root: run the server as Debian's postgres user then.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        """Return the SQLAlchemy URL of the test database."""
        return f"postgresql+psycopg://comfyq@127.0.0.1:{self.port}/comfyq"

    def _run(self, *argv: str) -> None:
        subprocess.run([*self.as_user, *argv], check=True, capture_output=True, text=True)

    def start(self) -> "PostgresServer":
        """Create the cluster and the ``comfyq`` database, and start the server."""
        self.base.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            shutil.chown(self.base, "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "comfyq", "--no-sync")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.base / "server.log"),
                  "-o", f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
                        "-c synchronous_commit=off -c max_connections=300", "start")
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "comfyq", "-d", "postgres",
                        "-qc", "CREATE DATABASE comfyq"], check=True, capture_output=True)
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its files."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)
