# The published CNN-Filter-DB file (README "Get the published DB"): `snakemake --cores 8 published_db`.
# Config: the `published` block (url, md5, path, keep_compressed; defaults in the schema). Snakemake's
# storage plugin downloads the archive (the mechanism of a `dataset` URL; published_archive()), rule
# published_download checks its md5, rule published_unpack decompresses it. Both exist only while the
# DB is missing: once it is there it is a plain input, and no run (analysing it offline, say) sends a
# request for the archive or reruns a download because a setting changed (delete the DB for that).
if published_missing():

    rule published_download:
        input:
            archive=published_archive(),
        output:
            archive=published_download_output(),
        log:
            str(P.log("published_download")),
        localrule: True
        conda:
            "../envs/filterdb.yaml"
        params:
            url=config["published"]["url"],
            md5=config["published"]["md5"],
        script:
            "../scripts/published_download.py"

    rule published_unpack:
        input:
            archive=published_download_name(),
        output:
            db=config["published"]["path"],
        log:
            str(P.log("published_db")),
        benchmark:
            str(P.benchmark("published_db"))
        localrule: True
        conda:
            "../envs/filterdb.yaml"
        params:
            url=config["published"]["url"],
        script:
            "../scripts/published_db.py"


# the command's target: the DB (made by the rules above while it is missing)
rule published_db:
    input:
        config["published"]["path"],
    localrule: True
