"""Small copies of selected figures for the README (docs/figures), at most ``params.width`` px wide."""

from PIL import Image

from filterdb.glue import main


def run():
    for src, dst in zip(snakemake.input, snakemake.output):
        img = Image.open(src)
        if img.width > snakemake.params.width:
            h = round(img.height * snakemake.params.width / img.width)
            img = img.resize((snakemake.params.width, h), Image.Resampling.LANCZOS)
        img.save(dst, format="PNG", optimize=True)  # no text chunks: same bytes for the same input
        print(f"{dst}: {img.width}x{img.height}")


main(snakemake, run)
