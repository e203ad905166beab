"""Publish a model folder to the Hugging Face Hub, then load it back at the pinned commit.

A pneumozoo model folder (what ``save_folder``, ``pneumozoo train`` and the recipes write) is
uploaded as it is: Keras's native files, ``pneumozoo.json`` with the sha256 of each file,
and a model card (generated when the folder has none). ``push_to_hub`` returns the commit
id; loading ``hf://owner/name@<commit>`` later gets exactly these bytes, checked against
their sha256s.

    hf auth login                                   # or export HF_TOKEN=...
    python examples/publish_to_hub.py runs/finetune/model me/xraynet-finetuned --private
    python examples/publish_to_hub.py --fast        # against a local fake Hub, no account

The same from the command line: ``pneumozoo hub push runs/finetune/model me/xraynet-finetuned``.
``--fast`` starts the fake Hub of the test suite (``tests/hubserver.py``) on localhost and
points ``HF_ENDPOINT`` at it; without that file it only writes the folder and prints the
command to publish it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAKE_HUB = ROOT / "tests" / "hubserver.py"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", nargs="?", type=Path, help="model folder to publish")
    p.add_argument("repo_id", nargs="?", help="owner/name of the Hub repo (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--revision", default=None, help="branch to commit to (default main)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: a temp folder)")
    p.add_argument("--fast", action="store_true", help="publish to a local fake Hub")
    args = p.parse_args()
    if not args.fast and (args.folder is None or args.repo_id is None):
        p.error("give a model folder and a repo id (or --fast)")
    return args


def demo_folder(out: Path) -> Path:
    """A small model folder to publish in --fast mode: a fresh cnn4 with its config."""
    import pneumozoo
    from pneumozoo.pretrained import PretrainedConfig, save_folder

    model = pneumozoo.build_model("cnn4", input_size=64)
    config = PretrainedConfig(name="pneumozoo-demo", architecture="cnn4", task="binary",
                              class_names=("normal", "pneumonia"), input_size=64,
                              description="untrained demo model for examples/publish_to_hub.py")
    save_folder(model, out / "model", config)
    return out / "model"


def publish(folder: Path, repo_id: str, *, private: bool, revision: str | None) -> str:
    """Push, reload at the pinned commit, check that both give the same probabilities."""
    import numpy as np

    import pneumozoo

    commit = pneumozoo.push_to_hub(folder, repo_id, private=private, revision=revision)
    uri = f"hf://{repo_id}@{commit}"
    print(f"published {folder} -> {uri}")
    film = ROOT / "examples" / "xrays" / "test224-pneumonia-person100_bacteria_475.jpeg"
    local = pneumozoo.predict(pneumozoo.load_pretrained(folder), film)[0]
    remote = pneumozoo.predict(pneumozoo.load_pretrained(uri), film)[0]
    assert np.isclose(local.probability, remote.probability, atol=1e-6), (local, remote)
    print(f"reloaded {uri}: P(pneumonia) {remote.probability:.4f}, same as the local folder")
    return uri


def main() -> None:
    args = parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    out = args.out or Path(tempfile.mkdtemp(prefix="pneumozoo-publish-"))
    out.mkdir(parents=True, exist_ok=True)
    if not args.fast:
        uri = publish(args.folder, args.repo_id, private=args.private, revision=args.revision)
        print(f'load it anywhere with pneumozoo.load_pretrained("{uri}")')
        return

    # --fast: never touch the real Hub or the user's token and cache.
    os.environ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"
    os.environ["HF_HOME"] = str(out / "hf-home")
    folder = args.folder or demo_folder(out)
    repo_id = args.repo_id or "me/pneumozoo-demo"
    if not FAKE_HUB.is_file():
        print(f"{FAKE_HUB} not found: publish the folder yourself with\n"
              f"  pneumozoo hub push {folder} {repo_id}")
        return
    sys.path.insert(0, str(FAKE_HUB.parent))
    from hubserver import FakeHub

    with FakeHub() as hub:
        os.environ["HF_ENDPOINT"] = hub.url
        uri = publish(folder, repo_id, private=args.private, revision=args.revision)
        files = sorted(hub.files(repo_id, uri.rpartition("@")[2]))
    (out / "published.json").write_text(json.dumps({"uri": uri, "files": files}, indent=2) + "\n")
    print(f"the fake Hub holds {', '.join(files)}; wrote {out / 'published.json'}")


if __name__ == "__main__":
    main()
