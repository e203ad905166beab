"""Recipe of cnn5: the 5-block CNN of 001 (150 px, zoom 0.3 + vertical flip, Adam, ReduceLROnPlateau, 10 epochs).

The recipe itself (every setting, the split, the threshold rule) is
``pneumozoo.recipe.ZOO_RECIPES["cnn5-binary"]``; this script and ``pneumozoo train --recipe cnn5-binary``
both run it through :func:`pneumozoo.run.run_recipe`.
"""

from _script import main  # recipes/_script.py: the shared command line

if __name__ == "__main__":
    main("cnn5-binary")
