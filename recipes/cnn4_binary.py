"""Recipe of cnn4: the 4-block CNN of 004 (128 px, Adam 1e-3, batch 16, 20 epochs, no augmentation).

The recipe itself (every setting, the split, the threshold rule) is
``pneumozoo.recipe.ZOO_RECIPES["cnn4-binary"]``; this script and ``pneumozoo train --recipe cnn4-binary``
both run it through :func:`pneumozoo.run.run_recipe`.
"""

from _script import main  # recipes/_script.py: the shared command line

if __name__ == "__main__":
    main("cnn4-binary")
