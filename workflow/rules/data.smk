rule synthetic_db:
    output:
        db=str(P.synthetic),
    log:
        str(P.log("synthetic_db")),
    conda:
        "../envs/filterdb.yaml"
    params:
        models=config["synthetic"]["models"],
        seed=config["synthetic"]["seed"],
        layout=config["synthetic"]["layout"],
    script:
        "../scripts/synthetic_db.py"
