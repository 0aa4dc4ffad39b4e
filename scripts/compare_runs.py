"""Compare the numbers of two run folders stage by stage (metrics.json, path.json,
interpret.json, debug.json, table.txt), ignoring wall times and the folders' own paths: the
determinism check of two `cargo xtask repro-sst` runs with the same seed.

usage: python3 scripts/compare_runs.py RUN_A RUN_B   (exit status 1 when any number differs)
"""
import json, sys, os
a, b = sys.argv[1], sys.argv[2]
def strip(v, path=""):
    if isinstance(v, dict):
        return {k: strip(x, path + "/" + k) for k, x in v.items()
                if not any(t in k.lower() for t in ("second", "time", "per_sec", "peak_rss", "session", "dataset_path", "cache", "inputs_per"))}
    if isinstance(v, list):
        return [strip(x, path) for x in v]
    if isinstance(v, str):
        return v.replace(a, "RUN").replace(b, "RUN")
    return v
def diff(x, y, path=""):
    out = []
    if type(x) != type(y):
        return [f"{path}: {x!r} vs {y!r}"]
    if isinstance(x, dict):
        for k in sorted(set(x) | set(y)):
            if k not in x or k not in y:
                out.append(f"{path}/{k}: only in one"); continue
            out += diff(x[k], y[k], f"{path}/{k}")
    elif isinstance(x, list):
        if len(x) != len(y):
            return [f"{path}: length {len(x)} vs {len(y)}"]
        for i, (p, q) in enumerate(zip(x, y)):
            out += diff(p, q, f"{path}[{i}]")
    elif x != y:
        out.append(f"{path}: {x!r} vs {y!r}")
    return out
total = 0
for f in ["metrics.json", "path.json", "interpret.json", "debug.json", "table.txt"]:
    pa, pb = os.path.join(a, f), os.path.join(b, f)
    if f.endswith(".txt"):
        la = [l for l in open(pa) if "features " not in l and "s, path" not in l]
        lb = [l for l in open(pb) if "features " not in l and "s, path" not in l]
        d = [] if la == lb else ["table differs"]
    else:
        d = diff(strip(json.load(open(pa))), strip(json.load(open(pb))))
    total += len(d)
    print(f"{f}: {len(d)} differences", *d[:5], sep="\n  ")
print("identical numbers in every stage" if total == 0 else f"{total} differences")
sys.exit(0 if total == 0 else 1)
