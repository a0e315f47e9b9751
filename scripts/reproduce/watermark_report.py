"""scripts/reproduce/watermark_report.py OUT — the report of activeguard-watermark.sh: reads
OUT/runs.jsonl (one measurement per line: eval and verify JSON of a model) and OUT/settings.json,
writes OUT/results.json (Tables III, V, VI as data), OUT/results.md (the same beside the paper's
figures) and OUT/prune.png (test accuracy and extracted digits against the pruning rate).
Needs only the standard library and PIL (Debian: python3-pil, which python3-torchvision pulls in)."""
import json
import os
import sys

from PIL import Image, ImageDraw

PAPER = {  # ActiveGuard's reported figures for LeNet-5 on MNIST, as the issue quotes them
    "table3": "accuracy drop of the watermarked model: -0.03%",
    "table5": "the watermark survives 50 epochs of fine-tuning",
    "table6": "wm1 fails from 50% pruning; wm2 survives 90%",
}


def binary_text(b):
    """settings.json's "binary": `dnnguard version --json` (a dict), or the older --version string"""
    return b if isinstance(b, str) else f"dnnguard {b['version']} ({b['cpu']}; CUDA: {b['cuda']})"


def load(out):
    runs = [json.loads(line) for line in open(os.path.join(out, "runs.jsonl")) if line.strip()]
    settings = json.load(open(os.path.join(out, "settings.json")))
    return runs, settings


def wm_cell(v):
    return {"verified": v["verified"], "matches": v["matches"], "n": v["n"],
            "extracted": "".join(str(d) for d in v["extracted"]), "max_residual": max(v["residual"])}


def tables(runs):
    by_name = {r["name"]: r for r in runs}
    clean = by_name["clean"]["eval"]["accuracy"]
    t3 = []
    for name in ["clean", "wm1-scratch", "wm2-scratch", "wm1-ft"]:
        if name not in by_name:
            continue
        r = by_name[name]
        own = "wm2" if name.startswith("wm2") else "wm1"
        t3.append({"model": name, "test_acc": r["eval"]["accuracy"], "drop": clean - r["eval"]["accuracy"],
                   "wm1": wm_cell(r["wm1"]), "wm2": wm_cell(r["wm2"]), "own_key": own})
    t5 = [{"model": r["name"], "of": r["of"], "epochs": r["epochs"], "test_acc": r["eval"]["accuracy"],
           "wm": wm_cell(r[r["of"][:3]])} for r in runs if r["kind"] == "finetune"]
    t6 = [{"model": r["of"], "rate": r["rate"], "test_acc": r["eval"]["accuracy"], "wm": wm_cell(r[r["of"][:3]])}
          for r in runs if r["kind"] == "prune"]
    return {"clean_acc": clean, "table3": t3, "table5": t5, "table6": t6}


def pct(x):
    return f"{100 * x:.2f}%"


def verdict(c):
    return f"{'yes' if c['verified'] else 'no'} ({c['matches']}/{c['n']})"


def markdown(t, s):
    paper = PAPER if s["net"] == "lenet5" else {k: "LeNet-5's figures only are quoted here" for k in PAPER}
    lines = [f"# ActiveGuard watermark: {s['net']} on {s['data'].split(':')[0]}", "",
             f"Settings: {s['epochs']} epochs from scratch, {s['ft_epochs']} by fine-tuning, λ = {s['lambda']}, "
             f"layer `{s['layer']}`, training options `{s['train_opts']}`"
             + (f", {s['train_subset']} training images" if s["train_subset"] else "")
             + (f", accuracy on the first {s['eval_limit']} test images" if s.get("eval_limit") else "")
             + f"; wm1 = {s['wm1']}, wm2 = {s['wm2']}; verification is Algorithm 1 (the key's filter, all "
             f"digits must match). {binary_text(s['binary'])} on {s['host']}, {s['date']}.", "",
             "## Table III: clean vs watermarked", "", f"Paper: {paper['table3']}.", "",
             "| model | test accuracy | drop vs clean | wm1 verified | wm2 verified |", "|---|---|---|---|---|"]
    for r in t["table3"]:
        lines.append(f"| {r['model']} | {pct(r['test_acc'])} | {100 * r['drop']:+.2f} pt | {verdict(r['wm1'])} | "
                     f"{verdict(r['wm2'])} |")
    lines += ["", "## Table V: fine-tuning attack", "",
              f"Paper: {paper['table5']}. Here: {s['attack_subset']} images of the {s['attack_split']} split, "
              f"the training options above, no regularizer.", "",
              "| model | epochs | test accuracy | its watermark verified | extracted |", "|---|---|---|---|---|"]
    for r in t["table5"]:
        lines.append(f"| {r['of']} | {r['epochs']} | {pct(r['test_acc'])} | {verdict(r['wm'])} | {r['wm']['extracted']} |")
    lines += ["", "## Table VI: pruning attack (per layer, conv and linear weights)", "",
              f"Paper: {paper['table6']}.", "",
              "| rate | wm1 model accuracy | wm1 verified | wm2 model accuracy | wm2 verified |", "|---|---|---|---|---|"]
    rates = sorted({r["rate"] for r in t["table6"]})
    for rate in rates:
        cells = {r["model"][:3]: r for r in t["table6"] if r["rate"] == rate}
        row = [f"{int(round(100 * rate))}%"]
        for w in ["wm1", "wm2"]:
            c = cells.get(w)
            row += [pct(c["test_acc"]), verdict(c["wm"])] if c else ["-", "-"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "![accuracy and extracted digits against the pruning rate](prune.png)", ""]
    return "\n".join(lines)


