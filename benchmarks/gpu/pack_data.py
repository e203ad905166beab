"""Pack Kermany train/test small enough to travel to a GPU machine (64 MiB per call, repo included).

Every film becomes a one-channel WebP at the default recipe's input size (192 px, antialiased
resize from the 224 px copy, as the model's preprocessor would do), in the Kermany layout
(``<out>/train|test/NORMAL|PNEUMONIA/<same name>.webp``), so ``scan_split`` and the
pipeline read it as they read the original. Train at ``--quality`` (default 50), test at
``--test-quality`` (default 75: the numbers compared with the model card come from it).

Run: ``python benchmarks/gpu/pack_data.py`` (writes ``.gpudata/kermany``, an ignored folder).
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def pack(src: Path, out: Path, size: int, quality: int, test_quality: int,
         train_fraction: float = 1.0) -> dict:
    sizes: dict[str, int] = {}
    counts: dict[str, int] = {}
    for split, q in (("train", quality), ("test", test_quality)):
        files = sorted(p for p in (src / split).glob("*/*") if p.is_file())
        if train_fraction < 1.0 and split == "train":
            files = files[:: max(1, round(1 / train_fraction))]

        def one(f: Path, q: int = q, split: str = split) -> int:
            target = out / split / f.parent.name / (f.stem + ".webp")
            target.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(f) as im:
                im.convert("L").resize((size, size), Image.Resampling.BILINEAR,
                                       reducing_gap=None).save(target, "WEBP", quality=q, method=6)
            return target.stat().st_size

        with ThreadPoolExecutor(8) as ex:
            sizes[split] = sum(ex.map(one, files))
        counts[split] = len(files)
    return {"size": size, "format": "WEBP, one channel", "quality": {"train": quality,
            "test": test_quality}, "films": counts, "bytes": sizes,
            "mib_total": round(sum(sizes.values()) / 2**20, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", type=Path, default=ROOT.parent / "shared" / "data" / "kermany224")
    p.add_argument("--out", type=Path, default=ROOT / ".gpudata" / "kermany")
    p.add_argument("--size", type=int, default=192)
    p.add_argument("--quality", type=int, default=50)
    p.add_argument("--test-quality", type=int, default=75)
    p.add_argument("--train-fraction", type=float, default=1.0)
    a = p.parse_args()
    info = pack(a.src, a.out, a.size, a.quality, a.test_quality, a.train_fraction)
    (a.out / "PACKED.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info))


if __name__ == "__main__":
    main()
