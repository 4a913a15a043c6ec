"""Convert parquet files to JSONL, one JSON object per row, row group by row group (constant
memory), so that ./tokenizer train and ./prepare (which read text and JSONL) can use FineWeb-Edu,
SmolTalk and the HF ARC/MMLU exports. Writes OUT.tmp and renames it when complete.
Usage: python3 data_tools/parquet_to_jsonl.py IN.parquet OUT.jsonl [--columns text]   (needs pyarrow)
"""
import argparse
import json
import os
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--columns", nargs="*", help="columns to keep (default: all)")
    a = ap.parse_args()
    try:
        import pyarrow.parquet as pq
    except ImportError:
        sys.exit("parquet_to_jsonl: needs pyarrow (python3 -m pip install pyarrow)")
    f = pq.ParquetFile(a.input)
    tmp = a.output + ".tmp"
    rows = 0
    with open(tmp, "w", encoding="utf-8") as out:
        for g in range(f.num_row_groups):
            for rec in f.read_row_group(g, columns=a.columns).to_pylist():
                out.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
                rows += 1
    os.replace(tmp, a.output)
    print(f"[parquet_to_jsonl] {a.input} -> {a.output}: {rows} rows")


if __name__ == "__main__":
    main()
