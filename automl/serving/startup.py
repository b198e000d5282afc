"""What `automl serve` settles before it listens: the bearer token, the model variants behind each --model
(a run folder, or NAME@stage / NAME@vN in the model store), and that the address is free.
"""
from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from automl.errors import UserError
from automl.io import RunPaths
from automl.serving.app import Variant
from automl.serving.artefact import load_model
from automl.serving.model_store import INDEX, is_reference, resolve

TOKEN_ENV = "AUTOML_SERVE_TOKEN"


def read_token(token_file: str | None, token_env: str, no_auth: bool) -> str | None:
    """The bearer token from --token-file, else from the environment variable; None with --no-auth."""
    if no_auth:
        return None
    if token_file:
        p = Path(token_file).expanduser()
        if not p.is_file():
            raise UserError("--token-file", f"'{token_file}' is not a file", "Point it to a file that holds the token.")
        if p.stat().st_mode & 0o077:
            logging.getLogger("automl.serve").warning("token file %s is readable by other users (chmod 600 it)", p)
        token = p.read_text(encoding="utf-8").strip()
        where = "--token-file"
    else:
        token = os.environ.get(token_env, "").strip()
        where = token_env
        if not token:
            raise UserError("--token-file", f"no bearer token (neither --token-file nor ${token_env} is set)",
                            f"Set {token_env} or pass --token-file (or --no-auth for a trusted loopback test).")
    if not token:
        raise UserError(where, "the token is empty", "Put a long random token there (e.g. openssl rand -hex 32).")
    if any(c.isspace() for c in token):
        raise UserError(where, "the token contains whitespace", "Use a token without spaces or newlines.")
    return token


def load_variants(refs: list[str], weights: list[float], registry_root: Path, threads: int) -> list[Variant]:
    """One verified, loaded model per --model reference, with its share of traffic."""
    variants = []
    for ref, w in zip(refs, weights, strict=True):
        if is_reference(ref):
            r = resolve(ref, registry_root)
            r.verify_files()
            model = load_model(r.root, r.label, "--model", r.sha256, threads)
            v = Variant(ref, w, model, registry_root=registry_root)
            v.index_mtime = (registry_root / r.name / INDEX).stat().st_mtime
        else:
            p = Path(ref)
            if p.is_file() and p.name == RunPaths(p.parent).model.name:
                p = p.parent
            if not p.is_dir():
                raise UserError("--model",
                                f"'{ref}' is neither a run folder nor NAME@stage in the registry at {registry_root}",
                                "Give a run folder, or NAME@production / NAME@v3 after `automl registry push`.")
            v = Variant(ref, w, load_model(p, p.resolve().name, "--model", None, threads))
        variants.append(v)
    labels = [v.model.label for v in variants]
    if len(set(labels)) < len(labels):
        raise UserError("--model", f"the same version is named twice ({', '.join(labels)})",
                        "A/B needs two different versions.")
    return variants


def check_listen(host: str, port: int) -> None:
    """Say in one line that the address is taken, before models load (uvicorn would exit 1 with a log record)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise UserError("--host", f"'{host}' does not resolve ({e.strerror})",
                        "Pass an address such as 127.0.0.1.") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            raise UserError("--port", f"cannot listen on {host}:{port} ({e.strerror})",
                            "Choose another --port or stop the process that holds it.") from None
