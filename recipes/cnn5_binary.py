"""Recipe of cnn5: the 5-block CNN of 001 (150 px, zoom 0.3 + vertical flip, Adam, ReduceLROnPlateau, 10 epochs)."""

from common import Recipe, main_guard

RECIPE = Recipe(
    name="cnn5-binary",
    arch="cnn5",
    task="binary",
    input_size=150,
    epochs=10,
    learning_rate=1e-3,
    batch_size=32,
    augment="zoom-vflip",
    schedule="plateau",
    warmup_epochs=0,
    description="The 5-block separable-conv CNN of 001, trained with its recipe.",
)

if __name__ == "__main__":
    main_guard(RECIPE)
