"""Recipe of cnn4: the 4-block CNN of 004 (128 px, Adam 1e-3, batch 16, 20 epochs, no augmentation)."""

from common import Recipe, main_guard

RECIPE = Recipe(
    name="cnn4-binary",
    arch="cnn4",
    task="binary",
    input_size=128,
    epochs=20,
    learning_rate=1e-3,
    batch_size=16,
    augment="none",
    schedule="constant",
    warmup_epochs=0,
    description="The 4-block VGG-like CNN of 004, trained with its recipe.",
)

if __name__ == "__main__":
    main_guard(RECIPE)
