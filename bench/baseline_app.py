"""The floor for submit throughput: a Flask app that parses the same body and answers 202.

``asgi`` serves it the way ``comfyq api`` serves comfyq: uvicorn, Flask in a2wsgi's threads.
"""
from a2wsgi import WSGIMiddleware
from flask import Flask, request

app = Flask(__name__)


@app.post("/v1/jobs")
def accept() -> tuple[dict[str, str], int]:
    """Parse the JSON body and answer like a queued job, doing nothing else."""
    body = request.get_json()
    return {"id": "0", "status": "queued", "nodes": str(len(body["workflow"]))}, 202


asgi = WSGIMiddleware(app, workers=1)  # type: ignore[arg-type]  # as comfyq on SQLite: one thread
