"""Recipe of the 3-class model (normal / bacteria / virus): xraynet at 192 px, fine-tuned from
the released default binary model (run and finalize ``xraynet_binary.py`` first).

The recipe itself (every setting, the split, the threshold rule) is
``pneumozoo.recipe.ZOO_RECIPES["xraynet-3class"]``; this script and ``pneumozoo train --recipe xraynet-3class``
both run it through :func:`pneumozoo.run.run_recipe`.
"""

from _script import main  # recipes/_script.py: the shared command line

if __name__ == "__main__":
    main("xraynet-3class")
