rule synthetic_db:
    output:
        db=f"{R}/synthetic/synthetic.h5",
    log:
        f"{R}/logs/synthetic_db.log",
    conda:
        "../envs/filterdb.yaml"
    params:
        models=config["synthetic"]["models"],
        seed=config["synthetic"]["seed"],
        layout=config["synthetic"]["layout"],
    script:
        "../scripts/synthetic_db.py"
