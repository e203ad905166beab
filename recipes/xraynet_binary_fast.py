"""Recipe of xraynet-binary-fast: the default model at 104 px, for speed (issue #15).

The goal: a bundled binary model at >= 4x the images/s of the published peer
(``pneumonia-model-package==0.1.0``, a 5-block separable CNN at 180 px) with test AUC >= 0.95.
The input size was fixed from speed alone, before any training: the largest size whose
network, with random weights, ran at >= 4.2x the peer in ``benchmarks/bench_peer.py
--candidates`` on this 2-core CPU (128 px 3.38x, 112 px 4.01x, 104 px 4.33x, 96 px 4.85x).
The weights start from ``xraynet-binary-v2`` and are fine-tuned for 6 epochs with v2's own
recipe (per-image standardisation, ``xray-strong``, label smoothing). Its test numbers are a
one-shot measurement, reported whatever they are.

The recipe itself is ``pneumozoo.recipe.ZOO_RECIPES["xraynet-binary-fast"]``; this script and
``pneumozoo train --recipe xraynet-binary-fast`` both run it through
:func:`pneumozoo.run.run_recipe`.
"""

from _script import main  # recipes/_script.py: the shared command line

if __name__ == "__main__":
    main("xraynet-binary-fast")
