"""Recipe of the 3-class model (normal / bacteria / virus): xraynet at 192 px, fine-tuned from
the released default binary model (run and finalize ``xraynet_binary.py`` first)."""

from common import Recipe, main_guard

RECIPE = Recipe(
    name="xraynet-3class",
    arch="xraynet",
    task="3class",
    input_size=192,
    epochs=8,
    learning_rate=1e-3,
    augment="xray",
    schedule="cosine",
    warmup_epochs=1,
    init_from="xraynet-binary",
    # The best epoch is the one with the best 3-class accuracy: val_auc only measures
    # normal vs pneumonia, which the donor model already does well.
    monitor="val_accuracy",
    description="normal / bacteria / virus: xraynet fine-tuned from the default binary model.",
)

if __name__ == "__main__":
    main_guard(RECIPE)
