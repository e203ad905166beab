"""Recipe of the default model: xraynet, normal vs pneumonia, 192 px."""

from common import Recipe, main_guard

RECIPE = Recipe(
    name="xraynet-binary",
    arch="xraynet",
    task="binary",
    input_size=192,
    epochs=22,
    learning_rate=2e-3,
    augment="xray",
    schedule="cosine",
    warmup_epochs=2,
    description="xraynet v1, the first default (superseded by xraynet-binary-v2): fast residual CNN trained from scratch on Kermany train.",
)

if __name__ == "__main__":
    main_guard(RECIPE)
