"""`automl serve`: serve verified model(s) over HTTP with uvicorn.

    automl serve --model outputs/.../run                      # a run folder
    automl serve --model churn@production                     # a registry stage (follows promote/rollback)
    automl serve --model churn@production --model churn@v4 --traffic 90,10    # A/B split
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path

from automl.errors import UserError
from automl.monitoring.drift import ALPHA, JS_THRESHOLD, PSI_THRESHOLD, Thresholds
from automl.serving.app import ModelSet, ServeOptions, build_app
from automl.serving.model_store import default_root
from automl.serving.startup import TOKEN_ENV, check_listen, load_variants, read_token


def parse_traffic(text: str | None, n: int) -> list[float]:
    """--traffic 90,10 -> weights that sum to 1, one per --model."""
    if n == 1 and not text:
        return [1.0]
    if not text:
        raise UserError("--traffic", f"{n} models need a declared traffic split", "Pass e.g. --traffic 90,10.")
    try:
        w = [float(x) for x in text.split(",")]
    except ValueError:
        raise UserError("--traffic", f"'{text}' is not a list of numbers", "Pass e.g. --traffic 90,10.") from None
    if len(w) != n or any(x < 0 for x in w) or sum(w) <= 0:
        raise UserError("--traffic", f"'{text}' must give {n} non-negative weights with a positive sum",
                        "One weight per --model, e.g. --traffic 90,10.")
    return [x / sum(w) for x in w]


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="automl serve", description="Serve automl model(s) over HTTP.")
    ap.add_argument("--model", action="append", required=True,
                    help="run folder, model.onnx, or NAME@stage / NAME@vN from the registry; repeat for A/B")
    ap.add_argument("--traffic", default=None, help="A/B weights, one per --model, e.g. 90,10")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--token-file", default=None, help=f"file holding the bearer token (else ${TOKEN_ENV})")
    ap.add_argument("--token-env", default=TOKEN_ENV, help="environment variable holding the bearer token")
    ap.add_argument("--no-auth", action="store_true", help="serve without a token (trusted networks only)")
    ap.add_argument("--registry", default=None, help="registry root (default: $AUTOML_REGISTRY or ~/.automl/registry)")
    ap.add_argument("--max-body-mb", type=float, default=8.0, help="larger request bodies get 413")
    ap.add_argument("--allow-unseen", action="store_true",
                    help="score categories not seen in training as 'unknown' instead of answering 422")
    ap.add_argument("--drift-window", type=int, default=1000, help="rows of recent inputs kept for drift (0 = off)")
    ap.add_argument("--drift-min-rows", type=int, default=100, help="rows needed before drift is reported")
    ap.add_argument("--psi-threshold", type=float, default=PSI_THRESHOLD)
    ap.add_argument("--js-threshold", type=float, default=JS_THRESHOLD)
    ap.add_argument("--alpha", type=float, default=ALPHA)
    ap.add_argument("--reload-s", type=float, default=5.0,
                    help="how often registry stages are re-resolved (promote/rollback reach a running server); "
                         "0 = never")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads per model")
    ap.add_argument("--access-log", action="store_true", help="log every request line (never headers)")
    a = ap.parse_args(argv)
    if not (_has("uvicorn") and _has("starlette")):
        raise UserError("automl serve", "needs the serve extra (starlette, uvicorn)", 'pip install "automl[serve]".')
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if a.max_body_mb <= 0:
        raise UserError("--max-body-mb", "must be > 0", "Pass e.g. --max-body-mb 8.")
    if not 0 < a.port < 65536:
        raise UserError("--port", f"{a.port} is not a TCP port", "Pass a port between 1 and 65535.")
    token = read_token(a.token_file, a.token_env, a.no_auth)
    check_listen(a.host, a.port)
    weights = parse_traffic(a.traffic, len(a.model))
    root = Path(a.registry).expanduser() if a.registry else default_root()
    variants = load_variants(a.model, weights, root, a.threads)

    import uvicorn  # the serve extra: checked above, so a missing one is one line, not a traceback

    opts = ServeOptions(token=token, max_body_bytes=int(a.max_body_mb * 2**20), allow_unseen=a.allow_unseen,
                        drift_window=a.drift_window, drift_min_rows=a.drift_min_rows, reload_s=a.reload_s,
                        threads=a.threads, thresholds=Thresholds(a.psi_threshold, a.js_threshold, a.alpha))
    app = build_app(ModelSet(variants), opts)
    for v in variants:
        drift = "drift on" if v.model.reference is not None else "no reference_profile.json: drift off"
        print(f"serving {v.model.label} (sha256 {v.model.sha256[:12]}, {v.weight:.0%} of traffic, {drift})",
              file=sys.stderr)
    print(f"listening on http://{a.host}:{a.port} (auth: {'none' if token is None else 'bearer token'})",
          file=sys.stderr, flush=True)
    loop = "uvloop" if _has("uvloop") else "asyncio"
    http = "httptools" if _has("httptools") else "h11"
    server = uvicorn.Server(uvicorn.Config(app, host=a.host, port=a.port, loop=loop, http=http, log_level="warning",
                                           access_log=a.access_log, server_header=False, timeout_keep_alive=30))
    server.run()
    return 0
