"""Where the training reference profile of a --model lives: a run folder, a file in it, or NAME@stage /
NAME@vN in the model store (whose copied files must still match their recorded hashes)."""
from __future__ import annotations

from pathlib import Path

from automl.errors import UserError
from automl.io import RunPaths
from automl.serving.model_store import is_reference, resolve


def reference_profile_path(model: str, registry_root: Path) -> Path:
    """reference_profile.json of the run folder or model-store version that `model` names."""
    if is_reference(model):
        r = resolve(model, registry_root)
        r.verify_files()
        root = r.root
    else:
        root = Path(model)
        if root.is_file():
            root = root.parent
    if not root.is_dir():
        raise UserError("--model", f"'{model}' is neither a run folder nor NAME@stage in the registry",
                        "Give the run folder that holds reference_profile.json.")
    p = RunPaths(root).reference_profile
    if not p.is_file():
        raise UserError("--model", f"'{root}' holds no {p.name}",
                        "Re-run the training with this version of automl (it writes the profile at export).")
    return p
