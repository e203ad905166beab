import json
import sys

rows = json.load(open("/tmp/research/guard_rows.json"))
SYN = ["uniform_rgb", "uniform_gray", "gauss_rgb", "gauss_gray", "blobs_rgb", "blobs_gray", "photo_rgb", "constant", "near_constant", "gradient"]
filt = sys.argv[1] if len(sys.argv) > 1 else ""
print(f"{'model':18s} {'method':22s} {'q':5s} {'val':>5s} {'test':>5s} {'nih':>5s} {'synmin':>6s} ok  " + " ".join(s[:7] for s in SYN))
for r in rows:
    if filt not in r["method"]: continue
    ok = r["nih"] >= 0.9 and r["k_test"] <= 0.1 and r["syn_min"] == 1
    print(f"{r['model']:18s} {r['method']:22s} {r['q']:<5} {r['k_val']:5.3f} {r['k_test']:5.3f} {r['nih']:5.3f} {r['syn_min']:6.3f} {'OK' if ok else '--'}  "
          + " ".join(f"{r['syn_'+s]:7.2f}" for s in SYN))
