"""Issue 15 done-criteria check from a bench results.json: calibrated >= image-only - 0.3, and
>= paper - 0.5 wherever the paper fusion helps (paper > image-only)."""
import json, sys
d = json.load(open(sys.argv[1]))
rows = d["rows"]
img = {r["ratio"]: r["top1_mean"] for r in rows if r["method"] == "Img. Only"}
worst_img, worst_paper, fails = 1e9, 1e9, []
for r in rows:
    if r["method"] == "Img. Only":
        continue
    lam, p, c = r["ratio"], 100 * r["top1_mean"], 100 * r["cal_top1_mean"]
    i = 100 * img[lam]
    di = c - i
    worst_img = min(worst_img, di)
    if di < -0.3:
        fails.append(f"{r['method']} λ={lam}: calibrated {c:.2f} < image-only {i:.2f} - 0.3")
    if p > i:
        dp = c - p
        worst_paper = min(worst_paper, dp)
        if dp < -0.5:
            fails.append(f"{r['method']} λ={lam}: calibrated {c:.2f} < paper {p:.2f} - 0.5")
print(f"min(calibrated - image-only) = {worst_img:+.2f} pp; min(calibrated - paper | paper helps) = {worst_paper:+.2f} pp")
print("\n".join(fails) or "all cells pass")
