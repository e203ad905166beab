"""Recipe of the default model: xraynet, normal vs pneumonia, 192 px.

The recipe itself (every setting, the split, the threshold rule) is
``pneumozoo.recipe.ZOO_RECIPES["xraynet-binary"]``; this script and ``pneumozoo train --recipe xraynet-binary``
both run it through :func:`pneumozoo.run.run_recipe`.
"""

from _script import main  # recipes/_script.py: the shared command line

if __name__ == "__main__":
    main("xraynet-binary")