def plot(t, path):
    W, H, L, R, T, B = 900, 520, 70, 170, 40, 60
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    x0, x1, y0, y1 = L, W - R, H - B, T
    rates = sorted({r["rate"] for r in t["table6"]}) or [0.0]
    top = max(rates) if max(rates) > 0 else 1.0
    X = lambda r: x0 + (x1 - x0) * r / top
    Y = lambda v: y0 - (y0 - y1) * v  # v in [0, 1]
    d.rectangle([x0, y1, x1, y0], outline="black")
    for v in [0, 0.2, 0.4, 0.6, 0.8, 1.0]:
        d.line([x0 - 4, Y(v), x0, Y(v)], fill="black")
        d.text((x0 - 40, Y(v) - 6), f"{int(100 * v)}%", fill="black")
        d.line([x0, Y(v), x1, Y(v)], fill=(230, 230, 230))
    for r in rates:
        d.line([X(r), y0, X(r), y0 + 4], fill="black")
        d.text((X(r) - 10, y0 + 8), f"{int(round(100 * r))}%", fill="black")
    d.text(((x0 + x1) // 2 - 40, H - 25), "pruning rate", fill="black")
    d.text((x0, 12), "test accuracy (solid) and digits extracted / n (dashed); filled marker: verified", fill="black")
    colours = {"wm1": (31, 119, 180), "wm2": (214, 39, 40)}
    legend_y = T + 10
    for w, colour in colours.items():
        rows = sorted((r for r in t["table6"] if r["model"].startswith(w)), key=lambda r: r["rate"])
        if not rows:
            continue
        acc = [(X(r["rate"]), Y(r["test_acc"])) for r in rows]
        dig = [(X(r["rate"]), Y(r["wm"]["matches"] / r["wm"]["n"])) for r in rows]
        d.line(acc, fill=colour, width=3)
        for (a, b), (c, e) in zip(dig, dig[1:]):  # dashed
            for k in range(0, 10, 2):
                d.line([a + (c - a) * k / 10, b + (e - b) * k / 10, a + (c - a) * (k + 1) / 10,
                        b + (e - b) * (k + 1) / 10], fill=colour, width=2)
        for r, (px, py) in zip(rows, dig):
            box = [px - 5, py - 5, px + 5, py + 5]
            d.ellipse(box, fill=colour if r["wm"]["verified"] else "white", outline=colour, width=2)
        d.line([x1 + 15, legend_y + 6, x1 + 45, legend_y + 6], fill=colour, width=3)
        d.text((x1 + 50, legend_y), f"{w} model", fill="black")
        legend_y += 22
    img.save(path)


def main():
    out = sys.argv[1]
    runs, settings = load(out)
    t = tables(runs)
    json.dump({"settings": settings, "paper": PAPER, **t}, open(os.path.join(out, "results.json"), "w"), indent=1)
    open(os.path.join(out, "results.md"), "w").write(markdown(t, settings))
    plot(t, os.path.join(out, "prune.png"))


if __name__ == "__main__":
    main()
