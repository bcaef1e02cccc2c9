# The published CNN-Filter-DB file (README "Get the published DB"): `snakemake --cores 8 published_db`.
# Config: the `published` block (url, md5, path, keep_compressed; defaults in the schema).
rule published_db:
    output:
        db=config["published"]["path"],
    log:
        f"{R}/logs/published_db.log",
    benchmark:
        f"{R}/benchmarks/published_db.tsv"
    localrule: True
    conda:
        "../envs/filterdb.yaml"
    params:
        url=config["published"]["url"],
        md5=config["published"]["md5"],
        keep_compressed=config["published"]["keep_compressed"],
    script:
        "../scripts/published_db.py"
